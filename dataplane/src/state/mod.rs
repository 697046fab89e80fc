//! Cluster state: typed tables with versions, merged the same way on every node.
//!
//! - [`version`]: the (lamport, node) versions that order every write cluster-wide.
//! - [`table`]: a last-writer-wins table with tombstones, the building block of every table.
//! - [`records`]: what the tables hold (nodes, networks, services, endpoints, address blocks)
//!   and the domain types they are made of (availability, endpoint mode, protocols, liveness).
//! - [`delta`]: one versioned write to one table, the unit gossip spreads.
//! - [`cluster`]: the tables and the rules that merge deltas into them (node-owned entries are
//!   hidden while their node is down and removed when it leaves).
//! - [`blocks`]: a subnet's address blocks, the unit the managers grant to nodes.
//! - [`network_options`]: a network's options and the one rule of what each address is for.
//! - [`claims`]: what a node may claim for itself (endpoint addresses from its own blocks, a
//!   bounded number of endpoints), checked at receipt.
//! - [`validate`]: what a well-formed record is, for local creates and merged records alike.
//! - [`snapshot`]: the immutable view of the state and of membership that the gossip agent
//!   publishes and every other part of meshd reads.
//!
//! Everything here is pure: no I/O, no clocks read behind the caller's back (the caller passes
//! `now`), so merge rules are unit-tested exhaustively.

pub mod blocks;
pub mod claims;
pub mod cluster;
pub mod delta;
pub mod network_options;
pub mod records;
pub mod signature;
pub mod snapshot;
pub mod table;
pub mod validate;
pub mod version;

pub use cluster::ClusterState;
pub use delta::{Change, Delta, DeltaError, DeltaKey, SignedDelta};
pub use records::{
    Availability, BlockClaim, ClusterSecrets, EndpointMode, EndpointRecord, Health, JoinEpochs,
    KeyringStatus, Liveness, ManagerStatus, NetworkRecord, NodeRecord, Protocol, PublishMode, PublishedPort,
    Revocation, Role, RoleRecord, ServiceRecord, MAX_PUBLISHED_PORTS, MAX_PUBLISH_ENTRIES,
};
pub use signature::Signature;
pub use snapshot::Snapshot;
pub use table::{Applied, Table};
pub use version::{LamportClock, Version};
