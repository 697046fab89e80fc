//! Rust mirror of `include/abi/overlay.h`: the overlay fast path (VXLAN encapsulated and
//! decapsulated by the programs, without the VXLAN device on the data path).

/// The fast path's settings, an array of one.
pub const CONFIG_MAP: &str = "md_overlay_v1";
/// `MD_OVERLAY_MAX`: [`CONFIG_MAP`] has one entry, key 0.
pub const CONFIG_MAX: u32 = 1;
/// `MD_OVERLAY_FAST_PATH`: encapsulate and decapsulate in the programs.
pub const FAST_PATH: u32 = 1;

/// How to reach each node on the wire (written by the programs only).
pub const HOPS_MAP: &str = "md_overlay_hops_v1";
/// `MD_OVERLAY_HOPS_MAX`: capacity of [`HOPS_MAP`] (LRU).
pub const HOPS_MAX: u32 = 16384;

/// Mirrors `struct md_overlay_config`, the value of [`CONFIG_MAP`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OverlayConfig {
    /// [`FAST_PATH`] or 0.
    pub flags: u32,
    /// The interface holding the advertise address.
    pub underlay_ifindex: u32,
    /// Its MTU: a single packet that would not fit takes the VXLAN device.
    pub underlay_mtu: u32,
    pub pad: u32,
}

/// Mirrors `struct md_overlay_hop`, the value of [`HOPS_MAP`] (keyed by a node's underlay
/// address, [`crate::net_order::ipv4`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OverlayHop {
    pub dmac: [u8; 6],
    pub smac: [u8; 6],
    pub ifindex: u32,
    /// `bpf_ktime_get_ns()` of the route lookup that found it.
    pub checked_ns: u64,
}

// SAFETY: repr(C), integers only, no implicit padding: every bit pattern is valid.
#[allow(unsafe_code)]
unsafe impl aya::Pod for OverlayConfig {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for OverlayHop {}
