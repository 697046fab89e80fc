//! meshd's eBPF programs and the Rust side of their ABI.
//!
//! The programs are C (`ebpf/*.bpf.c`, one concern per header under `ebpf/include/`), compiled by
//! clang in this crate's build script and embedded here, so the agent binary carries exactly the
//! objects it was built with. Map key and value types are declared once in `include/abi/*.h` and
//! mirrored as `#[repr(C)]` structs in this crate; `tests/layout.rs` keeps the two in step.
//!
//! Unsafe code: only the `aya::Pod` impls, which promise aya that a type is plain old data
//! (every bit pattern valid, no padding the kernel could leave undefined).

#![deny(unsafe_code)]

pub mod encrypt;
pub mod endpoint;
pub mod events;
pub mod lb;
pub mod mesh;
pub mod net_order;
pub mod node;
pub mod overlay;
pub mod sock_lb;
pub mod verdict;

/// One compiled eBPF object: its file name under `target/bpf/` and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Object {
    pub name: &'static str,
    pub bytes: &'static [u8],
}

/// Programs attached to the host side of each container veth (`veth.bpf.c`).
pub const VETH: Object = Object {
    name: "veth.bpf.o",
    bytes: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/veth.bpf.o")),
};

/// The program on the node's VXLAN device (`vxlan.bpf.c`).
pub const VXLAN: Object = Object {
    name: "vxlan.bpf.o",
    bytes: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vxlan.bpf.o")),
};

/// The routing mesh's front door on the node's underlay interface (`underlay.bpf.c`).
pub const UNDERLAY: Object = Object {
    name: "underlay.bpf.o",
    bytes: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/underlay.bpf.o")),
};

/// Load balancing at the socket, on the cgroup v2 root (`sock.bpf.c`): published ports for the
/// node's own sockets, VIPs for its containers'.
pub const SOCK: Object = Object {
    name: "sock.bpf.o",
    bytes: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sock.bpf.o")),
};

/// Every object this crate ships; the verifier test loads each of them.
pub const OBJECTS: &[Object] = &[VETH, VXLAN, UNDERLAY, SOCK];

/// Program names inside [`UNDERLAY`].
pub mod underlay {
    /// tc ingress of the underlay interface: published ports.
    pub const INGRESS: &str = "underlay_ingress";
}

/// Program names inside [`SOCK`], with the cgroup hook each one is for.
pub mod sock {
    pub const CONNECT4: &str = "sock_connect4";
    pub const SENDMSG4: &str = "sock_sendmsg4";
    pub const RECVMSG4: &str = "sock_recvmsg4";
    pub const GETPEERNAME4: &str = "sock_getpeername4";
    /// The socket-address programs (`cgroup/connect4` and the like).
    pub const ALL: &[&str] = &[CONNECT4, SENDMSG4, RECVMSG4, GETPEERNAME4];
    /// `cgroup/sock_release`: frees a closed socket's translation.
    pub const RELEASE: &str = "sock_release";
}

/// Program names inside [`VXLAN`].
pub mod vxlan {
    /// tc ingress of the VXLAN device: traffic from other nodes.
    pub const INGRESS: &str = "vxlan_ingress";
    /// tc egress of the VXLAN device: the node's own packets into the overlay.
    pub const TO_TUNNEL: &str = "vxlan_to_tunnel";
}

/// Program names inside [`VETH`].
pub mod veth {
    /// tc ingress of the host-side veth: traffic the container sends.
    pub const FROM_CONTAINER: &str = "veth_from_container";
    /// tc egress of the host-side veth: traffic delivered to the container.
    pub const TO_CONTAINER: &str = "veth_to_container";
}
