//! The integration-test harness: a cluster of real `meshd` processes, each in its own network
//! namespace, joined by an underlay bridge, with container namespaces and real clients.
//!
//! Everything a test creates is owned by a guard that removes it on drop, also when the test
//! panics: processes are stopped, namespaces (and with them every link inside) deleted, pinned
//! maps and state directories removed. Names carry a per-test prefix so tests run in parallel.
//! A test killed outright (SIGKILL) cannot clean up; `.ci/run` sweeps namespaces named `mt*`
//! before it starts.

pub mod attack;
pub mod binaries;
pub mod browser;
pub mod cluster;
pub mod cni;
pub mod command;
pub mod depth;
pub mod http;
pub mod load;
pub mod monitor;
pub mod names;
pub mod netns;
pub mod nginx;
pub mod process;
pub mod rogue;
pub mod runtimes;
pub mod sock_tables;

pub use cluster::{Cluster, Container, Node};
pub use netns::Netns;

/// Integration tests need root (namespaces, bpffs). Fail loudly rather than skip: a skipped
/// test proves nothing.
pub fn require_root() {
    if !nix::unistd::Uid::effective().is_root() {
        panic!("integration tests need root (network namespaces, eBPF): run them with sudo");
    }
}
