//! The forwarding maps the agent owns, as one value: what the reconciler computes from the
//! cluster state, and what this module writes into the kernel, changing only what differs.
//!
//! | field | map | key |
//! |---|---|---|
//! | `ifaces` | md_ifaces_v2 | host-side ifindex of an attached veth |
//! | `endpoints` | md_endpoints_v2 | endpoint address |
//! | `services` | md_services_v1 | VIP |
//! | `maglev` | md_maglev_v3 (hash of maps) | service id |
//! | `frontends` | md_frontends_v2 | (node address, published port, protocol) |
//! | `nodes` | md_nodes_v1 | a cluster node's underlay address |
//! | `flow_tables` | md_flows_v1 (hash of maps) | a local endpoint's address: its own flow table |
//! | `sock_clients` | md_sock_clients_v1 (socket programs) | an attached namespace's cookie |
//! | (`sock_clients`' keys, and the node's own namespace) | md_sock_rnat_v3 (hash of maps) | a namespace's cookie: its own socket table |
//!
//! Keys and values are the `#[repr(C)]` mirrors of the C headers (`meshd_ebpf`); addresses and
//! ports are in network order (`meshd_ebpf::net_order`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aya::maps::{HashMap as AyaHashMap, MapData};
use aya::Ebpf;
use meshd_ebpf::endpoint::{Endpoint, Iface};
use meshd_ebpf::lb::{Service, MAGLEV_FINGERPRINT, MAGLEV_SIZE, MAGLEV_SLOTS};
use meshd_ebpf::mesh::{Frontend, FrontendKey};
use meshd_ebpf::node::Node;
use meshd_ebpf::sock_lb::{self, SockClient};
use meshd_ebpf::{endpoint, lb, mesh, node, SOCK, VETH};

use std::os::fd::AsFd;

use super::sock_tables::{sock_namespaces, Phase};
use super::{batch, BpfError, Datapath};
use crate::util::hash::fnv1a_32;

/// Service id -> its Maglev table as the kernel array holds it ([`maglev_array`]), shared.
pub type MaglevTables = BTreeMap<u32, Arc<Vec<u32>>>;

/// What the forwarding maps should hold.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Forwarding {
    pub endpoints: BTreeMap<u32, Endpoint>,
    pub ifaces: BTreeMap<u32, Iface>,
    pub services: BTreeMap<u32, Service>,
    /// Service id -> its Maglev table as the kernel array holds it ([`maglev_array`]).
    /// Shared with the reconciler's cache and the agent's record of what is installed.
    pub maglev: MaglevTables,
    pub frontends: BTreeMap<FrontendKey, Frontend>,
    /// The cluster's nodes by underlay address: the only senders the tunnel accepts.
    pub nodes: BTreeMap<u32, Node>,
    /// The local endpoints that have a flow table (their balanced flows, both ways).
    pub flow_tables: BTreeSet<u32>,
    /// The attached namespaces whose sockets are balanced at connect(), by netns cookie.
    pub sock_clients: BTreeMap<u64, SockClient>,
}

/// A Maglev table as an element of md_maglev_v3: M, a fingerprint of the slots, then the M
/// slots (backend addresses in network order). The fingerprint lets a restarted agent keep a
/// table it finds in the kernel without reading all of it back.
pub fn maglev_array(slots: &[u32]) -> Vec<u32> {
    let mut array = vec![0; MAGLEV_SLOTS as usize + slots.len()];
    array[MAGLEV_SIZE as usize] = slots.len() as u32;
    array[MAGLEV_FINGERPRINT as usize] = fnv1a_32(slots.iter().flat_map(|s| s.to_ne_bytes()));
    array[MAGLEV_SLOTS as usize..].copy_from_slice(slots);
    array
}

/// The writes that turn `current` into `desired`: entries to insert or overwrite, keys to delete.
pub fn diff<K: Ord + Copy, V: PartialEq + Copy>(
    current: &BTreeMap<K, V>,
    desired: &BTreeMap<K, V>,
) -> (Vec<(K, V)>, Vec<K>) {
    let upserts = desired.iter().filter(|(k, v)| current.get(k) != Some(v)).map(|(k, v)| (*k, *v)).collect();
    let deletes = current.keys().filter(|k| !desired.contains_key(k)).copied().collect();
    (upserts, deletes)
}

/// [`diff`] restricted to `keys`: the writes that turn `current` into `desired` when only those
/// keys can differ (the reconciler says which, see [`Touched`]).
pub fn diff_keys<K: Ord + Copy, V: PartialEq + Copy>(
    current: &BTreeMap<K, V>,
    desired: &BTreeMap<K, V>,
    keys: &BTreeSet<K>,
) -> (Vec<(K, V)>, Vec<K>) {
    let mut upserts = Vec::new();
    let mut deletes = Vec::new();
    for key in keys {
        match (current.get(key), desired.get(key)) {
            (Some(old), Some(new)) if old == new => {}
            (_, Some(new)) => upserts.push((*key, *new)),
            (Some(_), None) => deletes.push(*key),
            (None, None) => {}
        }
    }
    (upserts, deletes)
}

