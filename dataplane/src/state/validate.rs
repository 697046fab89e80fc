//! What a well-formed record is. A local create (`network::plan`, `service::plan`) and a record
//! merged from another node are held to the same rules, so a member cannot put into everyone's
//! state what no `meshctl` command would accept.
//!
//! Checks that need only the record (and, for ports and overlaps, the rest of the state) live
//! here; who may write a record is `gossip::admission`'s business.

use super::cluster::ClusterState;
use super::records::{
    ClusterSecrets, EndpointMode, EndpointRecord, ManagerStatus, NetworkRecord, NodeRecord, Protocol,
    ServiceRecord, MAX_PUBLISHED_PORTS, MAX_PUBLISH_ENTRIES,
};
use crate::util::hash::fnv1a_32;

/// VNIs below this are left to other VXLAN users on the same hosts.
pub const VNI_BASE: u32 = 4096;
const VNI_SPACE: u32 = (1 << 24) - VNI_BASE;
pub use crate::identity::settings::{MAX_PREFIX, MIN_PREFIX};
/// Limits on what a node may put in its own records.
const MAX_NODE_NAME: usize = 64;
const MAX_CERT_BYTES: usize = 4096;
const MAX_TASK_NAME: usize = 253;
const MAX_GOSSIP_KEYS: usize = 3;
/// Aliases one endpoint may have (Docker sets a few: the service's name, the container's short
/// ID, what `--network-alias` adds).
pub const MAX_ALIASES: usize = 16;
/// The most voters a manager may list in its view of the Raft group (Swarm advises at most 7
/// managers; this only bounds the record).
pub const MAX_VOTERS: usize = 64;

/// The VNI of a network named `name`: derived from the name (FNV-1a, folded into
/// 4096..2^24), so two managers creating networks at once never pick the same VNI the way
/// "lowest free number" would, and a network re-created under its name gets its VNI back.
pub fn vni_for(name: &str) -> u32 {
    VNI_BASE + fnv1a_32(name.bytes()) % VNI_SPACE
}

/// 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit.
pub fn is_network_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A DNS label: 1 to 63 letters, digits, '_' or '-', starting with a letter or digit.
pub fn is_service_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// A network record: a valid name, a subnet in range without host bits, its name's VNI, and no
/// overlap or VNI collision with another live network that was there first.
pub fn network(state: &ClusterState, name: &str, record: &NetworkRecord) -> Result<(), String> {
    network_among(state.networks.live(), name, record)
}

/// [`network`] against any set of existing networks (the managers' decided ones, say).
pub fn network_among<'a>(
    existing: impl Iterator<Item = (&'a String, &'a NetworkRecord)>,
    name: &str,
    record: &NetworkRecord,
) -> Result<(), String> {
    if !is_network_name(name) {
        return Err(format!("invalid network name {:?}", shown(name)));
    }
    let subnet = record.subnet;
    if subnet.trunc() != subnet || !(MIN_PREFIX..=MAX_PREFIX).contains(&subnet.prefix_len()) {
        return Err(format!("network {name:?}: subnet {subnet} has host bits or a prefix out of range"));
    }
    if record.vni != vni_for(name) {
        return Err(format!("network {name:?}: VNI {} is not its name's ({})", record.vni, vni_for(name)));
    }
    record.options.check(&subnet).map_err(|e| format!("network {name:?}: {e}"))?;
    for (other, existing) in existing.filter(|(other, _)| other.as_str() != name) {
        let overlap =
            existing.subnet.contains(&subnet.network()) || subnet.contains(&existing.subnet.network());
        if overlap || existing.vni == record.vni {
            return Err(format!("network {name:?} overlaps network {other:?} (subnet or VNI)"));
        }
    }
    Ok(())
}

/// The ports meshd itself uses on every node: VXLAN on the cluster's data path port (UDP; 4789
/// unless the cluster was created with `--data-path-port`) and each node's gossip port (UDP
/// and TCP; 7946 unless `--listen-port` says otherwise). A published port there would capture
/// the cluster's own traffic.
pub fn meshd_ports(state: &ClusterState, data_path_port: u16) -> Vec<(u16, Protocol)> {
    let mut ports = vec![(data_path_port, Protocol::Udp)];
    for (_, node) in state.nodes.live() {
        let port = node.gossip_addr.port();
        ports.extend([(port, Protocol::Udp), (port, Protocol::Tcp)]);
        // The node's WireGuard engine (encrypted networks).
        if let Some(wireguard) = &node.wireguard {
            ports.push((wireguard.port, Protocol::Udp));
        }
    }
    ports.sort();
    ports.dedup();
    ports
}

