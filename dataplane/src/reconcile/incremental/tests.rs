//! The incremental reconciler against the full build, on random histories of state changes:
//! after every step its desired state is the full build's, and a writer that compares only the
//! keys it says were touched ends with exactly the full build's maps (no stale entry).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Instant;

use proptest::prelude::*;

use super::*;
use crate::fixture;
use crate::state::{Availability, Change, Delta, EndpointRecord, Liveness, Version};

/// One step of a history. Small universes on purpose: addresses, VIPs and names collide.
#[derive(Debug, Clone)]
enum Op {
    /// Endpoint `id` of node `owner` (1 is this node) set (address, service, network, terminating) or removed.
    Endpoint { owner: u8, id: u8, value: Option<(u8, Option<u8>, u8, bool)> },
    /// Service `name` set (VIP, VIP mode, network) or removed.
    Service { name: u8, value: Option<(u8, bool, u8)> },
    /// Node 2 or 3 up or down.
    Liveness { node: u8, up: bool },
    /// Node 2 or 3 drained or active.
    Drain { node: u8, drained: bool },
    /// This node's endpoint `id` attached here or not.
    Attach { id: u8, attached: bool },
    /// The node's addresses (published ports answer on each).
    Addrs(bool),
    /// A new snapshot with nothing changed.
    Same,
}

fn op() -> impl Strategy<Value = Op> {
    let endpoint = (
        1..=3u8,
        0..6u8,
        proptest::option::weighted(
            0.8,
            (0..6u8, proptest::option::of(0..4u8), 0..3u8, proptest::bool::weighted(0.2)),
        ),
    )
        .prop_map(|(owner, id, value)| Op::Endpoint { owner, id, value });
    let service = (0..4u8, proptest::option::weighted(0.8, (0..3u8, proptest::bool::weighted(0.8), 0..3u8)))
        .prop_map(|(name, value)| Op::Service { name, value });
    prop_oneof![
        6 => endpoint,
        3 => service,
        1 => (2..=3u8, any::<bool>()).prop_map(|(node, up)| Op::Liveness { node, up }),
        1 => (2..=3u8, any::<bool>()).prop_map(|(node, drained)| Op::Drain { node, drained }),
        1 => (0..6u8, any::<bool>()).prop_map(|(id, attached)| Op::Attach { id, attached }),
        1 => any::<bool>().prop_map(Op::Addrs),
        1 => Just(Op::Same),
    ]
}

const NETWORKS: [&str; 3] = ["front", "back", "unknown"];

/// Nodes 1 (this one), 2 and 3 alive; networks front and back.
fn start() -> Snapshot {
    let mut snapshot = fixture::snapshot();
    snapshot.state.endpoints = Default::default();
    let back = crate::state::NetworkRecord {
        subnet: "10.2.0.0/24".parse().unwrap(),
        vni: 5001,
        options: Default::default(),
    };
    apply(&mut snapshot, 1, 10, Change::Network { name: "back".into(), record: Some(back) });
    let node3 = crate::state::NodeRecord {
        name: "n3".into(),
        gossip_addr: "192.0.2.3:7946".parse().unwrap(),
        left: false,
        departed: None,
        cert: Default::default(),
        founder: None,
        keyring: Default::default(),
        wireguard: None,
    };
    apply(&mut snapshot, 3, 10, Change::Node { id: fixture::id(3), record: Some(node3) });
    snapshot.liveness.insert(fixture::id(3), Liveness::Alive);
    snapshot
}

fn apply(snapshot: &mut Snapshot, writer: u8, lamport: u64, change: Change) {
    let delta = Delta { version: Version { lamport, node: fixture::id(writer) }, change };
    snapshot.state.apply(delta, Instant::now()).unwrap();
}

fn attachment(id: u8) -> LocalAttachment {
    let mut a = fixture::local().remove(0);
    a.id = format!("e{id}");
    a.host_ifindex = 100 + u32::from(id);
    a.address = Ipv4Addr::new(10, 1, 0, 10 + id);
    a
}

/// A writer's copy of the kernel maps, brought along with only the touched keys.
#[derive(Default)]
struct Kernel(Forwarding);

impl Kernel {
    fn follow(&mut self, desired: &Forwarding, touched: &Touched) {
        fn sync<K: Ord + Copy, V: PartialEq + Clone>(
            held: &mut BTreeMap<K, V>,
            desired: &BTreeMap<K, V>,
            keys: Option<&BTreeSet<K>>,
        ) {
            let keys = keys.cloned().unwrap_or_else(|| held.keys().chain(desired.keys()).copied().collect());
            for key in keys {
                match desired.get(&key) {
                    Some(value) => held.insert(key, value.clone()),
                    None => held.remove(&key),
                };
            }
        }
        sync(&mut self.0.endpoints, &desired.endpoints, touched.endpoints.as_ref());
        sync(&mut self.0.services, &desired.services, touched.services.as_ref());
        sync(&mut self.0.maglev, &desired.maglev, touched.maglev.as_ref());
        // The writer diffs the small maps whole.
        self.0.ifaces = desired.ifaces.clone();
        self.0.frontends = desired.frontends.clone();
        self.0.nodes = desired.nodes.clone();
        self.0.flow_tables = desired.flow_tables.clone();
    }
}

