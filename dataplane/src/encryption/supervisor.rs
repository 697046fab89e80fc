//! The task that keeps the node's encryption right: the engine running (restarted when it dies:
//! a killed wireguard-go is back within a second), its interface wired, its peers those of the
//! cluster's membership, and the maps telling the programs which networks are encrypted and to
//! which peers a tunnel is up. It wakes on every new snapshot and once a second.
//!
//! While the engine is down the programs drop an encrypted network's packets on their own (the
//! route into the engine is gone, `lib/encrypt.h`); the task also empties the tunnel map until the
//! engine is back and configured, so nothing goes into a half-made engine.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use meshd_ebpf::encrypt::EncryptConfig;
use meshd_ebpf::net_order;
use rtnetlink::Handle;
use tokio::sync::watch;

use super::keys::NodeKeys;
use super::maps::EncryptMaps;
use super::wg::{self, Peer};
use super::{engine, EncryptionError, EngineKind, MARK, TABLE, WIREGUARD_OVERHEAD};
use crate::state::Snapshot;

/// How often the engine is checked when nothing else happens.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What the task needs, fixed at start.
pub struct Supervisor {
    pub handle: Handle,
    pub iface: String,
    pub keys: NodeKeys,
    pub state_dir: PathBuf,
    pub maps: EncryptMaps,
    /// The underlay's MTU: the engine's interface gets it less WireGuard's overhead.
    pub underlay_mtu: u32,
}

/// Brings the engine up at start (before the node's record is published, which names it):
/// adopts a running one, else starts one. Returns which.
pub async fn start_engine(
    handle: &Handle,
    iface: &str,
    state_dir: &std::path::Path,
) -> Result<EngineKind, EncryptionError> {
    if let Some(kind) = engine::running(handle, iface).await? {
        if wg::public_key(iface).await?.is_some() {
            tracing::info!(iface, engine = %kind, "adopted the running WireGuard engine");
            return Ok(kind);
        }
    }
    let kind = engine::start(handle, iface, state_dir).await?;
    tracing::info!(iface, engine = %kind, "WireGuard engine started");
    Ok(kind)
}

/// The peers the engine should have: every other node that has not left and publishes a valid
/// WireGuard key, at its underlay address.
pub fn desired_peers(snapshot: &Snapshot) -> BTreeMap<String, Peer> {
    snapshot
        .state
        .nodes
        .live()
        .filter(|(id, record)| **id != snapshot.self_id && !record.left)
        .filter_map(|(_, record)| {
            let wireguard = record.wireguard.as_ref().filter(|w| w.is_valid())?;
            let IpAddr::V4(addr) = record.gossip_addr.ip() else { return None };
            Some((
                wireguard.public_key.clone(),
                Peer {
                    public_key: wireguard.public_key.clone(),
                    endpoint: SocketAddrV4::new(addr, wireguard.port),
                    allowed: addr,
                },
            ))
        })
        .collect()
}

/// The VNIs of the encrypted networks.
pub fn encrypted_vnis(snapshot: &Snapshot) -> BTreeSet<u32> {
    snapshot
        .state
        .networks
        .live()
        .filter(|(_, network)| network.options.encrypted)
        .map(|(_, network)| network.vni)
        .collect()
}

