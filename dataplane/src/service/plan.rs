//! Service validation: names, networks, endpoint modes and published ports, checked against the
//! cluster state before anything is written.

use super::error::ServiceError;
use super::ports::{meshd_ports, parse_publish, port_owners};
use crate::state::{ClusterState, EndpointMode, PublishedPort};

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
) -> Result<Vec<PublishedPort>, ServiceError> {
    validate_name(name)?;
    if state.services.get(&name.to_string()).is_some() {
        return Err(ServiceError::Exists(name.to_string()));
    }
    if state.networks.get(&network.to_string()).is_none() {
        return Err(ServiceError::NoNetwork(network.to_string()));
    }
    if !publish.is_empty() && mode == EndpointMode::Dnsrr {
        return Err(ServiceError::DnsrrPublish);
    }
    let owners = port_owners(state);
    let reserved = meshd_ports(state);
    let mut ports: Vec<PublishedPort> = Vec::with_capacity(publish.len());
    for text in publish {
        let port = parse_publish(text)?;
        if reserved.contains(&(port.published, port.protocol)) {
            return Err(ServiceError::PortReserved(port));
        }
        if let Some(owner) = owners.get(&(port.published, port.protocol)) {
            return Err(ServiceError::PortTaken(port, owner.clone()));
        }
        if ports.iter().any(|p| (p.published, p.protocol) == (port.published, port.protocol)) {
            return Err(ServiceError::PortTaken(port, name.to_string()));
        }
        ports.push(port);
    }
    ports.sort();
    Ok(ports)
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
    use crate::state::{Change, Delta, Protocol, ServiceRecord, Version};

    fn state() -> ClusterState {
        let mut state = ClusterState::default();
        let record = network::plan_create(&state, "front", "10.1.0.0/24").unwrap();
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

    #[test]
    fn creation_is_validated() {
        let state = state();
        assert!(matches!(
            plan_create(&state, "bad name", "front", EndpointMode::Vip, &[]),
            Err(ServiceError::Name(_))
        ));
        assert!(matches!(
            plan_create(&state, "web", "front", EndpointMode::Vip, &[]),
            Err(ServiceError::Exists(_))
        ));
        assert!(matches!(
            plan_create(&state, "api", "nope", EndpointMode::Vip, &[]),
            Err(ServiceError::NoNetwork(_))
        ));
        let publish = vec!["8081:80".to_string()];
        assert_eq!(
            plan_create(&state, "api", "front", EndpointMode::Dnsrr, &publish),
            Err(ServiceError::DnsrrPublish)
        );
        assert_eq!(
            plan_create(&state, "api", "front", EndpointMode::Vip, &publish),
            Ok(vec![PublishedPort { published: 8081, target: 80, protocol: Protocol::Tcp }])
        );
        assert_eq!(plan_create(&state, "api", "front", EndpointMode::Dnsrr, &[]), Ok(vec![]));
    }

    #[test]
    fn published_ports_are_parsed_and_unique() {
        let state = state();
        let plan = |p: &[&str]| {
            let p: Vec<String> = p.iter().map(|s| s.to_string()).collect();
            plan_create(&state, "api", "front", EndpointMode::Vip, &p)
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
