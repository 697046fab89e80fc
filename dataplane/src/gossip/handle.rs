//! The rest of meshd's handle on the gossip agent: the latest snapshot, and commands the agent
//! carries out in its own task (so every change to the state goes through one place).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::stats::Stats;
use crate::identity::{JoinToken, NodeId, Secret};
use crate::state::{Availability, Change, Role, Snapshot};
use crate::trust::ca::JoinRole;

/// How the agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Stopped for a restart (SIGTERM): still a member.
    Stopped,
    /// Left the cluster on purpose.
    Left,
}

/// Why the gossip agent did not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GossipError {
    #[error("this node is a worker: only a manager can {what} (managers: {managers})")]
    NotManager { what: &'static str, managers: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error("the gossip agent has stopped")]
    Stopped,
}

pub(super) type Reply<T> = oneshot::Sender<Result<T, GossipError>>;

pub(super) enum Command {
    JoinToken {
        role: JoinRole,
        rotate: bool,
        reply: Reply<JoinToken>,
    },
    SetAvailability {
        node: String,
        availability: Availability,
        reply: Reply<NodeId>,
    },
    SetRole {
        node: String,
        role: Role,
        reply: Reply<NodeId>,
    },
    Remove {
        node: String,
        force: bool,
        reply: Reply<NodeId>,
    },
    /// The gossip keys, primary first (one step of a key rotation).
    SetGossipKeys {
        keys: Vec<Secret>,
        reply: Reply<()>,
    },
    /// Local writes (already validated by the caller), versioned, signed and gossiped here.
    Write {
        changes: Vec<Change>,
        reply: Reply<()>,
    },
    Leave {
        reply: Reply<()>,
    },
    Stop,
}

/// The rest of meshd's handle on the agent.
#[derive(Clone)]
pub struct GossipHandle {
    pub(super) snapshot: watch::Receiver<Arc<Snapshot>>,
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) stats: Arc<Stats>,
}

impl GossipHandle {
    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// A receiver that wakes on every new snapshot (for reconcilers).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.clone()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The join token of `role`; `rotate` moves that role to a new secret first (managers only).
    pub async fn join_token(&self, role: JoinRole, rotate: bool) -> Result<JoinToken, GossipError> {
        self.ask(|reply| Command::JoinToken { role, rotate, reply }).await
    }

    pub async fn set_availability(
        &self,
        node: String,
        availability: Availability,
    ) -> Result<NodeId, GossipError> {
        self.ask(|reply| Command::SetAvailability { node, availability, reply }).await
    }

    /// `node promote` / `node demote`.
    pub async fn set_role(&self, node: String, role: Role) -> Result<NodeId, GossipError> {
        self.ask(|reply| Command::SetRole { node, role, reply }).await
    }

    /// `node rm`: revokes the node's certificate cluster-wide.
    pub async fn remove(&self, node: String, force: bool) -> Result<NodeId, GossipError> {
        self.ask(|reply| Command::Remove { node, force, reply }).await
    }

    /// Writes the cluster's gossip keys (primary first); see `key_rotation`.
    pub async fn set_gossip_keys(&self, keys: Vec<Secret>) -> Result<(), GossipError> {
        self.ask(|reply| Command::SetGossipKeys { keys, reply }).await
    }

    /// Applies local changes to the cluster state and spreads them. Returns once they are in the
    /// local state (and in the next snapshot).
    pub async fn write(&self, changes: Vec<Change>) -> Result<(), GossipError> {
        self.ask(|reply| Command::Write { changes, reply }).await
    }

    pub async fn leave(&self) -> Result<(), GossipError> {
        self.ask(|reply| Command::Leave { reply }).await
    }

    /// Asks the agent to persist its state and stop (a restart, not a leave).
    pub async fn stop(&self) {
        let _ = self.commands.send(Command::Stop).await;
    }

    async fn ask<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, GossipError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(command(tx)).await.map_err(|_| GossipError::Stopped)?;
        rx.await.map_err(|_| GossipError::Stopped)?
    }
}
