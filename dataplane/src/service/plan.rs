//! Service validation: names, networks, endpoint modes and published ports, checked against the
//! cluster state before anything is written.

use super::error::ServiceError;
use super::ports::{meshd_ports, UnpublishSpec};
use crate::state::{ClusterState, EndpointMode, PublishedPort, MAX_PUBLISHED_PORTS, MAX_PUBLISH_ENTRIES};

/// A service name must be a DNS label: it will be resolvable by name (`crate::name_rules`).
pub fn validate_name(name: &str) -> Result<(), ServiceError> {
    Ok(crate::name_rules::check(crate::name_rules::NameKind::Service, name)?)
}

/// Checks a new service against the state (the VIP is allocated by the caller); returns its
/// published ports. `publish` was parsed where the request entered (`ports::PublishSpec`).
pub fn plan_create(
    state: &ClusterState,
    name: &str,
    network: &str,
    mode: EndpointMode,
    publish: &[PublishedPort],
    data_path_port: u16,
) -> Result<Vec<PublishedPort>, ServiceError> {
    validate_name(name)?;
    if state.services.get(&name.to_string()).is_some() {
        return Err(ServiceError::Exists(name.to_string()));
    }
    let Some(record) = state.networks.get(&network.to_string()) else {
        return Err(ServiceError::NoNetwork(network.to_string()));
    };
    if !publish.is_empty() && mode == EndpointMode::Dnsrr {
        return Err(ServiceError::DnsrrPublish);
    }
    if !publish.is_empty() && record.options.internal {
        return Err(ServiceError::InternalPublish(network.to_string()));
    }
    let mut ports: Vec<PublishedPort> = Vec::with_capacity(publish.len());
    add_ports(state, name, publish, &mut ports, data_path_port)?;
    ports.sort();
    Ok(ports)
}

/// Adds `publish` to `ports` (service `name`'s): each must be free of meshd's own ports, and
/// overlap no other service's entry nor one already in `ports` (the same port and protocol
/// on addresses that may overlap: see `PublishedPort::conflicts`); the service's entries and
/// ports stay within their bounds.
fn add_ports(
    state: &ClusterState,
    name: &str,
    publish: &[PublishedPort],
    ports: &mut Vec<PublishedPort>,
    data_path_port: u16,
) -> Result<(), ServiceError> {
    let reserved = meshd_ports(state, data_path_port);
    let others: Vec<(&String, &PublishedPort)> = state
        .services
        .live()
        .filter(|(other, record)| other.as_str() != name && record.mode == EndpointMode::Vip)
        .flat_map(|(other, record)| record.ports.iter().map(move |p| (other, p)))
        .collect();
    for port in publish {
        if reserved.iter().any(|(p, proto)| port.publishes(*p, *proto)) {
            return Err(ServiceError::PortReserved(*port));
        }
        if let Some((owner, theirs)) = others.iter().find(|(_, theirs)| theirs.conflicts(port)) {
            return Err(ServiceError::PortTaken(*port, owner.to_string(), **theirs));
        }
        if let Some(mine) = ports.iter().find(|p| p.conflicts(port)) {
            return Err(ServiceError::PortTaken(*port, name.to_string(), *mine));
        }
        ports.push(*port);
    }
    let total: usize = ports.iter().map(|p| usize::from(p.count)).sum();
    if ports.len() > MAX_PUBLISH_ENTRIES || total > MAX_PUBLISHED_PORTS {
        return Err(ServiceError::TooManyPorts {
            service: name.to_string(),
            entries: ports.len(),
            ports: total,
            max_entries: MAX_PUBLISH_ENTRIES,
            max_ports: MAX_PUBLISHED_PORTS,
        });
    }
    Ok(())
}

/// What `service update` asks for, parsed where the request entered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// Ports to publish, as `--publish` writes them.
    pub publish_add: Vec<PublishedPort>,
    /// Ports to stop publishing (the target and address, when given, must match).
    pub publish_rm: Vec<UnpublishSpec>,
    pub mode: Option<EndpointMode>,
}

