//! Rust mirror of `include/abi/mesh.h`: published ports and the routing mesh's reply tables.

/// Published ports on this node's addresses.
pub const FRONTENDS_MAP: &str = "md_frontends_v2";
/// Ingress node: the published address of each flow, by its reply.
pub const MESH_RNAT_MAP: &str = "md_mesh_rnat_v2";
/// Backend's node: the ingress node of each flow that came through the tunnel.
pub const MESH_RETURN_MAP: &str = "md_mesh_return_v2";
/// The sockets the socket programs translated (the node's own, its containers'): a hash of maps,
/// one LRU table of [`SockKey`] -> [`SockNat`] per network namespace, by the namespace's cookie.
pub const SOCK_RNAT_MAP: &str = "md_sock_rnat_v3";

/// `MD_FRONTENDS_MAX`: capacity of [`FRONTENDS_MAP`] (published ports on this node's addresses).
pub const FRONTENDS_MAX: u32 = 16384;
/// `MD_MESH_RNAT_MAX`: capacity of [`MESH_RNAT_MAP`] (flows that entered here; LRU).
pub const MESH_RNAT_MAX: u32 = 131072;
/// `MD_MESH_RETURN_MAX`: capacity of [`MESH_RETURN_MAP`] (flows brought in by other nodes; LRU).
pub const MESH_RETURN_MAX: u32 = 131072;
/// The fullest of the socket tables, as the map-pressure metric names it (not a map of its own).
pub const SOCK_TABLE_FULLEST: &str = "md_sock_rnat_v3/fullest";
/// `MD_SOCK_TABLES_MAX`: capacity of [`SOCK_RNAT_MAP`]: a table for each attached namespace
/// (`sock_lb::SOCK_CLIENTS_MAX`) and the node's own.
pub const SOCK_TABLES_MAX: u32 = 4097;
/// `MD_SOCK_RNAT_PER_NETNS`: capacity of one namespace's socket table (an LRU hash; two entries
/// per socket); every table is created with exactly these parameters.
pub const SOCK_RNAT_PER_NETNS: u32 = 8192;
/// `BPF_MAP_TYPE_LRU_HASH`: the type of a namespace's socket table.
pub const SOCK_TABLE_TYPE: u32 = 9;
/// The flags of a namespace's socket table (none: one LRU list per table, as the C template).
pub const SOCK_TABLE_FLAGS: u32 = 0;
/// `MD_SOCK_TRANSLATION`, `MD_SOCK_LAST`: the two kinds of entry of a socket ([`SockKey::kind`]).
pub const SOCK_TRANSLATION: u16 = 0;
pub const SOCK_LAST: u16 = 1;

/// Mirrors `struct md_frontend_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FrontendKey {
    pub addr: u32,
    /// Network byte order.
    pub port: u16,
    pub proto: u8,
    pub pad: u8,
}

/// `MD_FRONTEND_LOCAL` ([`Frontend::flags`]): mode=host, only this node's tasks serve the port.
pub const FRONTEND_LOCAL: u16 = 1;

/// Mirrors `struct md_frontend`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Frontend {
    pub vip: u32,
    /// Network byte order.
    pub target_port: u16,
    /// `FRONTEND_LOCAL` or 0.
    pub flags: u16,
    /// The md_maglev_v3 key to pick a backend from: the service's id, or (host mode) the id of
    /// its table of this node's tasks.
    pub table: u32,
}

/// Mirrors `struct md_mesh_nat`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MeshNat {
    pub addr: u32,
    pub ifindex: u32,
    pub port: u16,
    pub peer_mac: [u8; 6],
    pub local_mac: [u8; 6],
    pub pad: u16,
    /// `bpf_ktime_get_ns()` of the client's last packet.
    pub last_seen: u64,
}

/// Mirrors `struct md_mesh_return`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MeshReturn {
    pub node_ip: u32,
    pub vni: u32,
    /// `bpf_ktime_get_ns()` of the flow's last packet through the tunnel.
    pub last_seen: u64,
}

/// Mirrors `struct md_sock_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SockKey {
    pub cookie: u64,
    /// 0 in a [`SOCK_LAST`] entry.
    pub backend_ip: u32,
    /// 0 in a [`SOCK_LAST`] entry.
    pub backend_port: u16,
    /// [`SOCK_TRANSLATION`] or [`SOCK_LAST`].
    pub kind: u16,
}

/// Mirrors `struct md_sock_nat`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SockNat {
    pub addr: u32,
    pub port: u16,
    pub pad: u16,
}

/// IPPROTO_TCP and IPPROTO_UDP, as `proto` holds them.
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

// SAFETY: repr(C), integers only, explicit padding: every bit pattern is valid.
#[allow(unsafe_code)]
unsafe impl aya::Pod for FrontendKey {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for Frontend {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for MeshNat {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for MeshReturn {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for SockKey {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for SockNat {}
