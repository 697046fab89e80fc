//! What the agent asks of the cluster: gossip (the latest snapshot, and this node's own
//! records written into it) and the managers (decisions and address blocks). Neither can be
//! built in a unit test (TLS, Raft), so the agent takes them through these two ports too.

use std::sync::Arc;

use tokio::sync::watch;

use super::BoxFuture;
use crate::gossip::{GossipError, GossipHandle};
use crate::identity::ClusterSettings;
use crate::manager::{Action, Decision, ManagerError, Managers};
use crate::state::{Change, Snapshot};

pub trait ClusterState: Send + Sync {
    /// The latest snapshot.
    fn snapshot(&self) -> Arc<Snapshot>;
    /// A receiver that wakes on every new snapshot.
    fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>>;
    /// Applies this node's changes to the state (they are in the next snapshot) and spreads them.
    fn write(&self, changes: Vec<Change>) -> BoxFuture<'_, Result<(), GossipError>>;
    /// What the cluster was created with (address pools, data path port).
    fn settings(&self) -> &ClusterSettings;
}

pub trait Decisions: Send + Sync {
    /// Fails unless this node is a manager.
    fn require_manager(&self, what: &'static str) -> Result<(), ManagerError>;
    /// Proposes `action` to the managers and waits for their decision.
    fn decide(&self, what: &'static str, action: Action) -> BoxFuture<'_, Result<Decision, ManagerError>>;
    /// A new address block of `network` for this node; its index.
    fn grant_block<'a>(&'a self, network: &'a str) -> BoxFuture<'a, Result<u32, ManagerError>>;
}

impl ClusterState for GossipHandle {
    fn snapshot(&self) -> Arc<Snapshot> {
        GossipHandle::snapshot(self)
    }
    fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        GossipHandle::subscribe(self)
    }
    fn write(&self, changes: Vec<Change>) -> BoxFuture<'_, Result<(), GossipError>> {
        Box::pin(GossipHandle::write(self, changes))
    }
    fn settings(&self) -> &ClusterSettings {
        GossipHandle::settings(self)
    }
}

impl Decisions for Managers {
    fn require_manager(&self, what: &'static str) -> Result<(), ManagerError> {
        Managers::require_manager(self, what)
    }
    fn decide(&self, what: &'static str, action: Action) -> BoxFuture<'_, Result<Decision, ManagerError>> {
        Box::pin(Managers::decide(self, what, action))
    }
    fn grant_block<'a>(&'a self, network: &'a str) -> BoxFuture<'a, Result<u32, ManagerError>> {
        Box::pin(Managers::grant_block(self, network))
    }
}
