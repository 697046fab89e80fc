//! The rest of meshd's handle on the gossip agent: the latest snapshot, and commands the agent
//! carries out in its own task (so every change to the state goes through one place).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::join::{GateSlot, JoinGate};
use super::stats::Stats;
use super::tcp::{ChannelServer, ChannelSlot, SharedTls};
use crate::identity::JoinToken;
use crate::state::{Change, Snapshot};
use crate::trust::ca::JoinRole;
use crate::trust::tls::TlsConfigs;

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
        reply: Reply<JoinToken>,
    },
    /// Writes (already validated by the caller), versioned, signed and gossiped here: this
    /// node's own records, and on the managers' leader what they decided (`manager::mirror`).
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
    pub(super) tls: SharedTls,
    pub(super) channels: ChannelSlot,
    pub(super) join_gate: GateSlot,
    /// What the cluster was created with; fixed for the cluster's life.
    pub(super) settings: Arc<crate::identity::ClusterSettings>,
}

impl GossipHandle {
    /// The cluster-wide settings (pools, data path port), the same on every node.
    pub fn settings(&self) -> &crate::identity::ClusterSettings {
        &self.settings
    }

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

    /// The join token of `role` (managers only), from the secrets in the local state.
    pub async fn join_token(&self, role: JoinRole) -> Result<JoinToken, GossipError> {
        self.ask(|reply| Command::JoinToken { role, reply }).await
    }

    /// This node's TLS configuration, for channels to other members (`tls_channel::client::Channel`).
    pub fn tls(&self) -> Arc<TlsConfigs> {
        self.tls.load_full()
    }

    /// The same, as it changes (a renewed certificate).
    pub fn tls_shared(&self) -> SharedTls {
        self.tls.clone()
    }

    /// Installs what serves channels opened to this node (once; later calls are ignored).
    pub fn set_channel_server(&self, server: Arc<dyn ChannelServer>) {
        let _ = self.channels.set(server);
    }

    /// Installs what approves a node joining as a manager (once).
    pub fn set_join_gate(&self, gate: Arc<dyn JoinGate>) {
        let _ = self.join_gate.set(gate);
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
