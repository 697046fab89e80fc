//! From cluster state and local facts to the forwarding maps: a pure function computes what the
//! maps should hold, a diff says what to change, and only that is written. Run after every new
//! snapshot and after every attach or detach; running it twice changes nothing.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use meshd_ebpf::endpoint::{Endpoint, Iface, FLAG_LOCAL};
use meshd_ebpf::lb::Service;
use meshd_ebpf::mesh::{Frontend, FrontendKey, PROTO_TCP, PROTO_UDP};
use meshd_ebpf::net_order;

use super::maglev;
use crate::api::proto::Availability;
use crate::state::cluster::{EndpointMode, Liveness, Protocol};
use serde::{Deserialize, Serialize};

use crate::gossip::Snapshot;

/// A namespace this node attached: everything the maps need that the cluster state does not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalAttachment {
    /// Endpoint ID in the cluster state.
    pub id: String,
    pub netns: std::path::PathBuf,
    pub network: String,
    pub address: Ipv4Addr,
    pub host_ifname: String,
    pub host_ifindex: u32,
    pub host_mac: [u8; 6],
    pub container_ifname: String,
    pub container_mac: [u8; 6],
    /// Whether meshd wrote /etc/netns/NAME/resolv.conf for this namespace.
    #[serde(default = "yes")]
    pub resolv_conf: bool,
}

fn yes() -> bool {
    true
}

/// What md_endpoints_v2 (by address), md_ifaces_v1 (by ifindex), md_services_v1 (by VIP),
/// md_maglev_v2 (by service id) and md_frontends_v1 should hold.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub endpoints: BTreeMap<u32, Endpoint>,
    pub ifaces: BTreeMap<u32, Iface>,
    pub services: BTreeMap<u32, Service>,
    /// Service id -> its Maglev table as the kernel array holds it: M, a fingerprint, then M
    /// backend addresses.
    pub maglev: BTreeMap<u32, Vec<u32>>,
    pub frontends: BTreeMap<FrontendKey, Frontend>,
}