/// Which keys of the large maps can differ from what the previous sync wrote; `None`: any key
/// (a full diff). The incremental reconciler (`reconcile::Reconciler`) knows this from the
/// state change; the small maps (nodes, interfaces, published ports) are always diffed whole.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Touched {
    /// md_endpoints_v2 keys (endpoint addresses).
    pub endpoints: Option<BTreeSet<u32>>,
    /// md_services_v1 keys (VIPs).
    pub services: Option<BTreeSet<u32>>,
    /// md_maglev_v3 keys (service ids).
    pub maglev: Option<BTreeSet<u32>>,
}

impl Touched {
    /// Any key may have changed: diff everything.
    pub fn all() -> Touched {
        Touched::default()
    }
}

/// The agent's copy of the forwarding maps it owns (None: not read from the kernel yet).
#[derive(Debug, Default)]
pub(super) struct Synced {
    ifaces: Option<BTreeMap<u32, Iface>>,
    endpoints: Option<BTreeMap<u32, Endpoint>>,
    services: Option<BTreeMap<u32, Service>>,
    frontends: Option<BTreeMap<FrontendKey, Frontend>>,
    nodes: Option<BTreeMap<u32, Node>>,
    sock_clients: Option<BTreeMap<u64, SockClient>>,
}

impl Datapath {
    /// Brings the forwarding maps (nodes, interfaces, endpoints, Maglev tables, services,
    /// published ports) to `desired`. Returns (entries written, entries deleted).
    pub fn sync_forwarding(&mut self, desired: &Forwarding) -> Result<(usize, usize), BpfError> {
        self.sync_forwarding_touched(desired, &Touched::all())
    }

    /// [`Self::sync_forwarding`] when only the keys in `touched` can differ from the previous
    /// sync: the large maps are compared on those keys only (the small ones whole). A map whose
    /// contents are unknown (first sync, or after a failed write) is still read back and diffed
    /// whole.
    pub fn sync_forwarding_touched(
        &mut self,
        desired: &Forwarding,
        touched: &Touched,
    ) -> Result<(usize, usize), BpfError> {
        let result = self.write_forwarding(desired, touched);
        if result.is_err() {
            // Some maps may hold this round's change and some not, and the next round touches
            // other keys: forget every copy, so that the next sync reads the kernel back and
            // diffs it whole.
            self.synced = Synced::default();
            self.tables_known = false;
        }
        result
    }

    fn write_forwarding(
        &mut self,
        desired: &Forwarding,
        touched: &Touched,
    ) -> Result<(usize, usize), BpfError> {
        let veth = &mut self.veth;
        let synced = &mut self.synced;
        // Nodes first: an endpoint's tunnel packets are accepted only from a known node.
        let (w0, d0) = sync_map((veth, VETH.name), node::NODES_MAP, &mut synced.nodes, &desired.nodes, None)?;
        // Interfaces next: a local endpoint is only useful once its veth is known; its flow
        // table before it can balance.
        let (w1, d1) =
            sync_map((veth, VETH.name), endpoint::IFACES_MAP, &mut synced.ifaces, &desired.ifaces, None)?;
        let (w6, d6) = self.sync_flow_tables(&desired.flow_tables)?;
        let veth = &mut self.veth;
        let synced = &mut self.synced;
        let (w2, d2) = sync_map(
            (veth, VETH.name),
            endpoint::ENDPOINTS_MAP,
            &mut synced.endpoints,
            &desired.endpoints,
            touched.endpoints.as_ref(),
        )?;
        // Tables before the services that point at them.
        let (w3, d3) = self.sync_maglev(&desired.maglev, touched.maglev.as_ref())?;
        let veth = &mut self.veth;
        let synced = &mut self.synced;
        let (w4, d4) = sync_map(
            (veth, VETH.name),
            lb::SERVICES_MAP,
            &mut synced.services,
            &desired.services,
            touched.services.as_ref(),
        )?;
        let (w5, d5) = sync_map(
            (veth, VETH.name),
            mesh::FRONTENDS_MAP,
            &mut synced.frontends,
            &desired.frontends,
            None,
        )?;
        // The socket programs' maps: a namespace is balanced at connect() once its networks and
        // their services are in the maps above, and its socket table is there; the table goes
        // after the namespace has left md_sock_clients_v1.
        let tables = sock_namespaces(&desired.sock_clients, self.own_netns);
        let w8 = self.sync_sock_tables(&tables, Phase::Add)?;
        let (w7, d7) = sync_map(
            (&mut self.sock, SOCK.name),
            sock_lb::SOCK_CLIENTS_MAP,
            &mut self.synced.sock_clients,
            &desired.sock_clients,
            None,
        )?;
        let d8 = self.sync_sock_tables(&tables, Phase::Drop)?;
        Ok((w0 + w1 + w2 + w3 + w4 + w5 + w6 + w7 + w8, d0 + d1 + d2 + d3 + d4 + d5 + d6 + d7 + d8))
    }
}