/// A service record: a valid name, a VIP exactly in vip mode (inside its network's subnet when
/// the network is known), ports only in vip mode, each valid, once, and not meshd's own.
pub fn service(
    state: &ClusterState,
    name: &str,
    record: &ServiceRecord,
    data_path_port: u16,
) -> Result<(), String> {
    if !is_service_name(name) {
        return Err(format!("invalid service name {:?}", shown(name)));
    }
    if !is_network_name(&record.network) {
        return Err(format!("service {name:?}: invalid network name"));
    }
    match (record.mode, record.vip) {
        (EndpointMode::Vip, Some(vip)) => {
            if let Some(network) = state.networks.get(&record.network) {
                if !network.subnet.contains(&vip) {
                    return Err(format!(
                        "service {name:?}: VIP {vip} is outside network {:?}",
                        record.network
                    ));
                }
            }
        }
        (EndpointMode::Dnsrr, None) => {}
        _ => return Err(format!("service {name:?}: a VIP in vip mode only")),
    }
    if record.mode == EndpointMode::Dnsrr && !record.ports.is_empty() {
        return Err(format!("service {name:?}: dnsrr services publish no ports"));
    }
    if record.ports.len() > MAX_PUBLISH_ENTRIES {
        return Err(format!("service {name:?}: more than {MAX_PUBLISH_ENTRIES} published entries"));
    }
    let total: usize = record.ports.iter().map(|p| usize::from(p.count)).sum();
    if total > MAX_PUBLISHED_PORTS {
        return Err(format!("service {name:?}: more than {MAX_PUBLISHED_PORTS} published ports"));
    }
    let own = meshd_ports(state, data_path_port);
    for (i, port) in record.ports.iter().enumerate() {
        let fits = |first: u16| first != 0 && u32::from(first) + u32::from(port.count) - 1 <= 65535;
        if port.count == 0 || !fits(port.published) || !fits(port.target) {
            return Err(format!("service {name:?}: invalid port {port}"));
        }
        if record.ports[..i].iter().any(|other| other.conflicts(port)) {
            return Err(format!("service {name:?}: port {port} overlaps another of its ports"));
        }
        if own.iter().any(|(p, proto)| port.publishes(*p, *proto)) {
            return Err(format!("service {name:?}: port {port} is meshd's own"));
        }
    }
    Ok(())
}

/// A manager's view of the Raft group: bounded.
pub fn manager_status(status: &ManagerStatus) -> Result<(), String> {
    if status.voters.len() > MAX_VOTERS {
        return Err(format!("a manager status listing more than {MAX_VOTERS} voters"));
    }
    Ok(())
}

/// An endpoint record: a valid network name and, if any, a bounded printable task name.
pub fn endpoint(record: &EndpointRecord) -> Result<(), String> {
    if !is_network_name(&record.network) {
        return Err("endpoint: invalid network name".into());
    }
    if let Some(task) = &record.task {
        if task.is_empty() || task.len() > MAX_TASK_NAME || !task.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("endpoint: invalid task name {:?}", shown(task)));
        }
    }
    if let Some(service) = &record.service {
        if !is_service_name(service) {
            return Err(format!("endpoint: invalid service name {:?}", shown(service)));
        }
    }
    if record.aliases.len() > MAX_ALIASES {
        return Err(format!("endpoint: more than {MAX_ALIASES} aliases"));
    }
    for alias in &record.aliases {
        if alias.is_empty() || alias.len() > MAX_TASK_NAME || !alias.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("endpoint: invalid alias {:?}", shown(alias)));
        }
    }
    Ok(())
}

/// A node record: a bounded printable name, and a certificate of bounded size.
pub fn node(record: &NodeRecord) -> Result<(), String> {
    let name_ok = !record.name.is_empty()
        && record.name.len() <= MAX_NODE_NAME
        && record.name.chars().all(|c| !c.is_control());
    if !name_ok {
        return Err(format!("node: invalid name {:?}", shown(&record.name)));
    }
    if record.cert.0.is_empty() || record.cert.0.len() > MAX_CERT_BYTES {
        return Err("node: no certificate, or one too large".into());
    }
    Ok(())
}

/// The cluster's secrets: at least one gossip key (and only a few), and join epochs that never
/// go back (a rotated token must stay rotated).
pub fn secrets(current: Option<&ClusterSecrets>, new: &ClusterSecrets) -> Result<(), String> {
    if new.gossip_keys.is_empty() || new.gossip_keys.len() > MAX_GOSSIP_KEYS {
        return Err(format!("secrets: 1 to {MAX_GOSSIP_KEYS} gossip keys"));
    }
    if let Some(current) = current {
        let epochs = (new.join_epochs.worker, new.join_epochs.manager);
        if epochs.0 < current.join_epochs.worker || epochs.1 < current.join_epochs.manager {
            return Err("secrets: a join token rotation cannot be undone".into());
        }
    }
    Ok(())
}