/// A service's id in the maps: stable across nodes and restarts (a hash of its name).
pub fn service_id(name: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in name.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The healthy backends of every service, sorted, in one pass over the endpoints (per-service
/// scans would cost services x endpoints on every snapshot). Terminating tasks are not backends:
/// they finish their open flows but get no new ones.
pub fn all_backends(snapshot: &Snapshot) -> std::collections::HashMap<String, Vec<Ipv4Addr>> {
    let state = &snapshot.state;
    let mut out: std::collections::HashMap<String, Vec<Ipv4Addr>> = std::collections::HashMap::new();
    let mut healthy_owner: std::collections::HashMap<crate::identity::NodeId, bool> =
        std::collections::HashMap::new();
    for ((owner, _), e) in state.endpoints.live() {
        let Some(service_name) = e.service.as_deref() else { continue };
        let Some(service) = state.services.get(&service_name.to_string()) else { continue };
        if e.network != service.network || e.terminating {
            continue;
        }
        let healthy = *healthy_owner.entry(*owner).or_insert_with(|| {
            matches!(snapshot.liveness_of(owner), Liveness::Alive | Liveness::Suspect)
                && state.availability_of(owner) == Availability::Active
        });
        if healthy {
            out.entry(service_name.to_string()).or_default().push(e.address);
        }
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

/// The healthy backends of service `name`, sorted: its tasks on its network whose node is alive
/// (or only suspect) and not drained.
pub fn backends(snapshot: &Snapshot, name: &str) -> Vec<Ipv4Addr> {
    let state = &snapshot.state;
    let Some(service) = state.services.get(&name.to_string()) else { return Vec::new() };
    let mut out: Vec<Ipv4Addr> = state
        .endpoints
        .live()
        .filter(|((owner, _), e)| {
            e.service.as_deref() == Some(name)
                && e.network == service.network
                && !e.terminating
                && matches!(snapshot.liveness_of(owner), Liveness::Alive | Liveness::Suspect)
                && state.availability_of(owner) == Availability::Active
        })
        .map(|(_, e)| e.address)
        .collect();
    out.sort();
    out
}

pub fn desired(snapshot: &Snapshot, local: &[LocalAttachment]) -> Desired {
    let state = &snapshot.state;
    let mut out = Desired::default();
    for ((owner, id), record) in state.endpoints.live() {
        let Some(network) = state.networks.get(&record.network) else { continue };
        let endpoint = if *owner == snapshot.self_id {
            let Some(attachment) = local.iter().find(|a| &a.id == id) else { continue };
            Endpoint {
                vni: network.vni,
                node_ip: 0,
                ifindex: attachment.host_ifindex,
                mac: attachment.container_mac,
                flags: FLAG_LOCAL,
                pad: 0,
            }
        } else {
            // A node that is only down keeps its entries (harmless, and nothing is lost if it
            // comes back); one that left has no endpoints left in the state.
            let Some(node) = state.nodes.get(owner) else { continue };
            let IpAddr::V4(node_ip) = node.gossip_addr.ip() else { continue };
            Endpoint {
                vni: network.vni,
                node_ip: net_order::ipv4(node_ip),
                ifindex: 0,
                mac: [0; 6],
                flags: 0,
                pad: 0,
            }
        };
        out.endpoints.insert(net_order::ipv4(record.address), endpoint);
    }
    let mut by_service = all_backends(snapshot);
    maglev::new_round();
    for (name, service) in state.services.live() {
        let (Some(vip), EndpointMode::Vip) = (service.vip, service.mode) else { continue };
        let id = service_id(name);
        let backends = by_service.remove(name).unwrap_or_default();
        let size = if backends.is_empty() { 0 } else { maglev::table_size(backends.len()) };
        out.services.insert(net_order::ipv4(vip), Service { id, pad: 0 });
        if size > 0 {
            let slots: Vec<u32> = maglev::build_cached(&backends, size)
                .iter()
                .map(|b| net_order::ipv4(backends[*b as usize]))
                .collect();
            let mut table = Vec::with_capacity(slots.len() + 2);
            table.extend([size, fingerprint(&slots)]);
            table.extend(slots);
            out.maglev.insert(id, table);
        }
    }
    for attachment in local {
        let Some(network) = state.networks.get(&attachment.network) else { continue };
        out.ifaces.insert(
            attachment.host_ifindex,
            Iface {
                vni: network.vni,
                ip: net_order::ipv4(attachment.address),
                subnet: net_order::ipv4(network.subnet.network()),
                mask: net_order::ipv4(network.subnet.netmask()),
                mac: attachment.host_mac,
                pad: [0; 2],
            },
        );
    }
    out
}

/// The published ports on this node's addresses: every port of every vip service that owns it
/// (see `service::port_owners`), on each of `node_addrs` (the node's IPv4 addresses, loopback
/// included so that the node's own `localhost:PORT` works).
pub fn frontends(snapshot: &Snapshot, node_addrs: &[Ipv4Addr]) -> BTreeMap<FrontendKey, Frontend> {
    let state = &snapshot.state;
    let mut out = BTreeMap::new();
    for ((published, protocol), name) in super::service::port_owners(state) {
        let Some(service) = state.services.get(&name) else { continue };
        let (Some(vip), Some(port)) =
            (service.vip, service.ports.iter().find(|p| (p.published, p.protocol) == (published, protocol)))
        else {
            continue;
        };
        let proto = match protocol {
            Protocol::Tcp => PROTO_TCP,
            Protocol::Udp => PROTO_UDP,
        };
        for addr in node_addrs {
            out.insert(
                FrontendKey { addr: net_order::ipv4(*addr), port: published.to_be(), proto, pad: 0 },
                Frontend { vip: net_order::ipv4(vip), target_port: port.target.to_be(), pad: 0 },
            );
        }
    }
    out
}

/// A fingerprint of a Maglev table's slots (FNV-1a over them), stored with the table: a
/// restarted agent compares it instead of reading the whole table back.
pub fn fingerprint(slots: &[u32]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in slots.iter().flat_map(|s| s.to_ne_bytes()) {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use super::*;
    use crate::identity::NodeId;
    use crate::state::cluster::{EndpointRecord, NetworkRecord, NodeRecord};
    use crate::state::{Change, ClusterState, Delta, Version};

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 16])
    }

    fn apply(state: &mut ClusterState, writer: u8, lamport: u64, change: Change) {
        state
            .apply(Delta { version: Version { lamport, node: id(writer) }, change }, Instant::now())
            .unwrap();
    }

    fn snapshot() -> Snapshot {
        let mut state = ClusterState::default();
        for n in [1u8, 2] {
            let record = NodeRecord {
                name: format!("n{n}"),
                gossip_addr: format!("192.0.2.{n}:7946").parse().unwrap(),
                left: false,
                departed: None,
            };
            apply(&mut state, n, 1, Change::Node { id: id(n), record: Some(record) });
        }
        let front = NetworkRecord { subnet: "10.1.0.0/24".parse().unwrap(), vni: 5000 };
        apply(&mut state, 1, 2, Change::Network { name: "front".into(), record: Some(front) });
        for (owner, name, last) in [(1u8, "a", 2u8), (2, "b", 3), (2, "c", 4)] {
            let record = EndpointRecord {
                network: if name == "c" { "gone".into() } else { "front".into() },
                address: Ipv4Addr::new(10, 1, 0, last),
                service: None,
                task: None,
                terminating: false,
            };
            apply(
                &mut state,
                owner,
                3,
                Change::Endpoint { owner: id(owner), id: name.into(), record: Some(record) },
            );
        }
        Snapshot {
            self_id: id(1),
            cluster_id: serde_json::from_str(&format!("\"{}\"", "00".repeat(32))).unwrap(),
            state,
            liveness: BTreeMap::new(),
        }
    }

    fn local() -> Vec<LocalAttachment> {
        vec![LocalAttachment {
            id: "a".into(),
            netns: "/run/netns/x".into(),
            network: "front".into(),
            address: Ipv4Addr::new(10, 1, 0, 2),
            host_ifname: "mdaaaa".into(),
            host_ifindex: 7,
            host_mac: [2, 0, 0, 0, 0, 7],
            container_ifname: "eth0".into(),
            container_mac: [2, 0, 0, 0, 0, 8],
            resolv_conf: true,
        }]
    }

    #[test]
    fn local_and_remote_endpoints_and_ifaces() {
        let desired = desired(&snapshot(), &local());
        let a = desired.endpoints[&net_order::ipv4(Ipv4Addr::new(10, 1, 0, 2))];
        assert_eq!((a.flags, a.ifindex, a.mac, a.vni), (FLAG_LOCAL, 7, [2, 0, 0, 0, 0, 8], 5000));
        let b = desired.endpoints[&net_order::ipv4(Ipv4Addr::new(10, 1, 0, 3))];
        assert_eq!((b.flags, b.node_ip, b.vni), (0, net_order::ipv4(Ipv4Addr::new(192, 0, 2, 2)), 5000));
        assert_eq!(desired.endpoints.len(), 2, "an endpoint of an unknown network is left out");
        let iface = desired.ifaces[&7];
        assert_eq!(iface.subnet, net_order::ipv4(Ipv4Addr::new(10, 1, 0, 0)));
        assert_eq!(iface.mask, net_order::ipv4(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(iface.mac, [2, 0, 0, 0, 0, 7]);
    }

    #[test]
    fn own_endpoints_without_a_local_attachment_are_not_forwarded_to() {
        let desired = desired(&snapshot(), &[]);
        assert!(!desired.endpoints.contains_key(&net_order::ipv4(Ipv4Addr::new(10, 1, 0, 2))));
        assert!(desired.ifaces.is_empty());
    }

    #[test]
    fn diff_writes_only_what_changed_and_is_idempotent() {
        let current = BTreeMap::from([(1u32, 10u32), (2, 20), (3, 30)]);
        let desired = BTreeMap::from([(1u32, 10u32), (2, 21), (4, 40)]);
        let (upserts, deletes) = diff(&current, &desired);
        assert_eq!(upserts, [(2, 21), (4, 40)]);
        assert_eq!(deletes, [3]);
        assert_eq!(diff(&desired, &desired), (vec![], vec![]));
    }
}
