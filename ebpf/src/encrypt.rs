//! Rust mirror of `include/abi/encrypt.h`: encrypted overlay networks (which networks cross
//! WireGuard, to which peers a tunnel is up, and the route into the engine).

/// The engine's interface, routing table and mark, an array of one.
pub const CONFIG_MAP: &str = "md_encrypt_v1";
/// `MD_ENCRYPT_MAX`: [`CONFIG_MAP`] has one entry, key 0.
pub const CONFIG_MAX: u32 = 1;
/// The encrypted networks, keyed by VNI (host order, as in the tunnel key).
pub const NETS_MAP: &str = "md_encrypted_nets_v1";
/// `MD_ENCRYPTED_NETS_MAX`: capacity of [`NETS_MAP`].
pub const NETS_MAX: u32 = 4096;
/// The peers with a tunnel, keyed by underlay address ([`crate::net_order::ipv4`]).
pub const TUNNELS_MAP: &str = "md_tunnels_v1";
/// `MD_TUNNELS_MAX`: capacity of [`TUNNELS_MAP`].
pub const TUNNELS_MAX: u32 = 16384;
/// `MD_TUNNEL_READY`: the peer is configured in the engine.
pub const TUNNEL_READY: u32 = 1;

/// Mirrors `struct md_encrypt_config`, the value of [`CONFIG_MAP`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncryptConfig {
    /// The node's WireGuard interface; 0: no engine (every encrypted packet is dropped).
    pub wg_ifindex: u32,
    /// The routing table whose default route is that interface.
    pub table: u32,
    /// The `skb->mark` that selects the table.
    pub mark: u32,
    pub pad: u32,
}

/// Mirrors `struct md_encrypted_net`, the value of [`NETS_MAP`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncryptedNet {
    pub flags: u32,
    pub pad: u32,
}

/// Mirrors `struct md_tunnel`, the value of [`TUNNELS_MAP`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tunnel {
    /// [`TUNNEL_READY`] or 0.
    pub flags: u32,
    pub pad: u32,
}

// SAFETY: repr(C), integers only, no implicit padding: every bit pattern is valid.
#[allow(unsafe_code)]
unsafe impl aya::Pod for EncryptConfig {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for EncryptedNet {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for Tunnel {}
