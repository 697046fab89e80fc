//! meshd's nftables table (`table ip meshd`), written whole and atomically with `nft -f`.

use crate::netlink::vxlan::PORT as VXLAN_PORT;

/// The named counter of the packets a container sent to the node itself that were dropped
/// (reason `drop-to-node`); it counts from the last time the table was written.
pub const TO_NODE_COUNTER: &str = "to_node";

/// Replaces meshd's nftables table, atomically (`nft -f`):
/// - the VXLAN packets themselves (UDP 4789, in and out) skip connection tracking: they are
///   never translated, and tracking every encapsulated packet costs a conntrack lookup (and an
///   entry per peer) on the overlay's hot path;
/// - traffic from overlay subnets leaving for anywhere that is not an overlay subnet is
///   masqueraded (containers reach the underlay through the node);
/// - no new connection from outside is forwarded into an overlay subnet;
/// - a container (a source in an overlay subnet) may not open anything on the node itself: its
///   VXLAN and gossip ports, its API, any other service; but for DNS to `node_dns`, the address
///   meshd answers Docker containers on (their resolver forwards there). Replies to the node's
///   own connections (its clients of published ports, say) still come in. Counted in
///   [`TO_NODE_COUNTER`].
///
/// This rule is here rather than in the container veth's eBPF program because only conntrack
/// tells a reply to one of the node's own connections from a new flow (for UDP too), and the input
/// hook sees whatever is addressed to any local address of the node, also ones added later. What eBPF does at the veth is stateless: spoofed sources, other networks, UDP to
/// the VXLAN port of any host.
pub fn apply(subnets: &[ipnet::Ipv4Net], node_dns: Option<std::net::Ipv4Addr>) -> std::io::Result<()> {
    use std::io::Write;
    let mut rules = String::from("table ip meshd {}\ndelete table ip meshd\ntable ip meshd {\n");
    rules.push_str(&format!(
        "  chain raw_prerouting {{\n    type filter hook prerouting priority raw; policy accept;\n    \
         udp dport {VXLAN_PORT} notrack\n  }}\n  chain raw_output {{\n    type filter hook output priority raw; policy accept;\n    \
         udp dport {VXLAN_PORT} notrack\n  }}\n"
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
        rules.push_str(&format!(
            "  chain forward {{\n    type filter hook forward priority filter; policy accept;\n    \
             ip daddr {{ {set} }} ct state != {{ established, related }} drop\n  }}\n"
        ));
    }
    rules.push_str("}\n");
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
