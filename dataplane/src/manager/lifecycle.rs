//! This node's part in the group over time.
//!
//! - A manager (by gossip's role record) runs a Raft member; a worker does not. A node that
//!   becomes a manager starts one with an empty log and waits for the leader to add it (first
//!   as a learner, then as a voter: `group`). A demoted manager stops its member once the
//!   group has taken it out of the voters (or after a minute), and deletes its log.
//! - Founding: the node that created the cluster starts the group alone and imports the state
//!   gossip holds (cluster-wide records, roles, secrets) as the group's first command. A cluster
//!   from before the managers' group (an upgrade) is founded the same way by its live manager
//!   with the lowest node ID, once it has waited [`UPGRADE_WAIT`] and no manager says it is in a
//!   group.
//! - Every member writes its view (term, leader, voters) into gossip, for `node ls`.
//! - The leader, while a majority acknowledges it, mirrors what was decided into gossip
//!   (`mirror`), keeps the voters equal to the managers (`group`), and returns the address
//!   blocks of nodes that are gone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use openraft::type_config::async_runtime::watch::WatchReceiver;
use openraft::{Instant as _, ServerState};
use tokio::sync::watch;

use super::decisions::{Action, Decided};
use super::mirror;
use super::raft_log::LogStore;
use super::raft_state_machine::Raft;
use super::raft_state_machine::StateMachine;
use super::serve;
use super::transport::Network;
use super::types::{self, ManagerNode, ELECTION_TIMEOUT_MIN_MS};
use super::{Inner, ManagerError, Managers};
use crate::gossip::GossipHandle;
use crate::identity::NodeId;
use crate::state::{Change, ManagerStatus, Role, Snapshot};
use crate::state_dir::StateDir;

/// How long the lowest-ID manager of an upgraded cluster waits before it founds the group (so
/// gossip has told it of every manager, and of any group already running).
pub const UPGRADE_WAIT: Duration = Duration::from_secs(10);
/// How long a demoted manager waits to be taken out of the voters before it stops anyway.
const LEAVE_WAIT: Duration = Duration::from_secs(60);
/// How long after a failed start of the Raft member (an unreadable log, say) it is tried again.
const START_RETRY: Duration = Duration::from_secs(5);
/// How often the loop runs without news (it also runs on every snapshot and decision).
const TICK: Duration = Duration::from_millis(500);

impl Managers {
    /// Starts this node's part: the endpoint on gossip's channels, the Raft member if this node
    /// is a manager (founding the group if it created the cluster), and the loop that follows
    /// role changes and does the leader's duties.
    pub async fn start(
        node_id: NodeId,
        gossip: GossipHandle,
        state_dir: Arc<StateDir>,
    ) -> Result<Managers, ManagerError> {
        let (decided_tx, decided) = watch::channel(Arc::new(Decided::default()));
        let managers = Managers {
            inner: Arc::new(Inner {
                node_id,
                gossip,
                state_dir,
                raft: RwLock::new(None),
                decided,
                decided_tx,
                channels: Default::default(),
                demoted_since: Mutex::new(None),
                start_failed: Mutex::new(None),
                missing_since: Mutex::new(BTreeMap::new()),
                started: Instant::now(),
            }),
        };
        serve::install(&managers);
        // The founder founds before the API serves: a join right after start finds a group.
        managers.step().await;
        let looping = managers.clone();
        tokio::spawn(async move { looping.run().await });
        Ok(managers)
    }

