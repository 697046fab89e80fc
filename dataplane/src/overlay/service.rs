//! Service validation: names, networks, endpoint modes and published ports.

use crate::state::cluster::EndpointMode;
use crate::state::ClusterState;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid service name {0:?}: use 1 to 63 letters, digits, '_' or '-', starting with a letter or digit")]
    Name(String),
    #[error("a service named {0:?} already exists")]
    Exists(String),
    #[error("no network named {0:?}")]
    NoNetwork(String),
    #[error("no service named {0:?}")]
    NotFound(String),
    #[error("services in dnsrr mode have no VIP and cannot publish ports (as in Swarm)")]
    DnsrrPublish,
    #[error("published ports (--publish) arrive with the routing mesh; this build balances VIPs inside networks only")]
    PublishUnsupported,
    #[error("service {service:?} is on network {service_network:?}, not {network:?}")]
    WrongNetwork { service: String, service_network: String, network: String },
}

pub fn validate_name(name: &str) -> Result<(), ServiceError> {
    // DNS labels: a service name will be resolvable by name.
    let ok = (1..=63).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::Name(name.chars().take(80).collect()))
    }
}

/// Checks a new service against the state (the VIP is allocated by the caller).
pub fn plan_create(
    state: &ClusterState,
    name: &str,
    network: &str,
    mode: EndpointMode,
    publish: &[String],
) -> Result<(), ServiceError> {
    validate_name(name)?;
    if state.services.get(&name.to_string()).is_some() {
        return Err(ServiceError::Exists(name.to_string()));
    }
    if state.networks.get(&network.to_string()).is_none() {
        return Err(ServiceError::NoNetwork(network.to_string()));
    }
    if !publish.is_empty() {
        return Err(if mode == EndpointMode::Dnsrr {
            ServiceError::DnsrrPublish
        } else {
            ServiceError::PublishUnsupported
        });
    }
    Ok(())
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
    use crate::overlay::network;
    use crate::state::cluster::ServiceRecord;
    use crate::state::{Change, Delta, Version};

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
        let publish = vec!["8080:80".to_string()];
        assert_eq!(
            plan_create(&state, "api", "front", EndpointMode::Dnsrr, &publish),
            Err(ServiceError::DnsrrPublish)
        );
        assert_eq!(
            plan_create(&state, "api", "front", EndpointMode::Vip, &publish),
            Err(ServiceError::PublishUnsupported)
        );
        assert_eq!(plan_create(&state, "api", "front", EndpointMode::Dnsrr, &[]), Ok(()));
    }

    #[test]
    fn tasks_must_be_on_the_services_network() {
        let state = state();
        assert_eq!(check_task(&state, "web", "front"), Ok(()));
        assert!(matches!(check_task(&state, "web", "back"), Err(ServiceError::WrongNetwork { .. })));
        assert!(matches!(check_task(&state, "nope", "front"), Err(ServiceError::NotFound(_))));
    }
}
