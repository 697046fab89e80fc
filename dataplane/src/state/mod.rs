//! Cluster state: typed tables with versions, merged the same way on every node.
//!
//! - [`version`]: the (lamport, node) versions that order every write cluster-wide.
//! - [`table`]: a last-writer-wins table with tombstones, the building block of every table.
//! - [`cluster`]: the tables meshd replicates, the deltas that change them, and the rules for
//!   node-owned entries (hidden while their node is down, removed when it leaves).
//!
//! Everything here is pure: no I/O, no clocks read behind the caller's back (the caller passes
//! `now`), so merge rules are unit-tested exhaustively.

pub mod cluster;
pub mod table;
pub mod version;

pub use cluster::{Change, ClusterState, Delta, NodeRecord};
pub use table::{Applied, Table};
pub use version::{LamportClock, Version};
