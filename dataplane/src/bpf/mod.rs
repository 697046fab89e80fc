//! The eBPF side of the kernel-facing layer, all through aya; the C sources and the map ABI live
//! in the `meshd-ebpf` crate.
//!
//! - [`bpffs`]: mounting bpffs and the node's pin directory.
//! - [`datapath`]: loading (and verifying) every object, the node-wide settings map.
//! - [`links`]: attaching programs to interfaces and to the cgroup v2 root, pinned.
//! - [`forwarding`]: the forwarding maps as one value, diffed and written.
//! - [`maglev_tables`]: the per-service Maglev arrays in the hash of maps.
//! - [`inspect`]: a VIP's load balancing read back from the kernel.
//! - [`verdicts`]: the per-CPU verdict counters.
//! - [`cgroup`]: where the socket programs attach, and the netns cookie that scopes them.

pub mod bpffs;
pub mod cgroup;
pub mod datapath;
pub mod error;
pub mod flow_tables;
pub mod forwarding;
pub mod inspect;
pub mod links;
pub mod maglev_tables;
pub mod verdicts;

pub use datapath::Datapath;
pub use error::BpfError;
pub use forwarding::Forwarding;
pub use inspect::LbView;
