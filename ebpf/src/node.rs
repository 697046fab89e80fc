//! Rust mirror of `include/abi/node.h`: the node-wide settings map.

/// Node-wide settings, an array of one.
pub const CONFIG_MAP: &str = "md_config_v4";
/// `MD_CONFIG_MAX`: [`CONFIG_MAP`] has one entry, key 0.
pub const CONFIG_MAX: u32 = 1;

/// The cluster's nodes by underlay address: who may send tunnel packets.
pub const NODES_MAP: &str = "md_nodes_v1";
/// `MD_NODES_MAX`: capacity of [`NODES_MAP`].
pub const NODES_MAX: u32 = 16384;
/// `MD_NODE_MEMBER`: a current member of the cluster.
pub const NODE_MEMBER: u32 = 1;

/// Mirrors `struct md_node`, the value of [`NODES_MAP`] (keyed by the node's underlay address,
/// [`crate::net_order::ipv4`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Node {
    /// `MD_NODE_*` flags.
    pub flags: u32,
    pub pad: u32,
}

/// The L2 hop each node's tunnel packets came through (written by the underlay program only).
pub const NODE_HOPS_MAP: &str = "md_node_hops_v1";
/// `MD_NODE_HOPS_MAX`: capacity of [`NODE_HOPS_MAP`] (LRU).
pub const NODE_HOPS_MAX: u32 = 16384;

/// Mirrors `struct md_node_hop`, the value of [`NODE_HOPS_MAP`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NodeHop {
    pub mac: [u8; 6],
    pub pad: [u8; 2],
}

/// Mirrors `struct md_node_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeConfig {
    pub vxlan_ifindex: u32,
    /// The node's underlay address ([`crate::net_order::ipv4`]).
    pub node_ip: u32,
    /// A tracked flow idle for longer is balanced afresh; 0: never.
    pub ct_idle_ns: u64,
    /// The node's network namespace cookie: the socket programs act only inside it.
    pub netns_cookie: u64,
    /// The cluster's data path (VXLAN) port in network order ([`crate::net_order::port`]); 0
    /// reads as 4789.
    pub vxlan_port: u16,
    pub pad16: u16,
    pub pad: u32,
}

// SAFETY: repr(C), integers only, no implicit padding: every bit pattern is valid.
#[allow(unsafe_code)]
unsafe impl aya::Pod for NodeConfig {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for Node {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for NodeHop {}
