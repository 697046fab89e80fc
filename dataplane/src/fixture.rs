//! A small cluster for unit tests of the pure layers (reconciler, discovery, API views): nodes 1 (this one) and 2, network `front`
//! (10.1.0.0/24, VNI 5000), endpoints `a` (10.1.0.2, here) and `b` (10.1.0.3, node 2), and `c`
//! on an unknown network.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Instant;

use crate::identity::NodeId;
use crate::network::LocalAttachment;
use crate::service::ports::parse_publish;
use crate::state::{
    Change, ClusterState, Delta, EndpointMode, EndpointRecord, Liveness, NetworkRecord, NodeRecord,
    ServiceRecord, Snapshot, Version,
};

pub const WEB_VIP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 100);

pub fn id(n: u8) -> NodeId {
    NodeId::from_bytes([n; 16])
}

pub fn apply(state: &mut ClusterState, writer: u8, lamport: u64, change: Change) {
    state.apply(Delta { version: Version { lamport, node: id(writer) }, change }, Instant::now()).unwrap();
}

pub fn snapshot() -> Snapshot {
    let mut state = ClusterState::default();
    for n in [1u8, 2] {
        let record = NodeRecord {
            name: format!("n{n}"),
            gossip_addr: format!("192.0.2.{n}:7946").parse().unwrap(),
            left: false,
            departed: None,
            cert: Default::default(),
            founder: None,
            keyring: Default::default(),
            wireguard: None,
        };
        apply(&mut state, n, 1, Change::Node { id: id(n), record: Some(record) });
    }
    let front =
        NetworkRecord { subnet: "10.1.0.0/24".parse().unwrap(), vni: 5000, options: Default::default() };
    apply(&mut state, 1, 2, Change::Network { name: "front".into(), record: Some(front) });
    for (owner, name, last) in [(1u8, "a", 2u8), (2, "b", 3), (2, "c", 4)] {
        let record = EndpointRecord {
            network: if name == "c" { "gone".into() } else { "front".into() },
            address: Ipv4Addr::new(10, 1, 0, last),
            service: Some("web".into()),
            task: Some(format!("web.{name}")),
            terminating: false,
            aliases: Vec::new(),
            health: Default::default(),
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
        cluster: crate::identity::Fingerprint::from_bytes([0; 16]),
        state,
        liveness: BTreeMap::from([(id(1), Liveness::Alive), (id(2), Liveness::Alive)]),
    }
}

/// [`snapshot`] with services: `web` (vip, 8080:80/tcp and 5353:53/udp), `late` (vip, claims
/// 8080:81/tcp after web did) and `names` (dnsrr).
pub fn snapshot_with_web() -> Snapshot {
    let mut snapshot = snapshot();
    let service = |vip: Option<Ipv4Addr>, mode, ports: &[&str]| ServiceRecord {
        network: "front".into(),
        mode,
        vip,
        ports: ports.iter().map(|p| parse_publish(p).unwrap()).collect(),
    };
    let services = [
        ("web", service(Some(WEB_VIP), EndpointMode::Vip, &["8080:80", "5353:53/udp"]), 4),
        ("late", service(Some(Ipv4Addr::new(10, 1, 0, 101)), EndpointMode::Vip, &["8080:81"]), 5),
        ("names", service(None, EndpointMode::Dnsrr, &[]), 6),
    ];
    for (name, record, lamport) in services {
        apply(&mut snapshot.state, 1, lamport, Change::Service { name: name.into(), record: Some(record) });
    }
    snapshot
}

pub fn local() -> Vec<LocalAttachment> {
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
        owner: None,
        netns_id: None,
        default_route: true,
        dns: Default::default(),
        netns_cookie: None,
    }]
}
