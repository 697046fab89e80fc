//! The leader keeps the group's members equal to the managers the group decided on.
//!
//! - A manager that is alive and not yet a member is added as a learner (it receives the log,
//!   or a snapshot), then made a voter once it has caught up: a new voter that is far behind
//!   would slow every commit until it caught up.
//! - A member that is no longer a manager (demoted, removed) leaves the voters. A manager that
//!   is only down stays a voter, as in Swarm: a majority of the managers there are must agree,
//!   and "there are" changes only by `node demote` or `node rm`.
//! - One membership change at a time (openraft refuses a second while one is under way).
//!
//! Workers are never added: they are not in the decided managers, and `serve` refuses Raft
//! messages from them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openraft::type_config::async_runtime::watch::WatchReceiver;
use openraft::ChangeMembers;

use super::decisions::Action;
use super::raft_state_machine::Raft;
use super::types::ManagerNode;
use super::Managers;
use crate::identity::NodeId;
use crate::state::Snapshot;

/// How far behind the leader's log a learner may be when it is made a voter.
const CATCH_UP_SLACK: u64 = 10;
/// How long one membership change may take before the leader tries again next round.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a block's owner may be unknown to the state before its blocks go back to the pool
/// (a node reaped after being down for long, or one that never finished joining).
const MISSING_GRACE: Duration = Duration::from_secs(60);

impl Managers {
    pub(super) async fn keep_voters(&self, raft: &Raft, snapshot: &Snapshot) {
        let metrics = raft.metrics().borrow_watched().clone();
        if metrics.membership_config != metrics.committed_membership_config {
            return; // a change is under way
        }
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
        let managers = self.decided().managers();
        let state = &snapshot.state;

        let leaving: BTreeSet<NodeId> = voters.difference(&managers).copied().collect();
        if !leaving.is_empty() && leaving.len() < voters.len() {
            tracing::info!(?leaving, "taking former managers out of the managers' group");
            self.change(raft, ChangeMembers::RemoveVoters(leaving)).await;
            return;
        }
        let stale: BTreeSet<NodeId> = learners.difference(&managers).copied().collect();
        if !stale.is_empty() {
            self.change(raft, ChangeMembers::RemoveNodes(stale)).await;
            return;
        }
        let last = metrics.last_log_index.unwrap_or(0);
        let caught_up: BTreeSet<NodeId> = learners
            .iter()
            .filter(|id| {
                let matched = metrics.replication.as_ref().and_then(|r| r.get(*id)).cloned().flatten();
                matched.is_some_and(|m| m.index + CATCH_UP_SLACK >= last)
            })
            .copied()
            .collect();
        if !caught_up.is_empty() {
            tracing::info!(?caught_up, "making caught-up managers voters");
            self.change(raft, ChangeMembers::AddVoterIds(caught_up)).await;
            return;
        }
        for id in managers.difference(&voters).filter(|id| !learners.contains(id)) {
            let Some(record) = state.nodes.get(id) else { continue };
            if record.left || !snapshot.liveness_of(id).is_up() {
                continue;
            }
            tracing::info!(node = %id, "adding a manager to the managers' group");
            let added = tokio::time::timeout(
                CHANGE_TIMEOUT,
                raft.add_learner(*id, ManagerNode { addr: record.gossip_addr }, false),
            )
            .await;
            if let Ok(Err(error)) = added {
                tracing::debug!(node = %id, %error, "adding a learner failed; next round");
            }
            return;
        }
    }

    async fn change(&self, raft: &Raft, change: ChangeMembers<NodeId, ManagerNode>) {
        match tokio::time::timeout(CHANGE_TIMEOUT, raft.change_membership(change, false)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::debug!(%error, "membership change failed; next round"),
            Err(_) => tracing::debug!("membership change timed out; next round"),
        }
    }

    /// Returns to the pool the blocks of nodes that left, or that the state no longer knows.
    pub(super) async fn release_blocks(&self, snapshot: &Snapshot) {
        let decided = self.decided();
        let state = &snapshot.state;
        let owners: BTreeSet<NodeId> = decided.blocks.values().copied().collect();
        let mut gone = Vec::new();
        {
            let mut missing = self.inner.missing_since.lock().unwrap_or_else(|p| p.into_inner());
            missing.retain(|id, _| owners.contains(id) && state.nodes.get(id).is_none());
            for owner in &owners {
                if state.has_left(owner) {
                    gone.push(*owner);
                } else if state.nodes.get(owner).is_none() {
                    let since = *missing.entry(*owner).or_insert_with(Instant::now);
                    if since.elapsed() >= MISSING_GRACE {
                        gone.push(*owner);
                    }
                }
            }
        }
        for node in gone {
            tracing::info!(%node, "returning a departed node's address blocks to the pool");
            if let Err(error) = self.propose(Action::ReleaseBlocks { node }).await {
                tracing::debug!(%error, "releasing blocks failed; next round");
            }
        }
    }
}
