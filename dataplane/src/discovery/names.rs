//! Which names the embedded DNS answers, and with what: built from a snapshot, per network.
//!
//! | name | answer |
//! |---|---|
//! | `TASK` | that task, while its node is up (alive or suspect; drained included) |
//! | `tasks.SVC` | the service's healthy backends ([`healthy_backends`]) |
//! | `SVC` | the VIP (vip mode), or the healthy backends (dnsrr mode) |
//! | `ALIAS` | every endpoint holding that alias (`attach --alias`, `--network-alias`) |
//!
//! each also as `NAME.NETWORK`, and PTR records for tasks and VIPs. Which namespace sees which
//! network is decided when it asks (`meshd_dns::Registry::lookup`). A record whose network,
//! service or task name breaks the naming rules (`crate::name_rules`; one merged from a node that
//! did not check them) gives no name at all.

use std::collections::HashSet;

use meshd_dns::Registry;

use crate::name_rules::{check, NameKind};
use crate::service::backends::healthy_backends;
use crate::state::{EndpointMode, Snapshot};

/// The registry a snapshot gives: for every network, its services, `tasks.SVC` and task names,
/// from tasks whose node is alive (or suspect) and, for service names, not drained.
pub fn build(snapshot: &Snapshot) -> Registry {
    let state = &snapshot.state;
    let mut registry = Registry::default();
    let valid = |kind, name: &str| check(kind, name).is_ok();
    for (name, _) in state.networks.live() {
        if valid(NameKind::Network, name) {
            registry.add_network(name);
        }
    }
    // A service's name is the service's: a task named like a service of its network gets no
    // name, or it would join the service's answer (any node names its own tasks as it likes).
    let services: HashSet<(String, String)> = state
        .services
        .live()
        .map(|(name, s)| (s.network.to_ascii_lowercase(), name.to_ascii_lowercase()))
        .collect();
    let is_service = |network: &str, name: &str| {
        services.contains(&(network.to_ascii_lowercase(), name.to_ascii_lowercase()))
    };
    for (_, endpoint) in state.visible_endpoints(|n| snapshot.liveness_of(n)) {
        if !valid(NameKind::Network, &endpoint.network) {
            continue;
        }
        let own_name = |name: &&String| valid(NameKind::Task, name) && !is_service(&endpoint.network, name);
        if let Some(task) = endpoint.task.as_ref().filter(own_name) {
            registry.add(&endpoint.network, task, endpoint.address);
            registry.add_reverse(&endpoint.network, endpoint.address, task);
        }
        // Aliases: more names of the endpoint, shared by every endpoint holding one (no PTR:
        // an address answers with its task name).
        for alias in endpoint.aliases.iter().filter(own_name) {
            registry.add(&endpoint.network, alias, endpoint.address);
        }
    }
    let by_service = healthy_backends(snapshot);
    for (name, service) in state.services.live() {
        if !valid(NameKind::Service, name) || !valid(NameKind::Network, &service.network) {
            continue;
        }
        let backends = by_service.get(name).cloned().unwrap_or_default();
        for address in &backends {
            registry.add(&service.network, &format!("tasks.{name}"), *address);
        }
        match (service.mode, service.vip) {
            (EndpointMode::Vip, Some(vip)) => {
                registry.add(&service.network, name, vip);
                registry.add_reverse(&service.network, vip, name);
            }
            _ => {
                for address in &backends {
                    registry.add(&service.network, name, *address);
                }
            }
        }
    }
    registry
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use meshd_dns::Lookup;

    use super::*;
    use crate::fixture::{id, snapshot_with_web, WEB_VIP};
    use crate::state::{Availability, Change, Delta, Liveness, Version};

    fn front() -> Vec<String> {
        vec!["front".to_string()]
    }

    fn addr(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 1, 0, last)
    }

    #[test]
    fn services_tasks_and_task_names_per_network() {
        let registry = build(&snapshot_with_web());
        assert_eq!(registry.lookup(&front(), "web"), Lookup::Found(vec![WEB_VIP]));
        assert_eq!(registry.lookup(&front(), "web.front"), Lookup::Found(vec![WEB_VIP]));
        assert_eq!(registry.lookup(&front(), "tasks.web"), Lookup::Found(vec![addr(2), addr(3)]));
        assert_eq!(registry.lookup(&front(), "web.a"), Lookup::Found(vec![addr(2)]));
        // A dnsrr service with no task, and a task on a network that does not exist.
        assert_eq!(registry.lookup(&front(), "names"), Lookup::NotFound);
        assert_eq!(registry.lookup(&front(), "web.c"), Lookup::NotFound);
        assert_eq!(registry.reverse(&front(), addr(2)).as_deref(), Some("web.a.front"));
        assert_eq!(registry.reverse(&front(), WEB_VIP).as_deref(), Some("web.front"));
    }

    #[test]
    fn names_merged_without_validation_or_named_like_a_service_give_no_name() {
        let mut snapshot = snapshot_with_web();
        for (id_, task) in [("x", "example.org"), ("y", "tasks.web"), ("z", "bad name"), ("w", "WEB")] {
            let record = crate::state::EndpointRecord {
                network: "front".into(),
                address: addr(40),
                service: None,
                task: Some(task.into()),
                terminating: false,
                aliases: Vec::new(),
                health: Default::default(),
            };
            let change = Change::Endpoint { owner: id(2), id: id_.into(), record: Some(record) };
            snapshot
                .state
                .apply(
                    Delta { version: Version { lamport: 20, node: id(2) }, change },
                    std::time::Instant::now(),
                )
                .unwrap();
        }
        let registry = build(&snapshot);
        assert_eq!(registry.lookup(&front(), "example.org"), Lookup::Forward);
        assert_eq!(registry.lookup(&front(), "tasks.web"), Lookup::Found(vec![addr(2), addr(3)]));
        assert_eq!(registry.lookup(&front(), "bad name"), Lookup::NotFound);
        assert_eq!(
            registry.lookup(&front(), "web"),
            Lookup::Found(vec![WEB_VIP]),
            "a task named like the service"
        );
    }

    #[test]
    fn aliases_resolve_to_every_endpoint_holding_them_but_never_as_a_service() {
        let mut snapshot = snapshot_with_web();
        for (id_, last, aliases) in [("p", 41, vec!["db", "primary"]), ("q", 42, vec!["db", "web"])] {
            let record = crate::state::EndpointRecord {
                network: "front".into(),
                address: addr(last),
                service: None,
                task: None,
                terminating: false,
                aliases: aliases.into_iter().map(String::from).collect(),
                health: Default::default(),
            };
            let change = Change::Endpoint { owner: id(2), id: id_.into(), record: Some(record) };
            let delta = Delta { version: Version { lamport: 30, node: id(2) }, change };
            snapshot.state.apply(delta, std::time::Instant::now()).unwrap();
        }
        let registry = build(&snapshot);
        assert_eq!(registry.lookup(&front(), "db"), Lookup::Found(vec![addr(41), addr(42)]));
        assert_eq!(registry.lookup(&front(), "primary.front"), Lookup::Found(vec![addr(41)]));
        assert_eq!(
            registry.lookup(&front(), "web"),
            Lookup::Found(vec![WEB_VIP]),
            "an alias named like the service"
        );
        assert_eq!(registry.lookup(&["back".to_string()], "db"), Lookup::NotFound, "scoped to its network");
    }

    #[test]
    fn a_drained_node_keeps_its_task_names_but_leaves_the_service_and_a_down_one_leaves_both() {
        let mut snapshot = snapshot_with_web();
        let drain = Change::Availability { id: id(2), value: Some(Availability::Drain) };
        snapshot
            .state
            .apply(
                Delta { version: Version { lamport: 10, node: id(1) }, change: drain },
                std::time::Instant::now(),
            )
            .unwrap();
        let registry = build(&snapshot);
        assert_eq!(registry.lookup(&front(), "tasks.web"), Lookup::Found(vec![addr(2)]));
        assert_eq!(registry.lookup(&front(), "web.b"), Lookup::Found(vec![addr(3)]));

        snapshot.liveness.insert(id(2), Liveness::Down);
        let registry = build(&snapshot);
        // No longer a name here; like any unknown dotted name, it is not ours to refuse.
        assert_eq!(registry.lookup(&front(), "web.b"), Lookup::Forward);
        assert_eq!(registry.lookup(&front(), "tasks.web"), Lookup::Found(vec![addr(2)]));
    }
}
