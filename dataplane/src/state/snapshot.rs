//! The immutable view of the cluster that the gossip agent publishes after every change: the
//! state, and membership's view of every node. Readers (reconciler, DNS, API) always see one
//! whole snapshot, never a half-merged state.

use std::collections::BTreeMap;

use super::cluster::ClusterState;
use super::records::Liveness;
use crate::identity::{Fingerprint, NodeId};

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub self_id: NodeId,
    /// The fingerprint of the cluster CA (what join tokens carry).
    pub cluster: Fingerprint,
    pub state: ClusterState,
    /// Membership's view of every node it knows; absent means down (not heard of since start).
    pub liveness: BTreeMap<NodeId, Liveness>,
}

impl Snapshot {
    pub fn liveness_of(&self, node: &NodeId) -> Liveness {
        if self.state.has_left(node) {
            return Liveness::Left;
        }
        self.liveness.get(node).copied().unwrap_or(Liveness::Down)
    }

    /// Finds a node by full ID, unique ID prefix, or unique name.
    pub fn resolve_node(&self, query: &str) -> Result<NodeId, String> {
        let candidates: Vec<NodeId> = self
            .state
            .nodes
            .live()
            .filter(|(id, record)| {
                record.name == query || id.to_string().starts_with(&query.to_ascii_lowercase())
            })
            .map(|(id, _)| *id)
            .collect();
        match candidates.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!("no node {query:?} (give a name or an ID prefix from `node ls`)")),
            many => Err(format!("{query:?} matches {} nodes; give more of the ID", many.len())),
        }
    }
}
