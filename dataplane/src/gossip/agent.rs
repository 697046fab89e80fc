//! The gossip agent: one task that owns foca, the sockets' receive side and the state, and
//! publishes a [`Snapshot`] after every change.
//!
//! Everything that changes cluster state funnels through this task (datagrams, TCP requests,
//! timers, API commands), so there are no locks to order and no races between a merge and a
//! snapshot. Slow work (push-pull exchanges with other nodes) runs in spawned tasks and comes back
//! as a message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foca::{AccumulatingRuntime, Foca, Member, PostcardCodec, Timer};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::broadcast::{self, lock, DeltaHandler, SharedState};
use super::config::GossipConfig;
use super::crypto::{Keyring, Purpose};
use super::handle::{Command, Exit};
use super::member::MemberId;
use super::persist;
use super::stats::Stats;
use super::tcp::{self, ExchangeError, Inbound, Keyrings, SharedGuard};
use super::wire::TcpMessage;
use crate::identity::{JoinToken, NodeId, Secret};
use crate::state::{Change, ClusterSecrets, Delta, Liveness, Snapshot};
use crate::state_dir::StateDir;

pub(super) type Swim = Foca<MemberId, PostcardCodec, StdRng, DeltaHandler>;

/// The result of a push-pull this node started.
pub(super) struct ExchangeResult {
    pub(super) peer: SocketAddr,
    pub(super) result: Result<TcpMessage, ExchangeError>,
}

pub(super) struct Agent {
    pub(super) config: GossipConfig,
    pub(super) node_id: NodeId,
    pub(super) identity: MemberId,
    pub(super) cluster_id: Secret,
    pub(super) foca: Swim,
    pub(super) runtime: AccumulatingRuntime<MemberId>,
    pub(super) udp: Arc<UdpSocket>,
    pub(super) shared: SharedState,
    pub(super) stats: Arc<Stats>,
    pub(super) guard: SharedGuard,
    pub(super) keys: Arc<Keyrings>,
    pub(super) keys_tx: watch::Sender<Arc<Keyrings>>,
    pub(super) snapshot_tx: watch::Sender<Arc<Snapshot>>,
    pub(super) timer_tx: mpsc::UnboundedSender<Timer<MemberId>>,
    pub(super) exchange_tx: mpsc::Sender<ExchangeResult>,
    pub(super) state_dir: Arc<StateDir>,
    /// The state changed since it was last written to the state directory.
    pub(super) needs_persist: bool,
    /// Liveness as last published, to republish when only suspicion changed.
    pub(super) published_liveness: BTreeMap<NodeId, Liveness>,
    /// When membership first saw each node down, for reaping.
    pub(super) down_since: BTreeMap<NodeId, Instant>,
}