/// Checks an update of service `name` against the state; returns its new mode and ports (the
/// caller keeps the VIP, allocates one when the service becomes vip, drops it for dnsrr).
/// Removals apply before additions, so `--publish-rm 80 --publish-add 80:8080` retargets a
/// port in one step (Docker's order).
pub fn plan_update(
    state: &ClusterState,
    name: &str,
    update: &Update,
    data_path_port: u16,
) -> Result<(EndpointMode, Vec<PublishedPort>), ServiceError> {
    let record =
        state.services.get(&name.to_string()).ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
    if update.publish_add.is_empty() && update.publish_rm.is_empty() && update.mode.is_none() {
        return Err(ServiceError::NothingToUpdate(name.to_string()));
    }
    let mode = update.mode.unwrap_or(record.mode);
    let mut ports = record.ports.clone();
    for rm in &update.publish_rm {
        let before = ports.len();
        ports.retain(|p| !rm.matches(p));
        if ports.len() == before {
            return Err(ServiceError::NotPublished(name.to_string(), rm.to_string()));
        }
    }
    add_ports(state, name, &update.publish_add, &mut ports, data_path_port)?;
    if !ports.is_empty() && mode == EndpointMode::Dnsrr {
        return Err(ServiceError::DnsrrPublish);
    }
    let internal = state.networks.get(&record.network).is_some_and(|n| n.options.internal);
    if !update.publish_add.is_empty() && internal {
        return Err(ServiceError::InternalPublish(record.network.clone()));
    }
    ports.sort();
    Ok((mode, ports))
}