/// Replaces the contents of a forwarding map with `desired`, writing only the differences from
/// `synced` (what the map held after the last sync; read from the kernel when unknown), and
/// updates `synced` to `desired`. With `touched`, only those keys are compared (see [`Touched`]).
/// Writes go in batches ([`batch`]): one syscall per few thousand entries.
fn sync_map<K: aya::Pod + Ord + Copy, V: aya::Pod + PartialEq + Copy>(
    (ebpf, object): (&mut Ebpf, &'static str),
    name: &'static str,
    synced: &mut Option<BTreeMap<K, V>>,
    desired: &BTreeMap<K, V>,
    touched: Option<&BTreeSet<K>>,
) -> Result<(usize, usize), BpfError> {
    let map_err = |source| BpfError::Map { map: name, source: Box::new(source) };
    let map = ebpf.map_mut(name).ok_or(BpfError::MissingMap { object, map: name })?;
    let known = synced.is_some();
    let current = match synced {
        Some(current) => current,
        None => {
            let hash: AyaHashMap<&mut MapData, K, V> = AyaHashMap::try_from(&mut *map).map_err(map_err)?;
            synced.insert(hash.iter().filter_map(Result::ok).collect())
        }
    };
    let (upserts, deletes) = match touched {
        Some(keys) if known => diff_keys(current, desired, keys),
        _ => diff(current, desired),
    };
    if upserts.is_empty() && deletes.is_empty() {
        return Ok((0, 0));
    }
    let result = write_entries(map, &upserts, &deletes);
    match result {
        Ok(()) => {
            for (key, value) in &upserts {
                current.insert(*key, *value);
            }
            for key in &deletes {
                current.remove(key);
            }
            Ok((upserts.len(), deletes.len()))
        }
        Err(source) => {
            // The kernel holds part of the change: forget the copy so that the next sync reads
            // the truth back.
            *synced = None;
            Err(map_err(source))
        }
    }
}

/// Writes `upserts` and removes `deletes` (already gone is what we wanted), in batches; one
/// syscall per entry only where the kernel has no batch operation for the map.
fn write_entries<K: aya::Pod, V: aya::Pod>(
    map: &mut aya::maps::Map,
    upserts: &[(K, V)],
    deletes: &[K],
) -> Result<(), aya::maps::MapError> {
    let data = batch::map_data(map).ok_or(aya::maps::MapError::InvalidMapType { map_type: 0 })?;
    let fd = data.fd().as_fd();
    let batched = match batch::update(fd, upserts) {
        Ok(()) => true,
        Err(error) if batch::unsupported(&error) => false,
        Err(error) => return Err(batch::map_error("bpf_map_update_batch", error)),
    };
    if batched {
        match batch::delete(fd, deletes) {
            Ok(_) => return Ok(()),
            Err(error) if batch::unsupported(&error) => {}
            Err(error) => return Err(batch::map_error("bpf_map_delete_batch", error)),
        }
    }
    let mut hash: AyaHashMap<&mut MapData, K, V> = AyaHashMap::try_from(map)?;
    if !batched {
        for (key, value) in upserts {
            hash.insert(key, value, 0)?;
        }
    }
    for key in deletes {
        // Already gone is what we wanted.
        let _ = hash.remove(key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_writes_only_what_changed_and_is_idempotent() {
        let current = BTreeMap::from([(1u32, 10u32), (2, 20), (3, 30)]);
        let desired = BTreeMap::from([(1u32, 10u32), (2, 21), (4, 40)]);
        let (upserts, deletes) = diff(&current, &desired);
        assert_eq!(upserts, [(2, 21), (4, 40)]);
        assert_eq!(deletes, [3]);
        assert_eq!(diff(&desired, &desired), (vec![], vec![]));
    }

    #[test]
    fn diff_keys_is_diff_on_those_keys() {
        let current = BTreeMap::from([(1u32, 10u32), (2, 20), (3, 30), (5, 50)]);
        let desired = BTreeMap::from([(1u32, 10u32), (2, 21), (4, 40), (5, 51)]);
        let keys = BTreeSet::from([1, 2, 3, 4, 6]);
        assert_eq!(diff_keys(&current, &desired, &keys), (vec![(2, 21), (4, 40)], vec![3]));
        let all: BTreeSet<u32> = current.keys().chain(desired.keys()).copied().collect();
        assert_eq!(diff_keys(&current, &desired, &all), diff(&current, &desired));
    }

    #[test]
    fn a_maglev_array_carries_its_size_and_fingerprint() {
        let array = maglev_array(&[7, 8, 7]);
        assert_eq!(array[..2], [3, fnv1a_32([7u32, 8, 7].iter().flat_map(|s| s.to_ne_bytes()))]);
        assert_eq!(array[2..], [7, 8, 7]);
        assert_ne!(maglev_array(&[8, 7, 7])[1], array[1], "another order, another fingerprint");
    }
}