/// A name as an error message shows it: at most 80 characters.
fn shown(name: &str) -> String {
    name.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::identity::{NodeId, Secret};
    use crate::state::{Change, Delta, JoinEpochs, PublishedPort, Version};

    fn with_network(name: &str, subnet: &str) -> ClusterState {
        let mut state = ClusterState::default();
        let record = NetworkRecord {
            subnet: subnet.parse().unwrap(),
            vni: vni_for(name),
            options: Default::default(),
        };
        let version = Version { lamport: 1, node: NodeId::from_bytes([1; 16]) };
        state
            .apply(
                Delta { version, change: Change::Network { name: name.into(), record: Some(record) } },
                Instant::now(),
            )
            .unwrap();
        state
    }

    #[test]
    fn networks_need_their_vni_a_sane_subnet_and_no_overlap() {
        let state = with_network("front", "10.1.0.0/24");
        let record = |subnet: &str, vni| NetworkRecord {
            subnet: subnet.parse().unwrap(),
            vni,
            options: Default::default(),
        };
        assert!(network(&state, "back", &record("10.2.0.0/24", vni_for("back"))).is_ok());
        assert!(network(&state, "front", &record("10.1.0.0/24", vni_for("front"))).is_ok(), "itself");
        assert!(network(&state, "back", &record("10.2.0.0/24", 4096)).is_err(), "someone else's VNI");
        assert!(network(&state, "back", &record("10.1.0.128/25", vni_for("back"))).is_err(), "overlap");
        assert!(network(&state, "back", &record("10.0.0.0/8", vni_for("back"))).is_err(), "overlap");
        assert!(network(&state, "back", &record("10.2.0.0/30", vni_for("back"))).is_err(), "prefix");
        assert!(network(&state, "a b", &record("10.2.0.0/24", vni_for("a b"))).is_err(), "name");
    }

    #[test]
    fn services_keep_to_their_mode_network_and_ports() {
        let state = with_network("front", "10.1.0.0/24");
        let port = |published, protocol| PublishedPort::single(published, 80, protocol);
        let vip = |ip: &str, ports| ServiceRecord {
            network: "front".into(),
            mode: EndpointMode::Vip,
            vip: Some(ip.parse().unwrap()),
            ports,
        };
        assert!(service(&state, "web", &vip("10.1.0.9", vec![port(8080, Protocol::Tcp)]), 4789).is_ok());
        assert!(service(&state, "web", &vip("10.9.0.9", vec![]), 4789).is_err(), "VIP outside the network");
        assert!(service(&state, "web", &vip("10.1.0.9", vec![port(4789, Protocol::Udp)]), 4789).is_err());
        // A cluster on another data path port reserves that one, and 4789 is free to publish.
        assert!(service(&state, "web", &vip("10.1.0.9", vec![port(4790, Protocol::Udp)]), 4790).is_err());
        assert!(service(&state, "web", &vip("10.1.0.9", vec![port(4789, Protocol::Udp)]), 4790).is_ok());
        let twice = vec![port(8080, Protocol::Tcp), port(8080, Protocol::Tcp)];
        assert!(service(&state, "web", &vip("10.1.0.9", twice), 4789).is_err());
        let dnsrr =
            ServiceRecord { network: "front".into(), mode: EndpointMode::Dnsrr, vip: None, ports: vec![] };
        assert!(service(&state, "db", &dnsrr, 4789).is_ok());
        assert!(service(
            &state,
            "db",
            &ServiceRecord { vip: Some("10.1.0.3".parse().unwrap()), ..dnsrr.clone() },
            4789
        )
        .is_err());
        assert!(service(&state, "-db", &dnsrr, 4789).is_err());
    }

    #[test]
    fn secrets_are_never_emptied_and_rotations_never_undone() {
        let one = ClusterSecrets {
            gossip_keys: vec![Secret::from_bytes([1; 32])],
            join_epochs: JoinEpochs { worker: 2, manager: 1 },
        };
        assert!(secrets(None, &one).is_ok());
        assert!(secrets(Some(&one), &ClusterSecrets { gossip_keys: vec![], ..one.clone() }).is_err());
        let back = ClusterSecrets { join_epochs: JoinEpochs { worker: 1, manager: 1 }, ..one.clone() };
        assert!(secrets(Some(&one), &back).is_err());
    }
}
