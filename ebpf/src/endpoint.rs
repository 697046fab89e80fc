//! Rust mirror of `include/abi/endpoint.h`: the overlay forwarding maps.

/// Every endpoint the node knows, keyed by its IPv4 address in network order.
pub const ENDPOINTS_MAP: &str = "md_endpoints_v2";
/// Every attached veth of the node, keyed by the host side's ifindex.
pub const IFACES_MAP: &str = "md_ifaces_v2";
/// `MD_ENDPOINTS_MAX`: capacity of [`ENDPOINTS_MAP`] (every endpoint the node knows, cluster-wide).
pub const ENDPOINTS_MAX: u32 = 262144;
/// `MD_IFACES_MAX`: capacity of [`IFACES_MAP`] (attached veths on this node).
pub const IFACES_MAX: u32 = 4096;

/// `MD_EP_LOCAL`: the endpoint is on this node.
pub const FLAG_LOCAL: u8 = 1;

/// `MD_IFACE_INTERNAL`: the veth's network is `--internal`: nothing leaves the overlay.
pub const IFACE_INTERNAL: u8 = 1;

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
    /// `IFACE_INTERNAL` or 0.
    pub flags: u8,
    pub pad: u8,
    /// The network's gateway (network order): the source of a task's flow balanced back onto
    /// itself (0: no such rewrite).
    pub gateway: u32,
}

// SAFETY: repr(C), integers and byte arrays only, explicit padding: every bit pattern is valid.
#[allow(unsafe_code)]
unsafe impl aya::Pod for Endpoint {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for Iface {}