    async fn run(self) {
        let mut snapshots = self.gossip().subscribe();
        let mut decided = self.inner.decided.clone();
        let mut tick = tokio::time::interval(TICK);
        // Leader, term and membership changes (not every heartbeat: those are in the other
        // metrics) wake the loop too: a new leader mirrors and reports at once. One receiver for
        // as long as the member runs, with what it has seen marked: a fresh clone of openraft's
        // receiver has seen nothing, so waiting on one made every round wake the next at once
        // (a quarter of a core per manager at rest).
        let mut raft_changes = None;
        loop {
            if raft_changes.is_none() {
                raft_changes = self.raft().map(|raft| {
                    let mut changes = raft.server_metrics();
                    let _ = changes.borrow_and_update();
                    changes
                });
            }
            let raft_changed = async {
                match raft_changes.as_mut() {
                    Some(changes) => changes.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            let member_stopped = tokio::select! {
                changed = snapshots.changed() => if changed.is_err() { return } else { false },
                _ = decided.changed() => false,
                running = raft_changed => !running,
                _ = tick.tick() => false,
            };
            if member_stopped {
                // Its member stopped (left the group): follow the next one, if any.
                raft_changes = None;
            }
            self.step().await;
        }
    }

    /// One round: follow the role, report the view, and lead if leading.
    async fn step(&self) {
        let snapshot = self.gossip().snapshot();
        let me = self.node_id();
        let manager = snapshot.state.role_of(&me) == Role::Manager && !snapshot.state.is_revoked(&me);
        match (manager, self.raft()) {
            (true, None) => {
                *self.inner.demoted_since.lock().unwrap_or_else(|p| p.into_inner()) = None;
                let failed_at = *self.inner.start_failed.lock().unwrap_or_else(|p| p.into_inner());
                if failed_at.is_none_or(|at| at.elapsed() >= START_RETRY) {
                    let result = self.join_group(&snapshot).await;
                    if let Err(error) = &result {
                        tracing::warn!(%error, retry = ?START_RETRY, "cannot start this manager's Raft member");
                    }
                    *self.inner.start_failed.lock().unwrap_or_else(|p| p.into_inner()) =
                        result.is_err().then(Instant::now);
                }
            }
            (true, Some(raft)) => self.found_if_due(&raft, &snapshot).await,
            (false, Some(raft)) => self.leave_group_when_out(raft, &snapshot).await,
            (false, None) => {}
        }
        let Some(raft) = self.raft() else { return };
        self.publish_status(&raft, &snapshot).await;
        if leads_with_lease(&raft, me) {
            self.mirror(&snapshot).await;
            self.keep_voters(&raft, &snapshot).await;
            self.release_blocks(&snapshot).await;
        }
    }

    /// Starts this node's Raft member from what its state directory holds.
    async fn join_group(&self, snapshot: &Snapshot) -> Result<(), ManagerError> {
        let dir = self.inner.state_dir.clone();
        let internal = |e: std::io::Error| ManagerError::Internal(e.to_string());
        let log = LogStore::open(dir.clone()).map_err(internal)?;
        let machine = StateMachine::open(dir, self.inner.decided_tx.clone()).map_err(internal)?;
        let network = Network { tls: self.gossip().tls_shared() };
        let raft = Raft::new(self.node_id(), types::config(), network, log, machine)
            .await
            .map_err(|e| ManagerError::Internal(e.to_string()))?;
        *self.inner.raft.write().unwrap_or_else(|p| p.into_inner()) = Some(raft.clone());
        tracing::info!("this manager's Raft member started");
        self.found_if_due(&raft, snapshot).await;
        Ok(())
    }

    /// Founds the group when this member is in none and should be the one to found it.
    async fn found_if_due(&self, raft: &Raft, snapshot: &Snapshot) {
        let metrics = raft.metrics().borrow_watched().clone();
        let in_a_group = metrics.membership_config.membership().voter_ids().next().is_some()
            || metrics.last_log_index.is_some();
        if in_a_group || !self.should_found(snapshot) {
            return;
        }
        let me = self.node_id();
        let Some(addr) = snapshot.state.nodes.get(&me).map(|n| n.gossip_addr) else { return };
        if let Err(error) = raft.initialize(BTreeMap::from([(me, ManagerNode { addr })])).await {
            tracing::debug!(%error, "not founding the managers' group");
            return;
        }
        let mut imported = Decided::from_state(&snapshot.state);
        imported.settings = self.gossip().settings().clone();
        tracing::info!(
            networks = imported.networks.len(),
            services = imported.services.len(),
            blocks = imported.blocks.len(),
            "founded the managers' group; importing the cluster-wide state"
        );
        if let Err(error) = self.propose(Action::Import(Box::new(imported))).await {
            tracing::warn!(%error, "the import into the managers' group failed; retrying");
        }
    }

    /// Whether this manager founds the group: no live manager says it is in one, and this node
    /// created the cluster, or (an upgrade) it has the lowest ID of the live managers and has
    /// waited long enough to know.
    fn should_found(&self, snapshot: &Snapshot) -> bool {
        let state = &snapshot.state;
        let me = self.node_id();
        let live_manager = |id: &NodeId| {
            state.role_of(id) == Role::Manager && snapshot.liveness_of(id).is_up() && !state.is_revoked(id)
        };
        let group_exists = state
            .managers
            .live()
            .any(|(id, status)| *id != me && live_manager(id) && !status.voters.is_empty());
        if group_exists {
            return false;
        }
        let founder = state.nodes.get(&me).is_some_and(|n| n.founder.is_some());
        if founder && state.managers.live().all(|(id, _)| *id == me) {
            return true;
        }
        let lowest = state.nodes.live().map(|(id, _)| *id).filter(|id| live_manager(id)).min();
        lowest == Some(me) && self.inner.started.elapsed() >= UPGRADE_WAIT
    }

    /// A demoted manager: stops its member once the group no longer counts it (so a group of
    /// two can still commit the change), and forgets its log. The leader's report in gossip
    /// says so (a removed member is not sent the entries that remove it).
    async fn leave_group_when_out(&self, raft: Raft, snapshot: &Snapshot) {
        let me = self.node_id();
        let since = *self
            .inner
            .demoted_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(Instant::now);
        let leader_report = snapshot
            .state
            .managers
            .live()
            .filter(|(id, status)| {
                **id != me && status.leader == Some(**id) && snapshot.liveness_of(id).is_up()
            })
            .max_by_key(|(_, status)| status.term)
            .map(|(_, status)| status.voters.contains(&me));
        let metrics = raft.metrics().borrow_watched().clone();
        let voter = leader_report
            .unwrap_or_else(|| metrics.membership_config.membership().voter_ids().any(|id| id == me));
        if voter && since.elapsed() < LEAVE_WAIT {
            return;
        }
        *self.inner.raft.write().unwrap_or_else(|p| p.into_inner()) = None;
        if let Err(error) = raft.shutdown().await {
            tracing::warn!(%error, "this manager's Raft member did not stop cleanly");
        }
        let dir = &self.inner.state_dir;
        if let Err(error) = LogStore::remove_files(dir).and_then(|()| StateMachine::remove_files(dir)) {
            tracing::warn!(%error, "cannot remove the Raft log of a demoted manager");
        }
        self.inner.decided_tx.send_replace(Arc::new(Decided::default()));
        if let Err(error) = self.gossip().write(vec![Change::Manager { id: me, status: None }]).await {
            tracing::debug!(%error, "cannot withdraw this node's manager status");
        }
        tracing::info!("no longer a manager: left the managers' group");
    }

    /// Writes this member's view of the group into gossip when it changed.
    async fn publish_status(&self, raft: &Raft, snapshot: &Snapshot) {
        let metrics = raft.metrics().borrow_watched().clone();
        let status = ManagerStatus {
            term: metrics.current_term,
            leader: metrics.current_leader,
            voters: metrics.membership_config.membership().voter_ids().collect(),
        };
        let me = self.node_id();
        if snapshot.state.managers.get(&me) == Some(&status) {
            return;
        }
        if let Err(error) = self.gossip().write(vec![Change::Manager { id: me, status: Some(status) }]).await
        {
            tracing::debug!(%error, "cannot publish this manager's status");
        }
    }

    /// Writes into gossip what the group decided and gossip does not say yet.
    async fn mirror(&self, snapshot: &Snapshot) {
        let decided = self.decided();
        if !decided.imported {
            return;
        }
        let changes = mirror::changes(&snapshot.state, &decided, self.node_id());
        if changes.is_empty() {
            return;
        }
        tracing::debug!(count = changes.len(), "mirroring decisions into gossip");
        if let Err(error) = self.gossip().write(changes).await {
            tracing::warn!(%error, "cannot mirror the managers' decisions into gossip");
        }
    }

    /// Waits until this node's gossip state says everything the group decided up to log entry
    /// `index` (this node being a manager; a worker returns at once): what a command returns
    /// after, so the caller sees its own change.
    pub async fn settle(&self, index: u64, timeout: Duration) {
        let Some(raft) = self.raft() else { return };
        let deadline = tokio::time::Instant::now() + timeout;
        let waited = raft.wait(Some(timeout)).applied_index_at_least(Some(index), "settle").await;
        if waited.is_err() {
            return;
        }
        let mut snapshots = self.gossip().subscribe();
        loop {
            let in_sync = {
                let snapshot = snapshots.borrow_and_update();
                mirror::changes(&snapshot.state, &self.decided(), self.node_id()).is_empty()
            };
            if in_sync {
                return;
            }
            if tokio::time::timeout_at(deadline, snapshots.changed()).await.is_err() {
                return;
            }
        }
    }
}

/// Whether `me` leads and a majority acknowledged it within the lease: only then may it act for
/// the group. The lease is the shortest election timeout: no follower that heard from this
/// leader starts an election sooner, so a cut-off leader's lease runs out before anyone else is
/// elected.
pub fn leads_with_lease(raft: &Raft, me: NodeId) -> bool {
    let metrics = raft.metrics().borrow_watched().clone();
    if metrics.state != ServerState::Leader || metrics.current_leader != Some(me) {
        return false;
    }
    let alone = metrics.membership_config.membership().voter_ids().all(|id| id == me);
    let fresh = metrics
        .last_quorum_acked
        .as_ref()
        .is_some_and(|at| at.elapsed() < Duration::from_millis(ELECTION_TIMEOUT_MIN_MS));
    alone || fresh
}
