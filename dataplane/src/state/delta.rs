//! Deltas: one versioned write to one table, the unit that gossip spreads and push-pull repairs.

use serde::{Deserialize, Serialize};

use super::records::{
    Availability, BlockClaim, ClusterSecrets, EndpointRecord, NetworkRecord, NodeRecord, ServiceRecord,
};
use super::version::Version;
use crate::identity::NodeId;

/// One versioned write to one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub version: Version,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    Node { id: NodeId, record: Option<NodeRecord> },
    Availability { id: NodeId, value: Option<Availability> },
    Secrets { value: Option<ClusterSecrets> },
    Endpoint { owner: NodeId, id: String, record: Option<EndpointRecord> },
    Network { name: String, record: Option<NetworkRecord> },
    Block { network: String, index: u32, claim: Option<BlockClaim> },
    Service { name: String, record: Option<ServiceRecord> },
}

/// Identifies the entry a delta writes; a newer delta for the same key supersedes an older one
/// still waiting to be gossiped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeltaKey {
    Node(NodeId),
    Availability(NodeId),
    Secrets,
    Endpoint(NodeId, String),
    Network(String),
    Block(String, u32),
    Service(String),
}

impl Delta {
    pub fn key(&self) -> DeltaKey {
        match &self.change {
            Change::Node { id, .. } => DeltaKey::Node(*id),
            Change::Availability { id, .. } => DeltaKey::Availability(*id),
            Change::Secrets { .. } => DeltaKey::Secrets,
            Change::Endpoint { owner, id, .. } => DeltaKey::Endpoint(*owner, id.clone()),
            Change::Network { name, .. } => DeltaKey::Network(name.clone()),
            Change::Block { network, index, .. } => DeltaKey::Block(network.clone(), *index),
            Change::Service { name, .. } => DeltaKey::Service(name.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    #[error("delta for an entry owned by {owner} was written by {writer}")]
    NotOwner { owner: NodeId, writer: NodeId },
    #[error("endpoint {id} of {owner} predates that node's departure")]
    OwnerLeft { owner: NodeId, id: String },
}
