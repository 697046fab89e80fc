//! The rest of meshd's handle on the gossip agent: the latest snapshot, and commands the agent
//! carries out in its own task (so every change to the state goes through one place).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::stats::Stats;
use crate::identity::{JoinToken, NodeId};
use crate::state::{Availability, Change, Snapshot};

/// How the agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Stopped for a restart (SIGTERM): still a member.
    Stopped,
    /// Left the cluster on purpose.
    Left,
}

pub(super) enum Command {
    SetAvailability {
        node: String,
        availability: Availability,
        reply: oneshot::Sender<Result<NodeId, String>>,
    },
    RotateJoinToken {
        reply: oneshot::Sender<Result<JoinToken, String>>,
    },
    Leave {
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Local writes (already validated by the caller), versioned here and gossiped.
    Write {
        changes: Vec<Change>,
        reply: oneshot::Sender<Result<(), String>>,
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

    pub async fn set_availability(&self, node: String, availability: Availability) -> Result<NodeId, String> {
        self.ask(|reply| Command::SetAvailability { node, availability, reply }).await
    }

    pub async fn rotate_join_token(&self) -> Result<JoinToken, String> {
        self.ask(|reply| Command::RotateJoinToken { reply }).await
    }

    /// Applies local changes to the cluster state and spreads them. Returns once they are in the
    /// local state (and in the next snapshot).
    pub async fn write(&self, changes: Vec<Change>) -> Result<(), String> {
        self.ask(|reply| Command::Write { changes, reply }).await
    }

    pub async fn leave(&self) -> Result<(), String> {
        self.ask(|reply| Command::Leave { reply }).await
    }

    /// Asks the agent to persist its state and stop (a restart, not a leave).
    pub async fn stop(&self) {
        let _ = self.commands.send(Command::Stop).await;
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Command,
    ) -> Result<T, String> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(command(tx)).await.map_err(|_| "the gossip agent has stopped".to_string())?;
        rx.await.map_err(|_| "the gossip agent has stopped".to_string())?
    }
}
