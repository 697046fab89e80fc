//! meshd's nftables table (`table ip meshd`), written whole and atomically with `nft -f`.

use crate::netlink::vxlan::PORT as VXLAN_PORT;

/// Replaces meshd's nftables table, atomically (`nft -f`):
/// - the VXLAN packets themselves (UDP 4789, in and out) skip connection tracking: they are
///   never translated, and tracking every encapsulated packet costs a conntrack lookup (and an
///   entry per peer) on the overlay's hot path;
/// - traffic from overlay subnets leaving for anywhere that is not an overlay subnet is
///   masqueraded (containers reach the underlay through the node);
/// - no new connection from outside is forwarded into an overlay subnet.
pub fn apply(subnets: &[ipnet::Ipv4Net]) -> std::io::Result<()> {
    use std::io::Write;
    let mut rules = String::from("table ip meshd {}\ndelete table ip meshd\ntable ip meshd {\n");
    rules.push_str(&format!(
        "  chain raw_prerouting {{\n    type filter hook prerouting priority raw; policy accept;\n    \
         udp dport {VXLAN_PORT} notrack\n  }}\n  chain raw_output {{\n    type filter hook output priority raw; policy accept;\n    \
         udp dport {VXLAN_PORT} notrack\n  }}\n"
    ));
    if !subnets.is_empty() {
        let set = subnets.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
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