impl Agent {
    pub(super) async fn run(
        &mut self,
        mut commands: mpsc::Receiver<Command>,
        mut inbound: mpsc::Receiver<Inbound>,
        mut timers: mpsc::UnboundedReceiver<Timer<MemberId>>,
        mut exchanges: mpsc::Receiver<ExchangeResult>,
    ) -> Exit {
        let mut buf = vec![0u8; 65_536];
        let mut push_pull = tokio::time::interval(self.config.push_pull_interval);
        push_pull.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        push_pull.tick().await; // the first tick is immediate; start-up already exchanged
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1).min(self.config.rejoin_interval));
        let mut last_rejoin = Instant::now();
        loop {
            tokio::select! {
                received = self.udp.recv_from(&mut buf) => match received {
                    Ok((len, _from)) => self.handle_datagram(&buf[..len]),
                    Err(error) => tracing::debug!(%error, "gossip UDP receive failed"),
                },
                Some(timer) = timers.recv() => {
                    if let Err(error) = self.foca.handle_timer(timer, &mut self.runtime) {
                        tracing::debug!(%error, "gossip timer");
                    }
                }
                Some(request) = inbound.recv() => self.handle_inbound(request),
                Some(done) = exchanges.recv() => self.handle_exchange(done),
                Some(command) = commands.recv() => match command {
                    Command::Stop => {
                        self.persist();
                        return Exit::Stopped;
                    }
                    Command::Leave { reply } => {
                        let result = self.leave().await;
                        let left = result.is_ok();
                        let _ = reply.send(result);
                        if left {
                            return Exit::Left;
                        }
                    }
                    other => self.handle_command(other),
                },
                _ = push_pull.tick() => {
                    if let Some(peer) = self.random_active_peer() {
                        self.start_push_pull(peer);
                    }
                }
                _ = housekeeping.tick() => {
                    if last_rejoin.elapsed() >= self.config.rejoin_interval {
                        last_rejoin = Instant::now();
                        self.rejoin_if_alone();
                    }
                    self.reap();
                    if self.liveness() != self.published_liveness {
                        self.publish();
                    }
                    if self.needs_persist {
                        self.persist();
                    }
                }
            }
            self.flush().await;
            self.publish_if_changed();
        }
    }

    fn handle_datagram(&mut self, datagram: &[u8]) {
        Stats::bump(&self.stats.udp_received);
        if datagram.len() > self.config.max_datagram {
            Stats::bump(&self.stats.dropped_oversized);
            return;
        }
        let opened = match self.keys.gossip.open(datagram) {
            Ok(opened) => opened,
            Err(error) => return self.stats.count_open_error(error),
        };
        if let Err(error) = tcp::check_replay(&self.guard, &opened) {
            return self.stats.count_open_error(error);
        }
        if let Err(error) = self.foca.handle_data(&opened.payload, &mut self.runtime) {
            tracing::debug!(%error, "gossip datagram not applied");
            if matches!(
                error,
                foca::Error::Decode(_) | foca::Error::MalformedPacket | foca::Error::CustomBroadcast(_)
            ) {
                Stats::bump(&self.stats.dropped_malformed);
            }
        }
    }

    fn handle_inbound(&mut self, request: Inbound) {
        let reply = match request.message {
            TcpMessage::JoinRequest { member, name } => {
                tracing::info!(node = %member.node, name, peer = %request.peer, "admitting a node");
                Stats::bump(&self.stats.joins_accepted);
                let members = self.active_members();
                let _ = self.foca.apply_many(std::iter::once(Member::alive(member)), true, &mut self.runtime);
                Some(TcpMessage::JoinAccept {
                    cluster_id: self.cluster_id.clone(),
                    state: self.dump(),
                    members,
                })
            }
            TcpMessage::PushPull { from, state, members } => {
                self.merge_remote(state, members);
                tracing::debug!(peer = %from.addr, "push-pull served");
                Stats::bump(&self.stats.push_pulls);
                Some(self.push_pull_message())
            }
            // The TCP server only lets the two requests above through.
            TcpMessage::JoinAccept { .. } => None,
        };
        let _ = request.reply.send(reply);
    }

    fn handle_exchange(&mut self, done: ExchangeResult) {
        match done.result {
            Ok(TcpMessage::PushPull { state, members, .. }) => {
                self.merge_remote(state, members);
                Stats::bump(&self.stats.push_pulls);
            }
            Ok(_) => tracing::debug!(peer = %done.peer, "unexpected push-pull answer"),
            Err(error) => tracing::debug!(%error, "push-pull failed"),
        }
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::SetAvailability { node, availability, reply } => {
                let result = self.resolve_node(&node).inspect(|&id| {
                    let delta = self.local_delta(Change::Availability { id, value: Some(availability) });
                    self.broadcast_delta(&delta);
                });
                let _ = reply.send(result);
            }
            Command::RotateJoinToken { reply } => {
                let result = self.rotate_join_secret();
                let _ = reply.send(result);
            }
            Command::Write { changes, reply } => {
                for change in changes {
                    let delta = self.local_delta(change);
                    self.broadcast_delta(&delta);
                }
                // Publish now, so the caller's next read of the snapshot sees its own write.
                self.publish_if_changed();
                let _ = reply.send(Ok(()));
            }
            Command::Leave { .. } | Command::Stop => unreachable!("handled in run"),
        }
    }

    fn resolve_node(&self, query: &str) -> Result<NodeId, String> {
        if query.trim().is_empty() {
            return Err("give a node name or ID".into());
        }
        self.snapshot_tx.borrow().resolve_node(query)
    }

    fn rotate_join_secret(&mut self) -> Result<JoinToken, String> {
        let current =
            lock(&self.shared).state.secrets.get(&()).cloned().ok_or("the cluster has no secrets")?;
        let join_secret = Secret::random().map_err(|e| e.to_string())?;
        let secrets = ClusterSecrets { join_secret: join_secret.clone(), gossip_keys: current.gossip_keys };
        let delta = self.local_delta(Change::Secrets { value: Some(secrets) });
        self.broadcast_delta(&delta);
        tracing::info!("join token rotated");
        Ok(JoinToken::new(&self.cluster_id, &join_secret))
    }

    /// Leaves on purpose: tells the cluster (gossip, and a direct push to a few members so the
    /// news does not depend on luck), then forgets the cluster locally.
    async fn leave(&mut self) -> Result<(), String> {
        let record = lock(&self.shared).state.nodes.get(&self.node_id).cloned();
        let Some(mut record) = record else {
            return Err("this node has no record in the cluster".into());
        };
        record.left = true;
        let delta = self.local_delta(Change::Node { id: self.node_id, record: Some(record) });
        self.broadcast_delta(&delta);
        let message = self.push_pull_message();
        let peers: Vec<SocketAddr> = self.active_members().iter().map(|m| m.addr).take(3).collect();
        let ring = &self.keys.gossip;
        let pushes = peers.iter().map(|peer| tcp::exchange(*peer, ring, &self.guard, &message));
        let results = futures::future::join_all(pushes).await;
        let delivered = results.iter().filter(|r| r.is_ok()).count();
        if let Err(error) = self.foca.leave_cluster(&mut self.runtime) {
            tracing::debug!(%error, "foca leave");
        }
        self.flush().await;
        persist::forget_cluster(&self.state_dir).map_err(|e| e.to_string())?;
        tracing::info!(told = delivered, "left the cluster");
        Ok(())
    }

    /// A change made here: versioned by the local clock.
    fn local_delta(&mut self, change: Change) -> Delta {
        let version = lock(&self.shared).clock.tick(self.node_id);
        Delta { version, change }
    }

    /// Applies a delta (local or learned by push-pull) and, if it is news, hands it to foca to
    /// spread.
    pub(super) fn broadcast_delta(&mut self, delta: &Delta) {
        let bytes = broadcast::encode(delta);
        match self.foca.add_broadcast(&bytes) {
            Ok(_) => {}
            Err(error) => {
                // Too big for a datagram: apply locally; push-pull will spread it.
                tracing::warn!(%error, "state delta not gossiped");
                broadcast::merge(&mut lock(&self.shared), delta.clone(), &self.stats);
            }
        }
    }

    /// Merges a peer's full state and membership. Every delta that is news here goes through
    /// foca, so it is also gossiped on: a push-pull then speeds up convergence for everyone.
    fn merge_remote(&mut self, state: Vec<Delta>, members: Vec<Member<MemberId>>) {
        for delta in state {
            self.broadcast_delta(&delta);
        }
        let members = members.into_iter().filter(|m| m.id().node != self.node_id || m.id() == &self.identity);
        if let Err(error) = self.foca.apply_many(members, false, &mut self.runtime) {
            tracing::debug!(%error, "push-pull membership not applied");
        }
    }

    pub(super) fn dump(&self) -> Vec<Delta> {
        lock(&self.shared).state.dump()
    }

    fn push_pull_message(&self) -> TcpMessage {
        let mut members: Vec<Member<MemberId>> = self.foca.iter_membership_state().cloned().collect();
        members.push(Member::alive(self.identity.clone()));
        TcpMessage::PushPull { from: self.identity.clone(), state: self.dump(), members }
    }

    pub(super) fn active_members(&self) -> Vec<MemberId> {
        let mut members: Vec<MemberId> = self.foca.iter_members().map(|m| m.id().clone()).collect();
        members.push(self.identity.clone());
        members
    }

    fn random_active_peer(&self) -> Option<SocketAddr> {
        let peers: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        peers.choose(&mut rand::rng()).copied()
    }

    pub(super) fn start_push_pull(&self, peer: SocketAddr) {
        let message = self.push_pull_message();
        let ring_secrets = lock(&self.shared).state.secrets.get(&()).map(|s| s.gossip_keys.clone());
        let Some(secrets) = ring_secrets else { return };
        let (guard, done) = (self.guard.clone(), self.exchange_tx.clone());
        tokio::spawn(async move {
            let ring = Keyring::new(Purpose::Gossip, &secrets);
            let result = tcp::exchange(peer, &ring, &guard, &message).await;
            let _ = done.send(ExchangeResult { peer, result }).await;
        });
    }
}
