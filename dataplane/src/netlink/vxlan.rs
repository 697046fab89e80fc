//! The node's one VXLAN device, in collect-metadata ("external") mode on UDP 4789, and the
//! node-level settings the overlay needs: forwarding on, masquerade of overlay traffic that
//! leaves for the underlay (like docker_gwbridge), and routes from the node itself into the
//! overlay (its own clients of published ports reach remote backends that way).

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::LinkAttribute;
use rtnetlink::{Handle, LinkUnspec, LinkVxlan, RouteMessageBuilder};

use crate::netlink::links::{self, netlink_err, LinkError};

pub const DEVICE: &str = "md-vxlan";
pub const PORT: u16 = 4789;
/// VXLAN over IPv4 adds 50 bytes (outer Ethernet is not counted in the MTU: IP 20 + UDP 8 +
/// VXLAN 8 + inner Ethernet 14).
pub const OVERHEAD: u32 = 50;

/// Creates the VXLAN device if it is missing (an existing one is reused: restarts keep it) and
/// brings it up. Returns its ifindex.
pub async fn ensure_device(handle: &Handle) -> Result<u32, LinkError> {
    if links::find(handle, DEVICE).await?.is_none() {
        let device = LinkVxlan::new(DEVICE, 0).collect_metadata(true).port(PORT).learning(false).build();
        handle.link().add(device).execute().await.map_err(netlink_err("create vxlan", DEVICE))?;
    }
    let link = links::find(handle, DEVICE).await?.ok_or_else(|| LinkError::Missing(DEVICE.to_string()))?;
    // No ARP: the node's packets routed into the overlay get their tunnel key from the eBPF
    // program on egress (the peer's MACs are set on the far side), so there is nobody to ask.
    handle
        .link()
        .set(LinkUnspec::new_with_index(link.header.index).up().arp(false).build())
        .execute()
        .await
        .map_err(netlink_err("bring up", DEVICE))?;
    Ok(link.header.index)
}

/// The interface that holds the node's underlay address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    pub ifindex: u32,
    pub name: String,
    pub mtu: u32,
}

/// The interface holding `addr`, or None if no interface has it.
pub async fn underlay(handle: &Handle, addr: IpAddr) -> Result<Option<Underlay>, LinkError> {
    let mut addresses = handle.address().get().execute();
    let mut index = None;
    while let Some(message) = addresses.try_next().await.map_err(netlink_err("list addresses", "*"))? {
        let matches = message
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Local(ip) | AddressAttribute::Address(ip) if *ip == addr));
        if matches {
            index = Some(message.header.index);
        }
    }
    let Some(index) = index else { return Ok(None) };
    let mut found = handle.link().get().match_index(index).execute();
    let Some(link) = found.try_next().await.map_err(netlink_err("get", index.to_string()))? else {
        return Ok(None);
    };
    let mtu =
        link.attributes.iter().find_map(|a| if let LinkAttribute::Mtu(m) = a { Some(*m) } else { None });
    let name = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    });
    Ok(Some(Underlay { ifindex: index, name: name.unwrap_or_default(), mtu: mtu.unwrap_or(1500) }))
}

/// Routes each overlay subnet into the VXLAN device with the node's underlay address as source
/// (replies then come back through the tunnel to an address the node owns), and removes the
/// routes of subnets no longer in `subnets` (`previous` is what the last call installed).
pub async fn sync_routes(
    handle: &Handle,
    vxlan_ifindex: u32,
    source: Ipv4Addr,
    subnets: &[ipnet::Ipv4Net],
    previous: &[ipnet::Ipv4Net],
) -> Result<(), LinkError> {
    let route = |subnet: &ipnet::Ipv4Net| {
        RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(subnet.network(), subnet.prefix_len())
            .output_interface(vxlan_ifindex)
            .pref_source(source)
            .build()
    };
    for subnet in subnets {
        handle
            .route()
            .add(route(subnet))
            .replace()
            .execute()
            .await
            .map_err(netlink_err("add overlay route", subnet.to_string()))?;
    }
    for gone in previous.iter().filter(|p| !subnets.contains(p)) {
        // Already gone (someone removed it) is what we wanted.
        let _ = handle.route().del(route(gone)).execute().await;
    }
    Ok(())
}

/// The node's reserved local ports (`net.ipv4.ip_local_reserved_ports`): the kernel never
/// picks them as ephemeral ports. A published port must be one of them, or the routing mesh
/// would take the replies to the node's own connections that happen to use it.
const RESERVED_PORTS: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/// The reserved ports as the kernel lists them now (kept as they are: meshd adds to them).
pub fn reserved_ports() -> std::io::Result<String> {
    Ok(std::fs::read_to_string(RESERVED_PORTS)?.trim().to_string())
}

/// Reserves `base` (the list found at start) plus `published`.
pub fn reserve_ports(base: &str, published: &[u16]) -> std::io::Result<()> {
    let mut list: Vec<String> =
        base.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect();
    list.extend(published.iter().map(u16::to_string));
    // An empty write is refused by the kernel; a single newline clears the list.
    let value = if list.is_empty() { "\n".to_string() } else { list.join(",") };
    std::fs::write(RESERVED_PORTS, value)
}

/// Turns on IPv4 forwarding in this namespace (containers reach the underlay through the node).
pub fn enable_forwarding() -> std::io::Result<()> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
}

/// Replaces meshd's nftables table, atomically (`nft -f`):
/// - the VXLAN packets themselves (UDP 4789, in and out) skip connection tracking: they are
///   never translated, and tracking every encapsulated packet costs a conntrack lookup (and an
///   entry per peer) on the overlay's hot path;
/// - traffic from overlay subnets leaving for anywhere that is not an overlay subnet is
///   masqueraded (containers reach the underlay through the node);
/// - no new connection from outside is forwarded into an overlay subnet.
pub fn apply_nft_rules(subnets: &[ipnet::Ipv4Net]) -> std::io::Result<()> {
    use std::io::Write;
    let mut rules = String::from("table ip meshd {}\ndelete table ip meshd\ntable ip meshd {\n");
    rules.push_str(&format!(
        "  chain raw_prerouting {{\n    type filter hook prerouting priority raw; policy accept;\n    \
         udp dport {PORT} notrack\n  }}\n  chain raw_output {{\n    type filter hook output priority raw; policy accept;\n    \
         udp dport {PORT} notrack\n  }}\n"
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
