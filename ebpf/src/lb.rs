//! Rust mirror of `include/abi/lb.h`: service VIPs, Maglev tables, connection tracking.

pub const SERVICES_MAP: &str = "md_services_v1";
/// `MD_SERVICES_MAX`: capacity of [`SERVICES_MAP`] (VIPs).
pub const SERVICES_MAX: u32 = 16384;
/// Service id -> that service's Maglev table (an array: M, a fingerprint, then the slots).
pub const MAGLEV_MAP: &str = "md_maglev_v3";
/// `MD_MAGLEV_MAX`: capacity of [`MAGLEV_MAP`] (Maglev tables, one per VIP with a backend).
pub const MAGLEV_MAX: u32 = 16384;
/// `MD_MAGLEV_TEMPLATE_MAX`: size of the C inner-map template; each table is created with its
/// own size.
pub const MAGLEV_TEMPLATE_MAX: u32 = 1;
/// `BPF_F_INNER_MAP | BPF_F_MMAPABLE`: the flags every table is created with (as the C template
/// declares): tables of different sizes live in one outer map, and the agent writes a table
/// through a mapping of its memory.
pub const MAGLEV_TABLE_FLAGS: u32 = BPF_F_INNER_MAP | BPF_F_MMAPABLE;
/// `BPF_F_INNER_MAP` (uapi/linux/bpf.h).
pub const BPF_F_INNER_MAP: u32 = 1 << 12;
/// `BPF_F_MMAPABLE` (uapi/linux/bpf.h).
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
/// `MD_MAGLEV_SIZE`, `MD_MAGLEV_FINGERPRINT`, `MD_MAGLEV_SLOTS`: where a table's parts are.
pub const MAGLEV_SIZE: u32 = 0;
pub const MAGLEV_FINGERPRINT: u32 = 1;
pub const MAGLEV_SLOTS: u32 = 2;
/// Published ports' flows from outside clients (the routing mesh).
pub const CT_MAP: &str = "md_ct_v3";
/// `MD_CT_MAX`: capacity of [`CT_MAP`] (tracked flows; LRU).
pub const CT_MAX: u32 = 262144;
/// Every local endpoint's flow table (a hash of maps keyed by the endpoint's address).
pub const FLOWS_MAP: &str = "md_flows_v1";
/// `MD_FLOW_TABLES_MAX`: capacity of [`FLOWS_MAP`] (one table per local endpoint).
pub const FLOW_TABLES_MAX: u32 = 4096;
/// `MD_FLOWS_PER_ENDPOINT`: capacity of one endpoint's flow table (an LRU hash of
/// [`FlowKey`] -> [`Flow`]); every table is created with exactly these parameters.
pub const FLOWS_PER_ENDPOINT: u32 = 8192;
/// `BPF_MAP_TYPE_LRU_HASH`: the type of an endpoint's flow table.
pub const FLOW_TABLE_TYPE: u32 = 9;
/// `BPF_F_NO_COMMON_LRU`: the flags of an endpoint's flow table (as the C template declares).
pub const FLOW_TABLE_FLAGS: u32 = 1 << 1;
/// `MD_FLOW_TO_SERVICE`, `MD_FLOW_REPLY`: the two entries of a flow.
pub const FLOW_TO_SERVICE: u8 = 0;
pub const FLOW_REPLY: u8 = 1;

/// `MD_CT_FIN`: the client sent FIN; the entry expires soon after.
pub const CT_FIN: u32 = 1;

/// Mirrors `struct md_service`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Service {
    /// Stable service id: its key in [`MAGLEV_MAP`].
    pub id: u32,
    /// Always 0: a Maglev table carries its own size (element [`MAGLEV_SIZE`]).
    pub pad: u32,
}

/// Mirrors `struct md_ct_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtKey {
    pub client_ip: u32,
    pub vip: u32,
    /// The service's id.
    pub svc: u32,
    pub client_port: u16,
    pub port: u16,
    pub proto: u8,
    pub pad: [u8; 3],
}

/// Mirrors `struct md_ct_val`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CtVal {
    pub backend_ip: u32,
    pub flags: u32,
    /// `bpf_ktime_get_ns()` of the last packet.
    pub last_seen: u64,
}

/// Mirrors `struct md_rnat_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RnatKey {
    pub backend_ip: u32,
    pub client_ip: u32,
    pub port: u16,
    pub client_port: u16,
    pub proto: u8,
    pub pad: [u8; 3],
}

/// Mirrors `struct md_flow_key`: a key of an endpoint's flow table.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// [`FLOW_TO_SERVICE`]: the VIP (or node address); [`FLOW_REPLY`]: the backend.
    pub addr: u32,
    /// [`FLOW_TO_SERVICE`]: the service id; [`FLOW_REPLY`]: 0.
    pub svc: u32,
    pub port: u16,
    pub client_port: u16,
    pub proto: u8,
    pub dir: u8,
    pub pad: [u8; 2],
}

/// Mirrors `struct md_flow`: a value of an endpoint's flow table.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flow {
    /// [`FLOW_TO_SERVICE`]: the backend; [`FLOW_REPLY`]: the source to put back.
    pub addr: u32,
    pub port: u16,
    pub flags: u16,
    pub last_seen: u64,
}

// SAFETY: repr(C), integers and byte arrays only, explicit padding: every bit pattern is valid.
#[allow(unsafe_code)]
unsafe impl aya::Pod for Service {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for CtKey {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for CtVal {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for RnatKey {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for FlowKey {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for Flow {}
