//! The eBPF side of the kernel-facing layer, all through aya; the C sources and the map ABI live
//! in the `meshd-ebpf` crate.
//!
//! - [`batch`]: batched map writes (`BPF_MAP_UPDATE_BATCH`, `BPF_MAP_DELETE_BATCH`), which aya
//!   0.14 has no call for.
//! - [`bpffs`]: mounting bpffs and the node's pin directory.
//! - [`datapath`]: loading (and verifying) every object, the node-wide settings map.
//! - [`links`]: attaching programs to interfaces and to a cgroup (the v2 root, or `--cgroup-root`), pinned.
//! - [`forwarding`]: the forwarding maps as one value, diffed and written.
//! - [`maglev_tables`]: the per-service Maglev arrays in the hash of maps.
//! - [`flow_tables`]: the containers' flow tables, one per local endpoint.
//! - [`sock_tables`]: the socket programs' tables, one per network namespace.
//! - [`inspect`]: a VIP's load balancing read back from the kernel.
//! - [`pressure`]: how full each map is (a walk of its keys), and conntrack's flows per VIP.
//! - [`retired_pins`]: removing map pins an older build left (a map renamed for a new layout).
//! - [`verdicts`]: the per-CPU verdict counters.
//! - [`events`]: the monitor's ring buffer of drop and flow events, its switch and rate limit.
//! - [`cgroup`]: where the socket programs attach, and the netns cookie that scopes them.

pub mod batch;
pub mod bpffs;
pub mod cgroup;
pub mod datapath;
pub mod error;
pub mod events;
pub mod flow_tables;
pub mod forwarding;
pub mod inspect;
pub mod links;
pub mod maglev_tables;
pub mod mapped_array;
pub mod pressure;
pub mod retired_pins;
pub mod sock_tables;
pub mod verdicts;

pub use datapath::Datapath;
pub use error::BpfError;
pub use forwarding::Forwarding;
pub use inspect::LbView;
