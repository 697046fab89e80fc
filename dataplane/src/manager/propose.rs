//! Getting a command decided, from any node.
//!
//! A manager writes to its own Raft member; one that is not the leader is told who is and sends
//! the command there over a channel. A worker sends it to the manager gossip says leads (any
//! live manager when none does). A new leader refuses writes for the first few milliseconds (no
//! majority has acknowledged it yet), and an answer can be lost with a connection: every attempt
//! carries the same request id, so a retry is applied once and answered the same
//! (`machine::Decided::apply`).
//!
//! When this node cannot see a majority of the managers alive (gossip's view), or none answers
//! before the deadline, the answer is [`ManagerError::NoMajority`]: "no manager majority: 1 of 3
//! reachable".

use std::time::Duration;

use openraft::errors::{ClientWriteError, RaftError};
use rand::seq::IndexedRandom;
use tokio::time::Instant;

use super::decisions::{Action, Command, Decision};
use super::raft_state_machine::Raft;
use super::transport::{self, ProposeFailure, Request, Response};
use super::types::ManagerNode;
use super::{ManagerError, Managers};
use crate::identity::NodeId;
use crate::state::{Role, Snapshot};
use crate::tls_channel::client::Channel;

/// How long a proposal may take, retries included: several elections' worth.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait before trying again when no leader is known.
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// Idle channels kept per manager.
const IDLE_CHANNELS: usize = 4;

/// What one attempt came to, short of a decision.
enum Miss {
    /// Not the leader; the leader, if known.
    Leader(Option<(NodeId, ManagerNode)>),
    /// No answer (unreachable, timed out, or no leader yet): try again.
    Retry,
    /// A failure retrying will not mend.
    Fatal(String),
}

impl Managers {
    /// Proposes `action` and returns what the group decided, with the index of its log entry.
    pub async fn propose(&self, action: Action) -> Result<(Decision, u64), ManagerError> {
        self.propose_within(action, PROPOSE_TIMEOUT).await
    }

    pub(super) async fn propose_within(
        &self,
        action: Action,
        timeout: Duration,
    ) -> Result<(Decision, u64), ManagerError> {
        let command = Command { id: rand::random(), by: self.node_id(), action };
        let deadline = Instant::now() + timeout;
        let mut hint: Option<(NodeId, ManagerNode)> = None;
        let mut tried: Vec<NodeId> = Vec::new();
        loop {
            let snapshot = self.gossip().snapshot();
            let (reachable, total) = majority_view(&snapshot);
            if total == 0 {
                return Err(ManagerError::Internal("this cluster has no manager".into()));
            }
            if reachable * 2 <= total {
                return Err(ManagerError::NoMajority { reachable, total });
            }
            let remaining = deadline.saturating_duration_since(Instant::now()).min(ATTEMPT_TIMEOUT);
            let me = self.node_id();
            let attempt = match (hint.take(), self.raft()) {
                (Some((leader, node)), _) if leader != me => {
                    self.send(leader, node, &command, remaining).await
                }
                (_, Some(raft)) => write_here(&raft, &command, remaining).await,
                (_, None) => match pick_manager(&snapshot, &tried) {
                    Some((node, addr)) => {
                        tried.push(node);
                        self.send(node, ManagerNode { addr }, &command, remaining).await
                    }
                    None => {
                        tried.clear();
                        Err(Miss::Retry)
                    }
                },
            };
            match attempt {
                Ok(decided) => return Ok(decided),
                Err(Miss::Leader(Some(leader))) if leader.0 != me => hint = Some(leader),
                Err(Miss::Leader(_)) | Err(Miss::Retry) => tokio::time::sleep(RETRY_DELAY).await,
                Err(Miss::Fatal(reason)) => return Err(ManagerError::Internal(reason)),
            }
            if Instant::now() >= deadline {
                let (reachable, total) = majority_view(&self.gossip().snapshot());
                // Gossip may still think them alive; the group could not decide, all the same.
                return Err(ManagerError::NoMajority { reachable: reachable.min(total / 2), total });
            }
        }
    }

