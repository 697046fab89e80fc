//! Published ports: the `PUBLISHED:TARGET[/PROTO]` syntax, which service holds each port, and
//! the ports no service may publish because meshd itself uses them.

use std::collections::BTreeMap;

use super::error::ServiceError;
use crate::state::{ClusterState, EndpointMode, Protocol, PublishedPort, Version};

/// Parses `PUBLISHED:TARGET[/tcp|/udp]` (TCP when no protocol is given, as in Swarm).
pub fn parse_publish(text: &str) -> Result<PublishedPort, ServiceError> {
    let bad = || ServiceError::PublishSyntax(text.chars().take(80).collect());
    let (ports, protocol) = match text.split_once('/') {
        None => (text, Protocol::Tcp),
        Some((ports, "tcp")) => (ports, Protocol::Tcp),
        Some((ports, "udp")) => (ports, Protocol::Udp),
        Some(_) => return Err(bad()),
    };
    let (published, target) = ports.split_once(':').ok_or_else(bad)?;
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
    Ok(PublishedPort { published: port(published)?, target: port(target)?, protocol })
}

/// Which service holds each published (port, protocol): the earliest claim (by state version)
/// wins, so two services that published the same port concurrently on two nodes settle on the
/// same owner everywhere; the other one's claim is shown but not served.
pub fn port_owners(state: &ClusterState) -> BTreeMap<(u16, Protocol), String> {
    let mut owners: BTreeMap<(u16, Protocol), (Version, String)> = BTreeMap::new();
    for (name, entry) in state.services.entries() {
        let Some(record) = &entry.value else { continue };
        if record.mode != EndpointMode::Vip {
            continue;
        }
        for port in &record.ports {
            let claim = (entry.version, name.clone());
            owners
                .entry((port.published, port.protocol))
                .and_modify(|held| {
                    if claim < *held {
                        *held = claim.clone();
                    }
                })
                .or_insert(claim);
        }
    }
    owners.into_iter().map(|(port, (_, name))| (port, name)).collect()
}

pub use crate::state::validate::meshd_ports;

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::identity::NodeId;
    use crate::state::{Change, Delta, NodeRecord};

    #[test]
    fn every_nodes_gossip_port_and_vxlan_are_meshds_own() {
        let mut state = ClusterState::default();
        for (n, port) in [(1u8, 7946u16), (2, 8000)] {
            let id = NodeId::from_bytes([n; 16]);
            let record = NodeRecord {
                name: format!("n{n}"),
                gossip_addr: format!("10.0.0.{n}:{port}").parse().unwrap(),
                left: false,
                departed: None,
                cert: Default::default(),
                founder: None,
                keyring: Default::default(),
                wireguard: None,
            };
            let delta = Delta {
                version: Version { lamport: 1, node: id },
                change: Change::Node { id, record: Some(record) },
            };
            state.apply(delta, Instant::now()).unwrap();
        }
        assert_eq!(
            meshd_ports(&state, 4789),
            [
                (4789, Protocol::Udp),
                (7946, Protocol::Tcp),
                (7946, Protocol::Udp),
                (8000, Protocol::Tcp),
                (8000, Protocol::Udp)
            ]
        );
    }
}
