//! Rendering replies: aligned tables like `docker node ls`, or JSON.

use crate::api::reply::{NodeInfo, Reply};
use crate::monitor::{EventKind, MonitorEvent, Peer};
use crate::state::network_options::NetworkOptions;

use super::args::Format;

/// Renders a reply in the requested format; the returned text ends with a newline.
pub fn render(reply: &Reply, format: Format) -> String {
    match format {
        Format::Json => {
            // The payload only, without the protocol's envelope: a list is a JSON array.
            let value = match reply {
                Reply::Nodes(nodes) => serde_json::to_value(nodes),
                Reply::JoinToken { token } => Ok(serde_json::json!({ "token": token })),
                Reply::NodeUpdated { id } => Ok(serde_json::json!({ "id": id })),
                Reply::Left {} => Ok(serde_json::json!({ "left": true })),
                Reply::Stats { gossip, datapath, dns } => {
                    Ok(serde_json::json!({ "gossip": gossip, "datapath": datapath, "dns": dns }))
                }
                Reply::Networks(networks) => serde_json::to_value(networks),
                Reply::NetworkDetail(detail) => serde_json::to_value(detail),
                Reply::Removed {} => Ok(serde_json::json!({ "removed": true })),
                Reply::Attached { address, interface, .. } => {
                    Ok(serde_json::json!({ "address": address, "interface": interface }))
                }
                Reply::Detached { count } => Ok(serde_json::json!({ "detached": count })),
                Reply::HealthSet { count } => Ok(serde_json::json!({ "changed": count })),
                Reply::Services(services) => serde_json::to_value(services),
                Reply::Tasks(tasks) => serde_json::to_value(tasks),
                Reply::Inspect(inspect) => serde_json::to_value(inspect),
                Reply::KeyRotated {} => Ok(serde_json::json!({ "rotated": true })),
                Reply::Attachments(attachments) => serde_json::to_value(attachments),
                Reply::Monitoring {} => Ok(serde_json::json!({ "monitoring": true })),
                Reply::BackupWritten { path, bytes, index, networks, services } => Ok(serde_json::json!({
                    "path": path, "bytes": bytes, "index": index, "networks": networks, "services": services
                })),
            };
            let mut text = value
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
            text.push('\n');
            text
        }
        Format::Table => match reply {
            Reply::Nodes(nodes) => nodes_table(nodes),
            Reply::NetworkDetail(detail) => {
                let mut out = format!(
                    "network {}: subnet {}, VNI {}, gateway {}\n",
                    detail.name, detail.subnet, detail.vni, detail.gateway
                );
                for line in option_lines(&detail.options) {
                    out.push_str(&format!("  {line}\n"));
                }
                out.push('\n');
                let blocks: Vec<Vec<String>> = detail
                    .blocks
                    .iter()
                    .map(|b| vec![b.index.to_string(), b.range.clone(), b.node.clone()])
                    .collect();
                out.push_str(&table(&["BLOCK", "RANGE", "NODE"], &blocks));
                let endpoints: Vec<Vec<String>> = detail
                    .endpoints
                    .iter()
                    .map(|e| {
                        vec![
                            e.address.to_string(),
                            e.node.clone(),
                            e.service.clone().unwrap_or_default(),
                            e.task.clone().unwrap_or_default(),
                            e.aliases.join(","),
                            e.id.clone(),
                        ]
                    })
                    .collect();
                out.push('\n');
                out.push_str(&table(
                    &["ADDRESS", "NODE", "SERVICE", "TASK", "ALIASES", "ENDPOINT"],
                    &endpoints,
                ));
                out
            }
            // Just the token, so `TOKEN=$(meshctl join-token)` works.
            Reply::JoinToken { token } => format!("{token}\n"),
            Reply::NodeUpdated { id } => format!("{id}\n"),
            Reply::Left {} => "left the cluster\n".to_string(),
            Reply::KeyRotated {} => "gossip key rotated on every node\n".to_string(),
            Reply::BackupWritten { path, bytes, index, networks, services } => format!(
                "backup written to {path}: {bytes} bytes, {networks} networks, {services} services, as of Raft index {index}\n"
            ),
            Reply::Stats { gossip, datapath, dns } => {
                let rows: Vec<Vec<String>> = gossip
                    .iter()
                    .map(|c| vec!["gossip".to_string(), c.name.clone(), c.value.to_string()])
                    .chain(dns.iter().map(|c| vec!["dns".to_string(), c.name.clone(), c.value.to_string()]))
                    .collect();
                let mut out = table(&["AREA", "COUNTER", "VALUE"], &rows);
                if !datapath.is_empty() {
                    let rows: Vec<Vec<String>> = datapath
                        .iter()
                        .map(|c| {
                            vec![
                                c.interface.clone(),
                                c.direction.clone(),
                                c.verdict.clone(),
                                c.packets.to_string(),
                                c.bytes.to_string(),
                            ]
                        })
                        .collect();
                    out.push('\n');
                    out.push_str(&table(&["INTERFACE", "DIRECTION", "VERDICT", "PACKETS", "BYTES"], &rows));
                }
                out
            }
            Reply::Networks(networks) => {
                let rows: Vec<Vec<String>> = networks
                    .iter()
                    .map(|n| {
                        vec![
                            n.name.clone(),
                            n.subnet.clone(),
                            n.vni.to_string(),
                            n.gateway.to_string(),
                            n.endpoints.to_string(),
                            option_summary(&n.options),
                        ]
                    })
                    .collect();
                table(&["NAME", "SUBNET", "VNI", "GATEWAY", "ENDPOINTS", "OPTIONS"], &rows)
            }
            Reply::Removed {} => String::new(),
            Reply::Attached { address, .. } => format!("{address}\n"),
            Reply::Detached { count } => format!("detached from {count} network(s)\n"),
            Reply::HealthSet { count } => format!("health set on {count} endpoint(s)\n"),
            Reply::Services(services) => {
                let rows: Vec<Vec<String>> = services
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.network.clone(),
                            s.mode.to_string(),
                            s.vip.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                            format!("{}/{}", s.healthy, s.tasks),
                            if s.ports.is_empty() { "-".into() } else { s.ports.join(", ") },
                        ]
                    })
                    .collect();
                table(&["NAME", "NETWORK", "MODE", "VIP", "BACKENDS", "PORTS"], &rows)
            }
            Reply::Monitoring {} => String::new(),
            Reply::Inspect(inspect) => {
                let vip = inspect.vip.map(|v| v.to_string()).unwrap_or_else(|| "- (dnsrr)".into());
                let mut out = format!(
                    "service {}  VIP {}  Maglev table {} slots\n",
                    inspect.name, vip, inspect.table_size
                );
                let rows: Vec<Vec<String>> = inspect
                    .backends
                    .iter()
                    .map(|b| {
                        vec![
                            b.address.to_string(),
                            b.slots.to_string(),
                            format!("{:.1} %", b.share * 100.0),
                            b.flows.to_string(),
                        ]
                    })
                    .collect();
                out.push_str(&table(&["BACKEND", "SLOTS", "SHARE", "FLOWS"], &rows));
                for frontend in &inspect.frontends {
                    out.push_str(&format!("published {frontend}\n"));
                }
                out
            }
            Reply::Tasks(tasks) => {
                let rows: Vec<Vec<String>> = tasks
                    .iter()
                    .map(|t| vec![t.task.clone(), t.address.to_string(), t.node.clone(), t.state.clone()])
                    .collect();
                table(&["TASK", "ADDRESS", "NODE", "STATE"], &rows)
            }
            Reply::Attachments(attachments) => {
                let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
                let rows: Vec<Vec<String>> = attachments
                    .iter()
                    .map(|a| {
                        vec![
                            a.network.clone(),
                            format!("{}/{}", a.address, a.prefix_len),
                            dash(&a.service),
                            dash(&a.task),
                            a.host_interface.clone(),
                            a.netns.clone(),
                            dash(&a.owner),
                        ]
                    })
                    .collect();
                table(&["NETWORK", "ADDRESS", "SERVICE", "TASK", "VETH", "NETNS", "OWNER"], &rows)
            }
        },
    }
}

