//! Membership housekeeping of the gossip agent: what foca asked to send, schedule and report,
//! each node's liveness (newest incarnation wins), announcing to known nodes when alone, and
//! forgetting nodes gone for longer than the reap delay.

use std::collections::BTreeMap;
use std::time::Instant;

use foca::{OwnedNotification, State};

use super::broadcast::lock;
use super::engine::Engine;
use super::member::MemberId;
use super::stats::Stats;
use crate::identity::NodeId;
use crate::state::version::unix_millis;
use crate::state::Liveness;

impl Engine {
    /// With no live member (after a restart, or on the small side of a partition), announce to
    /// every node the state knows; whoever answers brings the rest.
    pub(super) fn rejoin_if_alone(&mut self) {
        if self.foca.num_members() > 0 {
            return;
        }
        let peers: Vec<MemberId> = lock(&self.shared)
            .state
            .nodes
            .live()
            .filter(|(id, r)| **id != self.node_id && !r.left)
            .map(|(id, r)| MemberId { node: *id, addr: r.gossip_addr, generation: 0 })
            .collect();
        for peer in peers {
            let _ = self.foca.announce(peer, &mut self.runtime);
        }
    }

    /// Forgets tombstones, departed nodes and nodes down for longer than `reap_after`.
    pub(super) fn reap(&mut self) {
        let now = Instant::now();
        let after = self.config.reap_after;
        let liveness = self.liveness();
        let mut shared = lock(&self.shared);
        let known: Vec<NodeId> = shared.state.nodes.live().map(|(id, _)| *id).collect();
        for id in known {
            let live = if shared.state.has_left(&id) {
                Liveness::Left
            } else {
                liveness.get(&id).copied().unwrap_or(Liveness::Down)
            };
            if matches!(live, Liveness::Alive | Liveness::Suspect) {
                self.down_since.remove(&id);
                continue;
            }
            let since = *self.down_since.entry(id).or_insert(now);
            if now.duration_since(since) >= after && id != self.node_id {
                tracing::info!(node = %id, "forgetting a node gone for longer than the reap delay");
                shared.state.forget_node(&id);
                self.down_since.remove(&id);
                shared.dirty = true;
            }
        }
        if shared.state.reap(now, after) > 0 {
            shared.dirty = true;
        }
    }

    /// Sends what foca queued, arms its timers, and logs membership changes.
    pub(super) async fn flush(&mut self) {
        let revoked = self.revoked.load_full();
        while let Some((to, data)) = self.runtime.to_send() {
            // Nothing goes to a removed node, whatever foca still thinks of it.
            if revoked.contains(&to.node) {
                Stats::bump(&self.stats.not_sent_revoked);
                continue;
            }
            let Some(ring) = &self.keys.gossip else {
                Stats::bump(&self.stats.not_sent_no_key);
                continue;
            };
            let sealed = ring.seal(&data, unix_millis());
            match self.udp.send_to(&sealed, to.addr).await {
                Ok(_) => Stats::bump(&self.stats.udp_sent),
                Err(error) => tracing::debug!(%error, to = %to.addr, "gossip send failed"),
            }
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            let tx = self.timer_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = tx.send(timer);
            });
        }
        while let Some(notification) = self.runtime.to_notify() {
            match notification {
                OwnedNotification::MemberUp(m) => {
                    tracing::info!(node = %m.node, addr = %m.addr, "member up");
                    // A node coming back (restart, healed partition) missed what changed while
                    // it was away, and so may we: repair both sides now rather than at the next
                    // periodic exchange. New nodes did a full exchange when they joined.
                    if self.down_since.remove(&m.node).is_some() {
                        self.start_push_pull(m.node, m.addr);
                    }
                }
                OwnedNotification::MemberDown(m) => {
                    tracing::info!(node = %m.node, addr = %m.addr, "member down")
                }
                OwnedNotification::Rejoin(id) => {
                    tracing::info!(generation = id.generation, "rejoined after being declared down");
                    self.identity = id;
                }
                OwnedNotification::Defunct => {
                    tracing::warn!("declared down by the cluster; waiting to rejoin")
                }
                OwnedNotification::Idle => tracing::info!("no live members"),
                OwnedNotification::Active => tracing::info!("connected to the cluster"),
                other => tracing::debug!(?other, "membership notification"),
            }
            lock(&self.shared).dirty = true;
        }
    }

    pub(super) fn liveness(&self) -> BTreeMap<NodeId, Liveness> {
        // Several identities of one node (restarts) may be known; the newest generation speaks.
        let mut newest: BTreeMap<NodeId, (u64, Liveness)> = BTreeMap::new();
        for member in self.foca.iter_membership_state() {
            let live = match member.state() {
                State::Alive => Liveness::Alive,
                State::Suspect => Liveness::Suspect,
                State::Down => Liveness::Down,
            };
            let id = member.id();
            let entry = newest.entry(id.node).or_insert((id.generation, live));
            if id.generation >= entry.0 {
                *entry = (id.generation, live);
            }
        }
        let mut liveness: BTreeMap<NodeId, Liveness> =
            newest.into_iter().map(|(id, (_, l))| (id, l)).collect();
        liveness.insert(self.node_id, Liveness::Alive);
        liveness
    }
}
