//! Which tasks of a service take new flows: its endpoints on its network that are healthy and
//! not terminating, on a node that is up (alive, or only suspect) and not drained. When none
//! is, the service has no backend, as with no task at all (Swarm's behaviour, and Kubernetes'
//! for unready endpoints): a new connection to its VIP is refused and counted, `tasks.SVC` is
//! empty. Open connections stay with the task they were balanced to.
//!
//! This is the one answer to "is this task a backend": the load balancer builds its Maglev
//! tables from it (`reconcile`), DNS answers `tasks.SVC` and dnsrr names from it (`discovery`),
//! and `service ls` counts it.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::identity::NodeId;
use crate::state::{Availability, EndpointRecord, Health, ServiceRecord, Snapshot};

/// What a node's state means for the tasks on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeHealth {
    /// Up and active: its tasks take new flows.
    Up,
    /// Down or left: its tasks take nothing.
    Down,
    /// Up but drained: its tasks finish open flows and take no new ones.
    Drained,
}

pub fn node_health(snapshot: &Snapshot, node: &NodeId) -> NodeHealth {
    if !snapshot.liveness_of(node).is_up() {
        NodeHealth::Down
    } else if snapshot.state.availability_of(node) == Availability::Drain {
        NodeHealth::Drained
    } else {
        NodeHealth::Up
    }
}

/// Whether `endpoint` (a task of `service`) may take its new flows, its node's health aside: on
/// the service's network, healthy (see [`Health`]) and not terminating.
pub fn may_serve(service: &ServiceRecord, endpoint: &EndpointRecord) -> bool {
    endpoint.network == service.network && !endpoint.terminating && endpoint.health == Health::Healthy
}

/// The healthy backends of every service, each list sorted (every node must build the same
/// Maglev table from it), in one pass over the endpoints: per-service scans would cost services
/// x endpoints on every snapshot.
pub fn healthy_backends(snapshot: &Snapshot) -> HashMap<String, Vec<Ipv4Addr>> {
    let state = &snapshot.state;
    let mut out: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
    let mut health: HashMap<NodeId, NodeHealth> = HashMap::new();
    for ((owner, _), endpoint) in state.endpoints.live() {
        let Some(name) = endpoint.service.as_deref() else { continue };
        let Some(service) = state.services.get(&name.to_string()) else { continue };
        if !may_serve(service, endpoint) {
            continue;
        }
        if *health.entry(*owner).or_insert_with(|| node_health(snapshot, owner)) == NodeHealth::Up {
            out.entry(name.to_string()).or_default().push(endpoint.address);
        }
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use super::*;
    use crate::state::{
        Change, ClusterState, Delta, EndpointMode, EndpointRecord, Liveness, NetworkRecord, NodeRecord,
        ServiceRecord, Version,
    };

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 16])
    }

    fn apply(state: &mut ClusterState, writer: u8, lamport: u64, change: Change) {
        state
            .apply(Delta { version: Version { lamport, node: id(writer) }, change }, Instant::now())
            .unwrap();
    }

    /// Nodes 1 (alive), 2 (alive, drained), 3 (down), 4 (suspect); service "web" on "front"
    /// with one task on each, one more terminating on node 1, and one on the wrong network.
    fn snapshot() -> Snapshot {
        let mut state = ClusterState::default();
        for n in 1u8..=4 {
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
        apply(&mut state, 1, 2, Change::Availability { id: id(2), value: Some(Availability::Drain) });
        for (name, subnet, vni) in [("front", "10.1.0.0/24", 5000), ("back", "10.2.0.0/24", 5001)] {
            let record = NetworkRecord { subnet: subnet.parse().unwrap(), vni, options: Default::default() };
            apply(&mut state, 1, 2, Change::Network { name: name.into(), record: Some(record) });
        }
        let web = ServiceRecord {
            network: "front".into(),
            mode: EndpointMode::Vip,
            vip: Some(Ipv4Addr::new(10, 1, 0, 100)),
            ports: vec![],
        };
        apply(&mut state, 1, 3, Change::Service { name: "web".into(), record: Some(web) });
        let tasks = [
            (1u8, "a", "front", 10u8, false, Health::Healthy),
            (1, "b", "front", 11, true, Health::Healthy),
            (1, "c", "back", 12, false, Health::Healthy),
            (2, "d", "front", 13, false, Health::Healthy),
            (3, "e", "front", 14, false, Health::Healthy),
            (4, "f", "front", 15, false, Health::Healthy),
            (1, "g", "front", 16, false, Health::Starting),
            (4, "h", "front", 17, false, Health::Unhealthy),
        ];
        for (owner, task, network, last, terminating, health) in tasks {
            let record = EndpointRecord {
                network: network.into(),
                address: Ipv4Addr::new(10, 1, 0, last),
                service: Some("web".into()),
                task: Some(task.into()),
                terminating,
                aliases: Vec::new(),
                health,
            };
            apply(
                &mut state,
                owner,
                4,
                Change::Endpoint { owner: id(owner), id: task.into(), record: Some(record) },
            );
        }
        let liveness = BTreeMap::from([
            (id(1), Liveness::Alive),
            (id(2), Liveness::Alive),
            (id(3), Liveness::Down),
            (id(4), Liveness::Suspect),
        ]);
        Snapshot {
            self_id: id(1),
            cluster: crate::identity::Fingerprint::from_bytes([0; 16]),
            state,
            liveness,
        }
    }

    #[test]
    fn only_healthy_active_up_non_terminating_tasks_on_the_services_network_are_backends() {
        let snapshot = snapshot();
        let backends = healthy_backends(&snapshot);
        assert_eq!(backends["web"], [Ipv4Addr::new(10, 1, 0, 10), Ipv4Addr::new(10, 1, 0, 15)]);
        assert_eq!(node_health(&snapshot, &id(2)), NodeHealth::Drained);
        assert_eq!(node_health(&snapshot, &id(3)), NodeHealth::Down);
        assert_eq!(node_health(&snapshot, &id(4)), NodeHealth::Up, "suspicion alone keeps a node up");
        assert_eq!(node_health(&snapshot, &id(9)), NodeHealth::Down, "never heard of");
    }
}
