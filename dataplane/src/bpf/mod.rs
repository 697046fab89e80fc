//! The eBPF side of the kernel-facing layer: bpffs, loading the objects built from `ebpf/`,
//! attaching programs and reading their maps. All through aya; the C sources and the map ABI live
//! in the `meshd-ebpf` crate.

pub mod bpffs;
pub mod cgroup;
pub mod datapath;
pub mod error;
pub mod verdicts;

pub use datapath::{Datapath, LbView, VethAttachment};
pub use error::BpfError;
