//! Deltas: one versioned write to one table, the unit that gossip spreads and push-pull repairs,
//! and the signature of its writer that travels with it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::records::{
    Availability, BlockClaim, ClusterSecrets, EndpointRecord, NetworkRecord, NodeRecord, Revocation,
    RoleRecord, ServiceRecord,
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
    Role { id: NodeId, record: Option<RoleRecord> },
    Revocation { id: NodeId, record: Option<Revocation> },
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
    Role(NodeId),
    Revocation(NodeId),
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
            Change::Role { id, .. } => DeltaKey::Role(*id),
            Change::Revocation { id, .. } => DeltaKey::Revocation(*id),
        }
    }
}

/// An Ed25519 signature (64 bytes). The state layer only stores and carries it; `trust`
/// verifies it against the writer's certified key before a delta is merged.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// The signature of an entry that was never signed (unit tests of the merge rules).
    pub const NONE: Signature = Signature([0; 64]);
}

impl Default for Signature {
    fn default() -> Signature {
        Signature::NONE
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}..)", crate::hex::encode(&self.0[..6]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::hex::Bytes(self.0.to_vec()).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Signature, D::Error> {
        let bytes = crate::hex::Bytes::deserialize(deserializer)?;
        let array: [u8; 64] =
            bytes.0.try_into().map_err(|_| serde::de::Error::custom("a signature is 64 bytes"))?;
        Ok(Signature(array))
    }
}

/// A delta and its writer's signature (the writer is `delta.version.node`): what gossip,
/// push-pull and the state file carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDelta {
    pub delta: Delta,
    pub signature: Signature,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    #[error("delta for an entry owned by {owner} was written by {writer}")]
    NotOwner { owner: NodeId, writer: NodeId },
    #[error("endpoint {id} of {owner} predates that node's departure")]
    OwnerLeft { owner: NodeId, id: String },
    #[error("{0} was removed from the cluster")]
    Revoked(NodeId),
}
