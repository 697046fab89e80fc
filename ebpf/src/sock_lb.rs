//! Rust mirror of `include/abi/sock.h`: the containers whose sockets are balanced at connect().

/// This node's attached namespaces, by network namespace cookie.
pub const SOCK_CLIENTS_MAP: &str = "md_sock_clients_v1";

/// `MD_SOCK_CLIENTS_MAX`: capacity of [`SOCK_CLIENTS_MAP`].
pub const SOCK_CLIENTS_MAX: u32 = 4096;
/// `MD_SOCK_CLIENT_NETS`: networks per namespace balanced at the socket (the rest by tc).
pub const SOCK_CLIENT_NETS: u32 = 4;

/// Mirrors `struct md_sock_net`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SockNet {
    pub subnet: u32,
    pub mask: u32,
    /// The namespace's address on the network (network order).
    pub addr: u32,
    /// The host side of its veth there.
    pub ifindex: u32,
}

/// Mirrors `struct md_sock_client`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SockClient {
    /// `nets[..count]` are used.
    pub count: u32,
    pub pad: u32,
    pub nets: [SockNet; SOCK_CLIENT_NETS as usize],
}

// SAFETY: repr(C), integers only, explicit padding: every bit pattern is valid.
#[allow(unsafe_code)]
unsafe impl aya::Pod for SockNet {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for SockClient {}
