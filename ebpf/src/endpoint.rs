//! Rust mirror of `include/abi/endpoint.h`: the overlay forwarding maps.

use std::net::Ipv4Addr;

/// Every endpoint the node knows, keyed by its IPv4 address in network order.
pub const ENDPOINTS_MAP: &str = "md_endpoints_v2";
/// Every attached veth of the node, keyed by the host side's ifindex.
pub const IFACES_MAP: &str = "md_ifaces_v1";
/// Node-wide settings, an array of one.
pub const CONFIG_MAP: &str = "md_config_v3";

/// `MD_EP_LOCAL`: the endpoint is on this node.
pub const FLAG_LOCAL: u8 = 1;

/// Mirrors `struct md_endpoint`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Endpoint {
    pub vni: u32,
    /// Network order.
    pub node_ip: u32,
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub flags: u8,
    pub pad: u8,
}

/// Mirrors `struct md_iface`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Iface {
    pub vni: u32,
    /// Network order, like the next two.
    pub ip: u32,
    pub subnet: u32,
    pub mask: u32,
    pub mac: [u8; 6],
    pub pad: [u8; 2],
}

/// Mirrors `struct md_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    pub vxlan_ifindex: u32,
    /// The node's underlay address ([`ip_key`]).
    pub node_ip: u32,
    /// A tracked flow idle for longer is balanced afresh; 0: never.
    pub ct_idle_ns: u64,
    /// The node's network namespace cookie: the socket programs act only inside it.
    pub netns_cookie: u64,
}

// SAFETY: repr(C), integers and byte arrays only, explicit padding: every bit pattern is valid.
#[allow(unsafe_code)]
unsafe impl aya::Pod for Endpoint {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for Iface {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for Config {}

/// An address as the maps store it (network byte order in a native u32).
pub fn ip_key(ip: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

/// The inverse of [`ip_key`].
pub fn ip_from_key(key: u32) -> Ipv4Addr {
    Ipv4Addr::from(key.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_network_order() {
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        assert_eq!(ip_key(ip).to_ne_bytes(), [10, 1, 2, 3]);
        assert_eq!(ip_from_key(ip_key(ip)), ip);
    }
}