fn nodes_table(nodes: &[NodeInfo]) -> String {
    let rows = nodes
        .iter()
        .map(|node| {
            let id = if node.is_self { format!("{} *", node.id.short()) } else { node.id.short() };
            vec![
                id,
                node.name.clone(),
                node.address.to_string(),
                node.status.to_string(),
                node.availability.to_string(),
                node.role.to_string(),
                node.manager_status.map(|s| s.to_string()).unwrap_or_default(),
                node.encryption.clone().unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect::<Vec<_>>();
    table(&["ID", "NAME", "ADDRESS", "STATUS", "AVAILABILITY", "ROLE", "MANAGER STATUS", "ENCRYPTION"], &rows)
}

/// Left-aligned columns separated by three spaces; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 3;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// One monitor event as one line: time, node, interface, direction, protocol, the two ends
/// (with what each address is: NETWORK/SERVICE or task), the verdict and reason, and a flow's
/// backend. JSON: the event object.
pub fn event_line(event: &MonitorEvent, format: Format) -> String {
    if format == Format::Json {
        let mut line = serde_json::to_string(event).unwrap_or_default();
        line.push('\n');
        return line;
    }
    let time = event.time.split_once('T').map_or(event.time.as_str(), |(_, t)| t.trim_end_matches('Z'));
    let kind = match event.kind {
        EventKind::Drop => "DROP",
        EventKind::Flow => "FLOW",
    };
    let mut line = format!(
        "{time} {kind} {} {} {} {} {} -> {} {} {}",
        event.node,
        event.interface,
        event.direction,
        event.protocol,
        peer(&event.source),
        peer(&event.destination),
        event.verdict,
        event.reason
    );
    if let Some(backend) = &event.backend {
        line.push_str(&format!(" backend {}", peer(backend)));
    }
    line.push('\n');
    line
}

/// `10.1.0.2:80 (front/web.1)`.
fn peer(peer: &Peer) -> String {
    let mut out = match peer.port {
        Some(port) => format!("{}:{port}", peer.address),
        None => peer.address.to_string(),
    };
    let what: Vec<&str> = [peer.network.as_deref(), peer.task.as_deref().or(peer.service.as_deref())]
        .into_iter()
        .flatten()
        .collect();
    if !what.is_empty() {
        out.push_str(&format!(" ({})", what.join("/")));
    } else if let Some(node) = &peer.node {
        out.push_str(&format!(" (node {node})"));
    }
    out
}

/// `network ls`'s OPTIONS column: the options set, comma-separated (labels only by count).
fn option_summary(options: &NetworkOptions) -> String {
    let mut parts = Vec::new();
    if let Some(range) = options.ip_range {
        parts.push(format!("ip-range={range}"));
    }
    if !options.aux_addresses.is_empty() {
        parts.push(format!("aux={}", options.aux_addresses.len()));
    }
    if options.internal {
        parts.push("internal".to_string());
    }
    if options.encrypted {
        parts.push("encrypted".to_string());
    }
    if let Some(mtu) = options.mtu {
        parts.push(format!("mtu={mtu}"));
    }
    if !options.labels.is_empty() {
        parts.push(format!("labels={}", options.labels.len()));
    }
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(",")
    }
}

/// `network inspect`'s option lines, one per option set.
fn option_lines(options: &NetworkOptions) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(range) = options.ip_range {
        lines.push(format!("ip-range {range}"));
    }
    for (name, address) in &options.aux_addresses {
        lines.push(format!("aux-address {name}={address}"));
    }
    if options.internal {
        lines.push("internal".to_string());
    }
    if options.encrypted {
        lines.push("encrypted".to_string());
    }
    if let Some(mtu) = options.mtu {
        lines.push(format!("mtu {mtu}"));
    }
    for (key, value) in &options.labels {
        lines.push(format!("label {key}={value}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::reply::{ManagerState, NodeStatus};

    #[test]
    fn an_event_is_one_line() {
        let peer = |last, network: &str, task: Option<&str>| Peer {
            address: std::net::Ipv4Addr::new(10, 0, 0, last),
            port: None,
            network: Some(network.into()),
            service: None,
            task: task.map(Into::into),
            node: None,
        };
        let event = MonitorEvent {
            time: "2026-01-02T03:04:05.000006Z".into(),
            kind: EventKind::Drop,
            node: "n1".into(),
            interface: "mdv1".into(),
            direction: "from-container".into(),
            verdict: "dropped".into(),
            reason: "drop-network-mismatch".into(),
            protocol: "icmp".into(),
            source: peer(2, "front", Some("web.1")),
            destination: peer(3, "back", None),
            backend: None,
            length: 98,
        };
        assert_eq!(
            event_line(&event, Format::Table),
            "03:04:05.000006 DROP n1 mdv1 from-container icmp 10.0.0.2 (front/web.1) -> 10.0.0.3 (back) dropped drop-network-mismatch\n"
        );
        let json: serde_json::Value = serde_json::from_str(&event_line(&event, Format::Json)).unwrap();
        assert_eq!(json["destination"]["network"], "back");
    }
    use crate::identity::NodeId;
    use crate::state::{Availability, Role};

    #[test]
    fn tables_align() {
        let out = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()], vec!["q".into(), "22".into()]]);
        assert_eq!(out, "A     LONGER\nxyz   1\nq     22\n");
    }

    #[test]
    fn node_rows_mark_self_and_json_is_an_array() {
        let node = NodeInfo {
            id: NodeId::from_bytes([0x12; 16]),
            name: "n1".into(),
            address: "10.0.0.1".parse().unwrap(),
            status: NodeStatus::Alive,
            availability: Availability::Active,
            role: Role::Manager,
            manager_status: Some(ManagerState::Leader),
            voter: true,
            is_self: true,
            encryption: Some("userspace".into()),
        };
        let reply = Reply::Nodes(vec![node]);
        let text = render(&reply, Format::Table);
        let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            ["121212121212", "*", "n1", "10.0.0.1", "alive", "active", "manager", "leader", "userspace"],
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&render(&reply, Format::Json)).unwrap()[0]["role"],
            "manager"
        );
        let json: serde_json::Value = serde_json::from_str(&render(&reply, Format::Json)).unwrap();
        assert_eq!(json[0]["status"], "alive");
        assert_eq!(json[0]["manager_status"], "leader");
        assert_eq!(json[0]["id"], "12".repeat(16));
    }
}
