//! meshd's nftables table (`table ip meshd`), written whole and atomically with `nft -f`.

use std::net::Ipv4Addr;

use crate::state::Protocol;

/// The named counter of the packets a container sent to the node itself, or to another node of
/// the cluster, that were dropped (reason `drop-to-node`); it counts from the last time the
/// table was written.
pub const TO_NODE_COUNTER: &str = "to_node";

/// What the table is written from: the reconciler rewrites it when any of this changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// The overlay subnets (containers' sources).
    pub subnets: Vec<ipnet::Ipv4Net>,
    /// The address meshd answers Docker containers' DNS on, if it does.
    pub node_dns: Option<Ipv4Addr>,
    /// The cluster's nodes' addresses (their gossip addresses), this node's included.
    pub nodes: Vec<Ipv4Addr>,
    /// The published ports, which a container may still reach on any node's address.
    pub published: Vec<(u16, Protocol)>,
    /// The cluster's data path (VXLAN) port.
    pub data_path_port: u16,
}

/// Replaces meshd's nftables table, atomically (`nft -f`):
/// - the VXLAN packets themselves (UDP to the cluster's data path port, 4789 by default; in and out) skip connection tracking: they are
///   never translated, and tracking every encapsulated packet costs a conntrack lookup (and an
///   entry per peer) on the overlay's hot path;
/// - traffic from overlay subnets leaving for anywhere that is not an overlay subnet is
///   masqueraded (containers reach the underlay through the node);
/// - no new connection from outside is forwarded into an overlay subnet;
/// - a container (a source in an overlay subnet) may not open anything on the node itself: its
///   VXLAN and gossip ports, its API, any other service; but for DNS to `node_dns`, the address
///   meshd answers Docker containers on (their resolver forwards there). Replies to the node's
///   own connections (its clients of published ports, say) still come in. Counted in
///   [`TO_NODE_COUNTER`];
/// - nor anything on another node of the cluster (the forward hook sees it before masquerade
///   gives it this node's address, which another node would take for this node's own: its
///   gossip port's share for this node, its metrics, its API over TCP); but for the published
///   ports, which answer on every node's address. Replies to flows the node forwarded still
///   pass. Counted in [`TO_NODE_COUNTER`] too.
///
/// This rule is here rather than in the container veth's eBPF program because only conntrack
/// tells a reply to one of the node's own connections from a new flow (for UDP too), and the input
/// hook sees whatever is addressed to any local address of the node, also ones added later. What eBPF does at the veth is stateless: spoofed sources, other networks, UDP to
/// the VXLAN port of any host.
pub fn apply(table: &Table) -> std::io::Result<()> {
    use std::io::Write;
    let rules = render(table);
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().expect("piped").write_all(rules.as_bytes())?;
    let output = child.wait_with_output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("nft: {}", String::from_utf8_lossy(&output.stderr).trim())))
    }
}

/// The table's text for `nft -f`.
fn render(table: &Table) -> String {
    let Table { subnets, node_dns, nodes, published, data_path_port } = table;
    let mut rules = String::from("table ip meshd {}\ndelete table ip meshd\ntable ip meshd {\n");
    rules.push_str(&format!(
        "  chain raw_prerouting {{\n    type filter hook prerouting priority raw; policy accept;\n    \
         udp dport {data_path_port} notrack\n  }}\n  chain raw_output {{\n    type filter hook output priority raw; policy accept;\n    \
         udp dport {data_path_port} notrack\n  }}\n"
    ));
    rules.push_str(&format!("  counter {TO_NODE_COUNTER} {{ }}\n"));
    if !subnets.is_empty() {
        let set = subnets.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
        let dns = node_dns
            .map(|addr| format!("ip saddr {{ {set} }} ip daddr {addr} meta l4proto {{ udp, tcp }} th dport 53 accept\n    "))
            .unwrap_or_default();
        rules.push_str(&format!(
            "  chain input {{\n    type filter hook input priority filter; policy accept;\n    \
             {dns}ip saddr {{ {set} }} ct state != {{ established, related }} \
             counter name {TO_NODE_COUNTER} drop\n  }}\n"
        ));
        rules.push_str(&format!(
            "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    \
             ip saddr {{ {set} }} ip daddr != {{ {set} }} masquerade\n  }}\n"
        ));
        // The node routes to its containers (/32) and to the overlay (the node's own clients),
        // and forwards for masquerade; nothing from outside may open a connection into the
        // overlay through that (published ports and the overlay itself never pass here).
        let to_nodes = if nodes.is_empty() {
            String::new()
        } else {
            let node_set = nodes.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
            let open = if published.is_empty() {
                String::new()
            } else {
                let ports =
                    published.iter().map(|(port, proto)| format!("{proto} . {port}")).collect::<Vec<_>>();
                format!(
                    "ip saddr {{ {set} }} ip daddr {{ {node_set} }} meta l4proto . th dport {{ {} }} accept\n    ",
                    ports.join(", ")
                )
            };
            format!(
                "{open}ip saddr {{ {set} }} ip daddr {{ {node_set} }} ct state != {{ established, related }} \
                 counter name {TO_NODE_COUNTER} drop\n    "
            )
        };
        rules.push_str(&format!(
            "  chain forward {{\n    type filter hook forward priority filter; policy accept;\n    \
             {to_nodes}ip daddr {{ {set} }} ct state != {{ established, related }} drop\n  }}\n"
        ));
    }
    rules.push_str("}\n");
    rules
}

/// Packets and bytes counted by [`TO_NODE_COUNTER`] (`nft -j list counter`).
pub fn to_node_dropped() -> std::io::Result<(u64, u64)> {
    let output = std::process::Command::new("nft")
        .args(["-j", "list", "counter", "ip", "meshd", TO_NODE_COUNTER])
        .output()?;
    if !output.status.success() {
        return Err(std::io::Error::other(format!(
            "nft: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| std::io::Error::other(format!("nft -j: {e}")))?;
    let counter = json["nftables"]
        .as_array()
        .and_then(|items| items.iter().find_map(|item| item.get("counter")))
        .ok_or_else(|| std::io::Error::other("nft -j: no counter in the answer"))?;
    Ok((counter["packets"].as_u64().unwrap_or(0), counter["bytes"].as_u64().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_reach_other_nodes_only_on_published_ports() {
        let table = Table {
            subnets: vec!["10.72.0.0/24".parse().unwrap()],
            node_dns: None,
            nodes: vec![Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2)],
            published: vec![(8080, Protocol::Tcp), (5353, Protocol::Udp)],
            data_path_port: 4790,
        };
        let rules = render(&table);
        // The tunnel's packets skip conntrack on the cluster's port, and only there.
        assert_eq!(rules.matches("udp dport 4790 notrack").count(), 2, "{rules}");
        assert!(!rules.contains("4789"), "{rules}");
        let forward = &rules[rules.find("chain forward").unwrap()..];
        let accept = forward.find("meta l4proto . th dport { tcp . 8080, udp . 5353 } accept").unwrap();
        let drop = forward
            .find("ip saddr { 10.72.0.0/24 } ip daddr { 10.77.0.1, 10.77.0.2 } ct state != { established, related } counter name to_node drop")
            .unwrap();
        assert!(accept < drop, "the published ports are let through before the drop:\n{rules}");
        let none = render(&Table { nodes: Vec::new(), ..table });
        assert!(!none.contains("ip daddr { 10.77"), "{none}");
    }
}