    /// Sends `command` to the manager `node` over a channel (one from the idle pool, or new).
    async fn send(
        &self,
        node: NodeId,
        manager: ManagerNode,
        command: &Command,
        timeout: Duration,
    ) -> Result<(Decision, u64), Miss> {
        let pooled = self.inner.channels.lock().await.get_mut(&node).and_then(Vec::pop);
        let mut channel = pooled.unwrap_or_else(|| Channel::new(manager.addr, node));
        let tls = self.gossip().tls_shared();
        let answer = transport::call(&mut channel, &tls, &Request::Propose(command.clone()), timeout).await;
        if answer.is_ok() {
            let mut idle = self.inner.channels.lock().await;
            let channels = idle.entry(node).or_default();
            if channels.len() < IDLE_CHANNELS {
                channels.push(channel);
            }
        }
        match answer {
            Ok(Response::Proposed(Ok(decided))) => Ok(decided),
            Ok(Response::Proposed(Err(ProposeFailure::NotLeader(leader)))) => Err(Miss::Leader(leader)),
            Ok(Response::Proposed(Err(ProposeFailure::NoMajority))) => Err(Miss::Retry),
            Ok(Response::Proposed(Err(ProposeFailure::Failed(reason)))) => Err(Miss::Fatal(reason)),
            Ok(other) => {
                tracing::debug!(%node, ?other, "a manager did not take a proposal");
                Err(Miss::Retry)
            }
            Err(error) => {
                tracing::debug!(%node, %error, "a proposal did not reach a manager");
                Err(Miss::Retry)
            }
        }
    }

    /// Decides `command` on this node's own Raft member, for another node's proposal.
    pub(super) async fn decide_here(&self, command: Command) -> Result<(Decision, u64), ProposeFailure> {
        let Some(raft) = self.raft() else {
            return Err(ProposeFailure::NotLeader(None));
        };
        match write_here(&raft, &command, ATTEMPT_TIMEOUT).await {
            Ok(decided) => Ok(decided),
            Err(Miss::Leader(leader)) => Err(ProposeFailure::NotLeader(leader)),
            Err(Miss::Retry) => Err(ProposeFailure::NoMajority),
            Err(Miss::Fatal(reason)) => Err(ProposeFailure::Failed(reason)),
        }
    }
}

/// Writes `command` to this node's Raft member.
async fn write_here(raft: &Raft, command: &Command, timeout: Duration) -> Result<(Decision, u64), Miss> {
    match tokio::time::timeout(timeout, raft.client_write(command.clone())).await {
        // Still pending: it may yet commit; the retry is de-duplicated.
        Err(_) => Err(Miss::Retry),
        Ok(Ok(response)) => Ok((response.data, response.log_id.index)),
        Ok(Err(RaftError::APIError(
            ClientWriteError::ForwardToLeader(forward) | ClientWriteError::LogEntryDiscarded(forward),
        ))) => Err(Miss::Leader(forward.leader_id.zip(forward.leader_node))),
        Ok(Err(RaftError::APIError(other))) => Err(Miss::Fatal(other.to_string())),
        Ok(Err(RaftError::Fatal(fatal))) => {
            Err(Miss::Fatal(format!("this manager's Raft member stopped: {fatal}")))
        }
    }
}

/// How many managers this node sees up, of how many there are (gossip's view: roles and
/// liveness). A worker does not count itself.
pub fn majority_view(snapshot: &Snapshot) -> (usize, usize) {
    let state = &snapshot.state;
    let managers: Vec<NodeId> = state
        .nodes
        .live()
        .filter(|(id, record)| !record.left && !state.is_revoked(id) && state.role_of(id) == Role::Manager)
        .map(|(id, _)| *id)
        .collect();
    let reachable = managers.iter().filter(|id| snapshot.liveness_of(id).is_up()).count();
    (reachable, managers.len())
}

/// The manager a worker should ask: the leader gossip names (the live manager that says it
/// leads, in the highest term), else a live manager not tried yet.
fn pick_manager(snapshot: &Snapshot, tried: &[NodeId]) -> Option<(NodeId, std::net::SocketAddr)> {
    let state = &snapshot.state;
    let live = |id: &NodeId| {
        snapshot.liveness_of(id).is_up() && state.role_of(id) == Role::Manager && !state.is_revoked(id)
    };
    let address = |id: &NodeId| state.nodes.get(id).map(|n| (*id, n.gossip_addr));
    let leader = state
        .managers
        .live()
        .filter(|(id, status)| status.leader == Some(**id) && live(id))
        .max_by_key(|(_, status)| status.term)
        .map(|(id, _)| *id);
    if let Some(leader) = leader.filter(|l| !tried.contains(l)) {
        return address(&leader);
    }
    let candidates: Vec<NodeId> = state
        .nodes
        .live()
        .map(|(id, _)| *id)
        .filter(|id| *id != snapshot.self_id && live(id) && !tried.contains(id))
        .collect();
    candidates.choose(&mut rand::rng()).and_then(address)
}