/// Applies `op` to the inputs of a round.
fn step(
    snapshot: &mut Snapshot,
    local: &mut Vec<LocalAttachment>,
    addrs: &mut Vec<Ipv4Addr>,
    op: Op,
    lamport: u64,
) {
    match op {
        Op::Endpoint { owner, id, value } => {
            let record = value.map(|(last, service, network, terminating)| EndpointRecord {
                network: NETWORKS[network as usize].into(),
                address: Ipv4Addr::new(10, 1, 0, 10 + last),
                service: service.map(|s| format!("s{s}")),
                task: None,
                terminating,
                aliases: Vec::new(),
                health: Default::default(),
            });
            let change = Change::Endpoint { owner: fixture::id(owner), id: format!("e{id}"), record };
            apply(snapshot, owner, lamport, change);
        }
        Op::Service { name, value } => {
            let record = value.map(|(vip, vip_mode, network)| ServiceRecord {
                network: NETWORKS[network as usize].into(),
                mode: if vip_mode { EndpointMode::Vip } else { EndpointMode::Dnsrr },
                vip: vip_mode.then(|| Ipv4Addr::new(10, 1, 0, 200 + vip)),
                ports: if vip_mode && vip == 0 {
                    vec![crate::service::ports::parse_publish("8080:80").unwrap()]
                } else {
                    vec![]
                },
            });
            apply(snapshot, 1, lamport, Change::Service { name: format!("s{name}"), record });
        }
        Op::Liveness { node, up } => {
            snapshot.liveness.insert(fixture::id(node), if up { Liveness::Alive } else { Liveness::Down });
        }
        Op::Drain { node, drained } => {
            let value = Some(if drained { Availability::Drain } else { Availability::Active });
            apply(snapshot, 1, lamport, Change::Availability { id: fixture::id(node), value });
        }
        Op::Attach { id, attached } => {
            local.retain(|a| a.id != format!("e{id}"));
            if attached {
                local.push(attachment(id));
            }
        }
        Op::Addrs(two) => {
            *addrs = if two {
                vec![Ipv4Addr::LOCALHOST, Ipv4Addr::new(192, 0, 2, 1)]
            } else {
                vec![Ipv4Addr::LOCALHOST]
            };
        }
        Op::Same => {}
    }
}

/// Runs a history; after each step, checks the reconciler and the writer's maps against the
/// full build. Returns the rounds of each step.
fn run(ops: Vec<Op>) -> Vec<Round> {
    let mut snapshot = start();
    let mut local: Vec<LocalAttachment> = Vec::new();
    let mut addrs = vec![Ipv4Addr::LOCALHOST];
    let mut reconciler = Reconciler::default();
    let mut kernel = Kernel::default();
    let mut rounds = Vec::new();
    for (n, op) in ops.into_iter().enumerate() {
        step(&mut snapshot, &mut local, &mut addrs, op, 100 + n as u64);
        let round = reconciler.update(&Arc::new(snapshot.clone()), &local, &addrs);
        let full = super::super::desired(&snapshot, &local, &addrs, &mut MaglevCache::default());
        assert_eq!(reconciler.desired(), &full, "step {n}: incremental != full");
        kernel.follow(reconciler.desired(), &round.touched);
        assert_eq!(kernel.0, full, "step {n}: a touched key is missing");
        rounds.push(round);
    }
    rounds
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn incremental_equals_full(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops);
    }
}

#[test]
fn one_task_leaving_is_incremental_and_touches_one_address_one_vip_one_table() {
    let rounds = run(vec![
        Op::Service { name: 1, value: Some((1, true, 0)) },
        Op::Endpoint { owner: 2, id: 0, value: Some((0, Some(1), 0, false)) },
        Op::Endpoint { owner: 3, id: 1, value: Some((1, Some(1), 0, false)) },
        Op::Endpoint { owner: 3, id: 1, value: None },
    ]);
    assert!(rounds[0].rebuilt, "the first round builds from scratch");
    assert!(rounds[1..].iter().all(|r| !r.rebuilt), "then every round is incremental");
    let last = &rounds[3].touched;
    assert_eq!(last.endpoints, Some(BTreeSet::from([net_order::ipv4(Ipv4Addr::new(10, 1, 0, 11))])));
    assert_eq!(last.services, Some(BTreeSet::from([net_order::ipv4(Ipv4Addr::new(10, 1, 0, 201))])));
    assert_eq!(last.maglev, Some(BTreeSet::from([service_id("s1")])));
}

#[test]
fn a_shared_address_or_vip_or_a_node_going_down_rebuilds() {
    let rounds = run(vec![
        Op::Service { name: 1, value: Some((1, true, 0)) },
        Op::Endpoint { owner: 2, id: 0, value: Some((0, Some(1), 0, false)) },
        // Another record with the same address, then the first one leaves: the winner is a
        // record that did not change.
        Op::Endpoint { owner: 3, id: 1, value: Some((0, Some(1), 0, false)) },
        Op::Endpoint { owner: 2, id: 0, value: None },
        Op::Service { name: 2, value: Some((1, true, 0)) },
        Op::Service { name: 1, value: None },
        Op::Liveness { node: 3, up: false },
    ]);
    let rebuilt: Vec<bool> = rounds.iter().map(|r| r.rebuilt).collect();
    assert_eq!(rebuilt, [true, false, true, true, true, true, true]);
}