/// Checks that a task may join `service` on `network`.
pub fn check_task(state: &ClusterState, service: &str, network: &str) -> Result<(), ServiceError> {
    let record = state
        .services
        .get(&service.to_string())
        .ok_or_else(|| ServiceError::NotFound(service.to_string()))?;
    if record.network != network {
        return Err(ServiceError::WrongNetwork {
            service: service.to_string(),
            service_network: record.network.clone(),
            network: network.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::identity::NodeId;
    use crate::network::plan as network;
    use crate::service::ports::{parse_publish, port_claims};
    use crate::state::Protocol;
    use crate::state::{Change, Delta, ServiceRecord, Version};

    fn state() -> ClusterState {
        let mut state = ClusterState::default();
        let record =
            network::plan_create(&state, "front", "10.1.0.0/24".parse().unwrap(), Default::default(), 1450)
                .unwrap();
        let v = |l| Version { lamport: l, node: NodeId::from_bytes([1; 16]) };
        state
            .apply(
                Delta {
                    version: v(1),
                    change: Change::Network { name: "front".into(), record: Some(record) },
                },
                Instant::now(),
            )
            .unwrap();
        let web = ServiceRecord {
            network: "front".into(),
            mode: EndpointMode::Vip,
            vip: Some("10.1.0.9".parse().unwrap()),
            ports: vec![parse_publish("8080:80").unwrap()],
        };
        state
            .apply(
                Delta { version: v(2), change: Change::Service { name: "web".into(), record: Some(web) } },
                Instant::now(),
            )
            .unwrap();
        state
    }

    fn update(add: &[&str], rm: &[&str], mode: Option<EndpointMode>) -> Update {
        Update {
            publish_add: add.iter().map(|s| parse_publish(s).unwrap()).collect(),
            publish_rm: rm.iter().map(|s| s.parse().unwrap()).collect(),
            mode,
        }
    }

    #[test]
    fn updates_add_remove_and_retarget_ports_and_switch_modes() {
        let state = state();
        let plan = |u: Update| plan_update(&state, "web", &u, 4789);
        let (mode, ports) = plan(update(&["9090:90/udp"], &[], None)).unwrap();
        assert_eq!(mode, EndpointMode::Vip);
        assert_eq!(ports, [parse_publish("8080:80").unwrap(), parse_publish("9090:90/udp").unwrap()]);
        // Removal first, so a port may be retargeted in one update; TARGET is optional.
        let (_, ports) = plan(update(&["8080:81"], &["8080"], None)).unwrap();
        assert_eq!(ports, [parse_publish("8080:81").unwrap()]);
        let (_, ports) = plan(update(&[], &["8080:80/tcp"], None)).unwrap();
        assert!(ports.is_empty());
        // dnsrr needs the ports gone, in the same update or before.
        assert!(matches!(plan(update(&[], &[], Some(EndpointMode::Dnsrr))), Err(ServiceError::DnsrrPublish)));
        let (mode, ports) = plan(update(&[], &["8080"], Some(EndpointMode::Dnsrr))).unwrap();
        assert_eq!((mode, ports.len()), (EndpointMode::Dnsrr, 0));
    }

    #[test]
    fn bad_updates_say_why() {
        let state = state();
        let plan = |u: Update| plan_update(&state, "web", &u, 4789);
        assert!(matches!(plan(update(&[], &[], None)), Err(ServiceError::NothingToUpdate(_))));
        assert!(matches!(plan(update(&[], &["8081"], None)), Err(ServiceError::NotPublished(..))));
        assert!(matches!(plan(update(&[], &["8080:81"], None)), Err(ServiceError::NotPublished(..))));
        assert!(matches!(plan(update(&[], &["8080/udp"], None)), Err(ServiceError::NotPublished(..))));
        assert!(matches!(plan(update(&["8080:90"], &[], None)), Err(ServiceError::PortTaken(..))));
        assert!(matches!(plan(update(&["4789:80/udp"], &[], None)), Err(ServiceError::PortReserved(_))));
        assert!(matches!(
            plan_update(&state, "nope", &update(&["1:1"], &[], None), 4789),
            Err(ServiceError::NotFound(_))
        ));
    }

    #[test]
    fn creation_is_validated() {
        let state = state();
        assert!(matches!(
            plan_create(&state, "bad name", "front", EndpointMode::Vip, &[], 4789),
            Err(ServiceError::Name(_))
        ));
        assert!(matches!(
            plan_create(&state, "web", "front", EndpointMode::Vip, &[], 4789),
            Err(ServiceError::Exists(_))
        ));
        assert!(matches!(
            plan_create(&state, "api", "nope", EndpointMode::Vip, &[], 4789),
            Err(ServiceError::NoNetwork(_))
        ));
        let publish = vec![parse_publish("8081:80").unwrap()];
        assert_eq!(
            plan_create(&state, "api", "front", EndpointMode::Dnsrr, &publish, 4789),
            Err(ServiceError::DnsrrPublish)
        );
        assert_eq!(
            plan_create(&state, "api", "front", EndpointMode::Vip, &publish, 4789),
            Ok(vec![PublishedPort::single(8081, 80, Protocol::Tcp)])
        );
        assert_eq!(plan_create(&state, "api", "front", EndpointMode::Dnsrr, &[], 4789), Ok(vec![]));
    }

    #[test]
    fn published_ports_are_unique_where_addresses_overlap() {
        let state = state();
        let plan = |p: &[&str]| {
            let p: Vec<PublishedPort> = p.iter().map(|s| parse_publish(s).unwrap()).collect();
            plan_create(&state, "api", "front", EndpointMode::Vip, &p, 4789)
        };
        assert!(matches!(plan(&["8080:80"]), Err(ServiceError::PortTaken(_, owner, _)) if owner == "web"));
        // The same number over UDP is another port.
        assert_eq!(plan(&["8080:53/udp"]).unwrap()[0].protocol, Protocol::Udp);
        assert!(matches!(plan(&["9000:80", "9000:81/tcp"]), Err(ServiceError::PortTaken(..))));
        assert!(matches!(plan(&["4789:4789/udp"]), Err(ServiceError::PortReserved(_))));
        // A range over a held port, over meshd's own, or over another of its own ranges.
        assert!(matches!(plan(&["8000-8099:8000-8099"]), Err(ServiceError::PortTaken(..))));
        assert!(matches!(plan(&["4780-4799:4780-4799/udp"]), Err(ServiceError::PortReserved(_))));
        assert!(matches!(
            plan(&["30000-30010:30000-30010", "30010-30020:1-11"]),
            Err(ServiceError::PortTaken(..))
        ));
        // web holds 8080 on every address: an address does not help.
        assert!(matches!(
            plan(&["published=8080,target=80,address=10.0.0.1"]),
            Err(ServiceError::PortTaken(..))
        ));
        assert_eq!(plan(&["30000-30019:30000-30019"]).unwrap()[0].count, 20);
        // Bounds: entries (a range is one) and ports.
        let many: Vec<String> = (1..=33).map(|i| format!("{}:80", 10000 + i)).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(matches!(plan(&many), Err(ServiceError::TooManyPorts { .. })));
        assert!(matches!(
            plan(&["20000-20999:20000-20999", "21000-21100:21000-21100"]),
            Err(ServiceError::TooManyPorts { ports: 1101, .. })
        ));
    }

    #[test]
    fn two_services_share_a_port_on_addresses_that_cannot_overlap() {
        let mut state = state();
        let add = |state: &mut ClusterState, name: &str, lamport, publish: &[&str]| {
            let p: Vec<PublishedPort> = publish.iter().map(|s| parse_publish(s).unwrap()).collect();
            let ports = plan_create(state, name, "front", EndpointMode::Vip, &p, 4789)?;
            let record = ServiceRecord {
                network: "front".into(),
                mode: EndpointMode::Vip,
                vip: Some(format!("10.1.0.{}", 20 + lamport).parse().unwrap()),
                ports,
            };
            let v = Version { lamport, node: NodeId::from_bytes([1; 16]) };
            state
                .apply(
                    Delta { version: v, change: Change::Service { name: name.into(), record: Some(record) } },
                    Instant::now(),
                )
                .unwrap();
            Ok::<(), ServiceError>(())
        };
        add(&mut state, "a", 10, &["published=7000,target=80,address=192.0.2.1"]).unwrap();
        add(&mut state, "b", 11, &["published=7000,target=80,address=192.0.2.2,mode=host"]).unwrap();
        add(&mut state, "c", 12, &["published=7000,target=80,address=198.51.100.0/25"]).unwrap();
        add(&mut state, "d", 13, &["published=7000,target=80,address=198.51.100.128/25"]).unwrap();
        for clash in [
            "published=7000,target=80,address=192.0.2.1",
            "published=7000,target=80,address=192.0.2.0/24",
            "published=7000,target=80,address=198.51.100.7",
            "7000:80",
            "6990-7010:6990-7010",
        ] {
            assert!(
                matches!(add(&mut state, "e", 14, &[clash]), Err(ServiceError::PortTaken(..))),
                "{clash}"
            );
        }
        add(&mut state, "e", 14, &["7000:80/udp"]).unwrap();
        assert!(port_claims(&state).iter().all(|c| c.held_by.is_none()));
    }

    #[test]
    fn the_earliest_claim_owns_a_port() {
        let mut state = state();
        let late = ServiceRecord {
            network: "front".into(),
            mode: EndpointMode::Vip,
            vip: Some("10.1.0.10".parse().unwrap()),
            ports: vec![parse_publish("8080:81").unwrap()],
        };
        // "aaa" sorts first but claimed later: "web" keeps the port.
        let v = Version { lamport: 9, node: NodeId::from_bytes([2; 16]) };
        state
            .apply(
                Delta { version: v, change: Change::Service { name: "aaa".into(), record: Some(late) } },
                Instant::now(),
            )
            .unwrap();
        let claims = port_claims(&state);
        let claim = |service: &str| claims.iter().find(|c| c.service == service).unwrap().held_by.clone();
        assert_eq!(claim("web"), None);
        assert_eq!(claim("aaa"), Some("web".to_string()));
    }

    #[test]
    fn tasks_must_be_on_the_services_network() {
        let state = state();
        assert_eq!(check_task(&state, "web", "front"), Ok(()));
        assert!(matches!(check_task(&state, "web", "back"), Err(ServiceError::WrongNetwork { .. })));
        assert!(matches!(check_task(&state, "nope", "front"), Err(ServiceError::NotFound(_))));
    }
}
