//! Service validation: names, networks, endpoint modes and published ports, checked against the
//! cluster state before anything is written.

use super::error::ServiceError;
use super::ports::{meshd_ports, parse_publish, port_owners};
use crate::state::{ClusterState, EndpointMode, Protocol, PublishedPort};

/// A service name must be a DNS label: it will be resolvable by name (`crate::name_rules`).
pub fn validate_name(name: &str) -> Result<(), ServiceError> {
    Ok(crate::name_rules::check(crate::name_rules::NameKind::Service, name)?)
}

/// Checks a new service against the state (the VIP is allocated by the caller); returns its
/// published ports.
pub fn plan_create(
    state: &ClusterState,
    name: &str,
    network: &str,
    mode: EndpointMode,
    publish: &[String],
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

/// Parses `publish` and adds the ports to `ports` (service `name`'s): each must be free of
/// meshd's own ports, of every other service's, and of those already in `ports`.
fn add_ports(
    state: &ClusterState,
    name: &str,
    publish: &[String],
    ports: &mut Vec<PublishedPort>,
    data_path_port: u16,
) -> Result<(), ServiceError> {
    let owners = port_owners(state);
    let reserved = meshd_ports(state, data_path_port);
    for text in publish {
        let port = parse_publish(text)?;
        if reserved.contains(&(port.published, port.protocol)) {
            return Err(ServiceError::PortReserved(port));
        }
        match owners.get(&(port.published, port.protocol)) {
            Some(owner) if owner != name => return Err(ServiceError::PortTaken(port, owner.clone())),
            _ => {}
        }
        if ports.iter().any(|p| (p.published, p.protocol) == (port.published, port.protocol)) {
            return Err(ServiceError::PortTaken(port, name.to_string()));
        }
        ports.push(port);
    }
    Ok(())
}

/// What `service update` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// Ports to publish, as `--publish` writes them.
    pub publish_add: Vec<String>,
    /// Ports to stop publishing: `PUBLISHED[:TARGET][/tcp|/udp]` (the target, when given, must
    /// match).
    pub publish_rm: Vec<String>,
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
    for text in &update.publish_rm {
        let (published, target, protocol) = parse_unpublish(text)?;
        let before = ports.len();
        ports.retain(|p| {
            !(p.published == published && p.protocol == protocol && target.is_none_or(|t| t == p.target))
        });
        if ports.len() == before {
            return Err(ServiceError::NotPublished(name.to_string(), text.chars().take(80).collect()));
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

/// `--publish-rm`'s `PUBLISHED[:TARGET][/tcp|/udp]`.
fn parse_unpublish(text: &str) -> Result<(u16, Option<u16>, Protocol), ServiceError> {
    let bad = || ServiceError::UnpublishSyntax(text.chars().take(80).collect());
    let (ports, protocol) = match text.split_once('/') {
        None => (text, Protocol::Tcp),
        Some((ports, "tcp")) => (ports, Protocol::Tcp),
        Some((ports, "udp")) => (ports, Protocol::Udp),
        Some(_) => return Err(bad()),
    };
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
    match ports.split_once(':') {
        None => Ok((port(ports)?, None, protocol)),
        Some((published, target)) => Ok((port(published)?, Some(port(target)?), protocol)),
    }
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
            publish_add: add.iter().map(|s| s.to_string()).collect(),
            publish_rm: rm.iter().map(|s| s.to_string()).collect(),
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
        for text in ["", "x", "0", "8080:", "8080/sctp", "1:2:3"] {
            assert!(
                matches!(plan(update(&[], &[text], None)), Err(ServiceError::UnpublishSyntax(_))),
                "{text}"
            );
        }
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
        let publish = vec!["8081:80".to_string()];
        assert_eq!(
            plan_create(&state, "api", "front", EndpointMode::Dnsrr, &publish, 4789),
            Err(ServiceError::DnsrrPublish)
        );
        assert_eq!(
            plan_create(&state, "api", "front", EndpointMode::Vip, &publish, 4789),
            Ok(vec![PublishedPort { published: 8081, target: 80, protocol: Protocol::Tcp }])
        );
        assert_eq!(plan_create(&state, "api", "front", EndpointMode::Dnsrr, &[], 4789), Ok(vec![]));
    }

    #[test]
    fn published_ports_are_parsed_and_unique() {
        let state = state();
        let plan = |p: &[&str]| {
            let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
            plan_create(&state, "api", "front", EndpointMode::Vip, &p, 4789)
        };
        assert!(matches!(plan(&["8080:80"]), Err(ServiceError::PortTaken(_, owner)) if owner == "web"));
        // The same number over UDP is another port.
        assert_eq!(plan(&["8080:53/udp"]).unwrap()[0].protocol, Protocol::Udp);
        assert!(matches!(plan(&["9000:80", "9000:81/tcp"]), Err(ServiceError::PortTaken(..))));
        assert!(matches!(plan(&["4789:4789/udp"]), Err(ServiceError::PortReserved(_))));
        for bad in ["80", "0:80", "80:0", "x:80", "80:80/sctp", "70000:80", ":80", "80:", "80:80/"] {
            assert!(matches!(plan(&[bad]), Err(ServiceError::PublishSyntax(_))), "{bad}");
        }
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
        assert_eq!(port_owners(&state)[&(8080, Protocol::Tcp)], "web");
    }

    #[test]
    fn tasks_must_be_on_the_services_network() {
        let state = state();
        assert_eq!(check_task(&state, "web", "front"), Ok(()));
        assert!(matches!(check_task(&state, "web", "back"), Err(ServiceError::WrongNetwork { .. })));
        assert!(matches!(check_task(&state, "nope", "front"), Err(ServiceError::NotFound(_))));
    }
}
