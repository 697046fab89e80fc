//! Who a node and a cluster are: the node's ID, the cluster's secrets, and the join token that
//! carries them to a new node.
//!
//! - [`node_id`]: the node's random 128-bit ID, created once and kept in the state directory.
//! - [`cluster`]: the cluster ID, its secrets and the join token (`MESHTKN-1-...`).
//! - [`settings`]: what the cluster was created with (address pools, data path port).

pub mod cluster;
pub mod node_id;
pub mod settings;

pub use cluster::{Fingerprint, JoinToken, ParseTokenError, Secret};
pub use node_id::NodeId;
pub use settings::{ClusterSettings, RequestedSettings, SettingsError};