impl Supervisor {
    /// Runs until the snapshot channel closes.
    pub async fn run(mut self, mut snapshots: watch::Receiver<Arc<Snapshot>>) {
        let mut last_error = String::new();
        loop {
            let snapshot = snapshots.borrow_and_update().clone();
            match self.pass(&snapshot).await {
                Ok(()) => last_error.clear(),
                Err(error) => {
                    let text = error.to_string();
                    if text != last_error {
                        tracing::warn!(%error, "encryption: cannot bring the engine to its desired state");
                    }
                    last_error = text;
                }
            }
            tokio::select! {
                changed = snapshots.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
        }
    }

    /// One round: engine alive, interface wired, peers synced, maps written.
    async fn pass(&mut self, snapshot: &Snapshot) -> Result<(), EncryptionError> {
        // Networks first: a new encrypted network is dropped (never sent in clear) until its
        // peers' tunnels are up, not the other way round.
        self.maps.sync_nets(&encrypted_vnis(snapshot))?;
        let alive = engine::running(&self.handle, &self.iface).await?.is_some()
            && wg::public_key(&self.iface).await?.is_some();
        if !alive {
            tracing::warn!(iface = %self.iface, "the WireGuard engine is gone; encrypted traffic is dropped until it is back");
            self.maps.sync_tunnels(&BTreeSet::new())?;
            self.maps.set_config(EncryptConfig::default())?;
            engine::start(&self.handle, &self.iface, &self.state_dir).await?;
            tracing::info!(iface = %self.iface, "WireGuard engine restarted");
        }
        if wg::public_key(&self.iface).await?.as_deref() != Some(self.keys.public_key.as_str()) {
            wg::set_device(&self.iface, &self.keys.private_key_file, super::PORT).await?;
        }
        let mtu = self.underlay_mtu.saturating_sub(WIREGUARD_OVERHEAD);
        let ifindex = engine::wire(&self.handle, &self.iface, mtu).await?;
        self.maps.set_config(EncryptConfig { wg_ifindex: ifindex, table: TABLE, mark: MARK, pad: 0 })?;

        let desired = desired_peers(snapshot);
        let present = wg::peers(&self.iface).await?.unwrap_or_default();
        // Gone from the cluster (left, removed, or a rotated key): out of the engine, and out of
        // the tunnel map first, so nothing is marked for a peer that is going away.
        let mut ready: BTreeSet<u32> = BTreeSet::new();
        for (key, peer) in &desired {
            if present.get(key).is_some_and(|ips| *ips == format!("{}/32", peer.allowed)) {
                ready.insert(net_order::ipv4(peer.allowed));
            }
        }
        self.maps.sync_tunnels(&ready)?;
        for key in present.keys().filter(|k| !desired.contains_key(*k)) {
            wg::remove_peer(&self.iface, key).await?;
            tracing::info!(peer = %key, "removed a WireGuard peer");
        }
        for (key, peer) in &desired {
            if present.get(key).is_none_or(|ips| *ips != format!("{}/32", peer.allowed)) {
                wg::set_peer(&self.iface, peer).await?;
                tracing::info!(peer = %key, endpoint = %peer.endpoint, "configured a WireGuard peer");
                ready.insert(net_order::ipv4(peer.allowed));
            }
        }
        self.maps.sync_tunnels(&ready)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::Instant;

    use super::*;
    use crate::fixture::{id, snapshot};
    use crate::state::records::WireguardPeer;
    use crate::state::{Change, Delta, NodeRecord, Version};

    fn node(n: u8, key: Option<&str>, left: bool) -> Change {
        Change::Node {
            id: id(n),
            record: Some(NodeRecord {
                name: format!("w{n}"),
                gossip_addr: SocketAddr::new(Ipv4Addr::new(192, 0, 2, n).into(), 7946),
                left,
                departed: None,
                cert: Default::default(),
                founder: None,
                keyring: Default::default(),
                wireguard: key.map(|k| WireguardPeer {
                    public_key: k.into(),
                    port: 51820,
                    engine: "userspace".into(),
                }),
            }),
        }
    }

    #[test]
    fn peers_are_the_other_members_with_a_valid_key() {
        let mut snapshot = snapshot();
        let good = "bqezk6yA7NSNhtpRFg3FnovCEzCYyOEIibE0XEkFjwo=";
        let other = "rFI3EanmxLS+zJLf5qTFnolpjzZ1FZuwEjVoRDbLWiU=";
        for (n, change) in [
            (101, node(101, Some(good), false)),
            (102, node(102, Some("not a key\nendpoint 1.2.3.4"), false)),
            (103, node(103, None, false)),
            (104, node(104, Some(other), true)),
        ] {
            let version = Version { lamport: 50, node: id(n) };
            snapshot.state.apply(Delta { version, change }, Instant::now()).unwrap();
        }
        let peers = desired_peers(&snapshot);
        assert_eq!(
            peers.keys().collect::<Vec<_>>(),
            [good],
            "a malformed key, no key and a leaver are not peers"
        );
        let peer = &peers[good];
        assert_eq!(peer.endpoint, "192.0.2.101:51820".parse().unwrap());
        assert_eq!(peer.allowed, Ipv4Addr::new(192, 0, 2, 101));
    }
}
