//! The gossip engine: one task that owns foca, the sockets' receive side, the state and this
//! node's credentials, and publishes a [`Snapshot`] after every change.
//!
//! Everything that changes cluster state funnels through this task (datagrams, TCP requests,
//! timers, API commands), so there are no locks to order and no races between a merge and a
//! snapshot. Slow work (exchanges with other nodes: push-pull, certificate renewal, fetching the
//! CA key) runs in spawned tasks and comes back as a message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foca::{AccumulatingRuntime, Codec, Foca, Member, PostcardCodec, Timer};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::admission::Verdict;
use super::broadcast::{self, lock, DeltaHandler, SharedState};
use super::config::GossipConfig;
use super::credentials::Credentials;
use super::crypto::OpenError;
use super::handle::{Command, Exit};
use super::held_keys::HeldKeys;
use super::join;
use super::member::MemberId;
use super::stats::Stats;
use super::tcp::{self, ExchangeError, Inbound, Keyrings, SharedGuard, SharedTls};
use super::wire::TcpMessage;
use crate::identity::NodeId;
use crate::state::version::unix_millis;
use crate::state::{Change, Delta, Liveness, Role, SignedDelta, Snapshot};
use crate::state_dir::StateDir;
use crate::trust::record;
use crate::trust::tls::Revoked;
use crate::util::hex::Bytes;

pub(super) type Swim = Foca<MemberId, PostcardCodec, StdRng, DeltaHandler>;

/// What a spawned exchange brought back.
pub(super) enum Background {
    /// A push-pull this node started.
    PushPull { peer: SocketAddr, result: Result<TcpMessage, ExchangeError> },
    /// A renewal of this node's certificate.
    Renewed(Result<TcpMessage, ExchangeError>),
    /// The CA key, fetched after a promotion.
    CaKey(Result<TcpMessage, ExchangeError>),
    /// Gossip keys a manager handed over.
    GossipKeys(Result<TcpMessage, ExchangeError>),
    /// The managers' answer on a node joining as a manager.
    ManagerApproved {
        admitted: join::Admitted,
        peer: SocketAddr,
        reply: tokio::sync::oneshot::Sender<Option<TcpMessage>>,
        result: Result<(), String>,
    },
}

pub(super) struct Engine {
    pub(super) config: GossipConfig,
    pub(super) node_id: NodeId,
    pub(super) identity: MemberId,
    pub(super) creds: Credentials,
    /// How long the certificates this node issues are valid (`--cert-expiry`).
    pub(super) cert_validity: Duration,
    pub(super) foca: Swim,
    pub(super) runtime: AccumulatingRuntime<MemberId>,
    pub(super) udp: Arc<UdpSocket>,
    pub(super) shared: SharedState,
    pub(super) stats: Arc<Stats>,
    pub(super) guard: SharedGuard,
    pub(super) keys: Arc<Keyrings>,
    pub(super) keys_tx: watch::Sender<Arc<Keyrings>>,
    pub(super) tls: SharedTls,
    pub(super) revoked: Revoked,
    pub(super) snapshot_tx: watch::Sender<Arc<Snapshot>>,
    pub(super) timer_tx: mpsc::UnboundedSender<Timer<MemberId>>,
    pub(super) background_tx: mpsc::Sender<Background>,
    pub(super) state_dir: Arc<StateDir>,
    /// The state changed since it was last written to the state directory.
    pub(super) needs_persist: bool,
    /// Liveness as last published, to republish when only suspicion changed.
    pub(super) published_liveness: BTreeMap<NodeId, Liveness>,
    /// When membership first saw each node down, for reaping.
    pub(super) down_since: BTreeMap<NodeId, Instant>,
    /// A renewal of this node's certificate is under way.
    pub(super) renewing: bool,
    /// The CA key is being fetched (after a promotion).
    pub(super) fetching_ca: bool,
    /// What approves manager joins (the managers' Raft group).
    pub(super) join_gate: join::GateSlot,
    /// The gossip keys this node holds (see `key_material`).
    pub(super) held_keys: HeldKeys,
    /// Gossip keys are being fetched from a manager.
    pub(super) fetching_keys: bool,
}

impl Engine {
    pub(super) async fn run(
        &mut self,
        mut commands: mpsc::Receiver<Command>,
        mut inbound: mpsc::Receiver<Inbound>,
        mut timers: mpsc::UnboundedReceiver<Timer<MemberId>>,
        mut background: mpsc::Receiver<Background>,
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
                    Ok((len, from)) => self.handle_datagram(&buf[..len], from),
                    Err(error) => tracing::debug!(%error, "gossip UDP receive failed"),
                },
                Some(timer) = timers.recv() => {
                    if let Err(error) = self.foca.handle_timer(timer, &mut self.runtime) {
                        tracing::debug!(%error, "gossip timer");
                    }
                }
                Some(request) = inbound.recv() => self.handle_inbound(request),
                Some(done) = background.recv() => self.handle_background(done),
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
                        self.start_push_pull(peer.node, peer.addr);
                    }
                }
                _ = housekeeping.tick() => {
                    if last_rejoin.elapsed() >= self.config.rejoin_interval {
                        last_rejoin = Instant::now();
                        self.rejoin_if_alone();
                    }
                    self.reap();
                    self.expire_held();
                    self.maintain_credentials();
                    if self.liveness() != self.published_liveness {
                        self.publish();
                    }
                    if self.needs_persist {
                        self.persist();
                    }
                }
            }
            self.retry_held();
            self.flush().await;
            self.publish_if_changed();
        }
    }

    /// Admits again the held claims whose network's grants changed: through foca when they
    /// pass (merged and gossiped on), back to waiting when still unproven.
    fn retry_held(&mut self) {
        let retry = std::mem::take(&mut lock(&self.shared).retry);
        for (since, signed) in retry {
            let verdict = {
                let shared = &mut *lock(&self.shared);
                shared.admission.admit(&shared.state, &signed, unix_millis())
            };
            match verdict {
                Ok(Verdict::Admit) => self.gossip_signed(&signed),
                Ok(Verdict::NotNewer) => {}
                Ok(Verdict::Hold) => broadcast::hold(&mut lock(&self.shared), signed, since, &self.stats),
                Err((reason, detail)) => {
                    tracing::debug!(?reason, detail, "held state delta refused");
                    self.stats.count_rejection(reason);
                }
            }
        }
    }

    /// Drops held claims that no grant proved in time.
    fn expire_held(&mut self) {
        let expired = lock(&self.shared).parked.expire(Instant::now());
        if expired > 0 {
            tracing::debug!(expired, "held endpoint claims dropped: no grant proved them");
            self.stats.deltas_held_expired.fetch_add(expired as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn handle_datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        Stats::bump(&self.stats.udp_received);
        if datagram.len() > self.config.max_datagram {
            Stats::bump(&self.stats.dropped_oversized);
            return;
        }
        if tcp::over_share(&self.guard, from.ip()) {
            return self.stats.count_open_error(OpenError::OverShare);
        }
        let Some(ring) = &self.keys.gossip else {
            return self.stats.count_open_error(OpenError::UnknownKey);
        };
        let opened = match ring.open(datagram) {
            Ok(opened) => opened,
            Err(error) => return self.stats.count_open_error(error),
        };
        // A removed node may still hold the key until the rotation its removal started is done:
        // what it says is dropped before membership sees it, and nothing answers it.
        if let Ok(header) = Codec::<MemberId>::decode_header(&mut PostcardCodec, opened.payload.as_slice()) {
            if self.revoked.load().contains(&header.src.node) {
                Stats::bump(&self.stats.dropped_revoked);
                return;
            }
        }
        if let Err(error) = tcp::check_replay(&self.guard, from.ip(), &opened) {
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
        match request {
            Inbound::Join { message, role, peer, reply } => {
                if let Some(reason) = join::settings_conflict(&self.creds.settings, &message) {
                    tracing::warn!(%peer, reason, "join refused");
                    Stats::bump(&self.stats.joins_refused);
                    let _ = reply.send(Some(TcpMessage::Refused { reason }));
                    return;
                }
                let state = lock(&self.shared).state.clone();
                match join::admit(&self.creds, &state, message, role, peer, self.cert_validity) {
                    Ok(admitted) if admitted.ca_key.is_some() => self.approve_manager(admitted, peer, reply),
                    Ok(admitted) => {
                        let _ = reply.send(Some(self.accept_join(admitted, peer)));
                    }
                    Err(reason) => {
                        tracing::warn!(%peer, reason, "join refused");
                        Stats::bump(&self.stats.joins_refused);
                        let _ = reply.send(None);
                    }
                }
            }
            Inbound::Member { message, peer, node, key, reply } => {
                let answer = match message {
                    TcpMessage::PushPull { from, state, members } if from.node == node => {
                        self.merge_remote(state, members);
                        tracing::debug!(%peer, "push-pull served");
                        Stats::bump(&self.stats.push_pulls);
                        self.push_pull_message()
                    }
                    TcpMessage::RenewRequest => self.renew_for(node, key),
                    TcpMessage::CaKeyRequest => self.ca_key_for(node),
                    TcpMessage::GossipKeysRequest { salts } => self.gossip_keys_for(node, salts),
                    _ => TcpMessage::Refused { reason: "not a request a member may make".into() },
                };
                let _ = reply.send(Some(answer));
            }
        }
    }

    fn handle_background(&mut self, done: Background) {
        match done {
            Background::PushPull { peer, result } => match result {
                Ok(TcpMessage::PushPull { state, members, .. }) => {
                    self.merge_remote(state, members);
                    Stats::bump(&self.stats.push_pulls);
                }
                Ok(_) => tracing::debug!(%peer, "unexpected push-pull answer"),
                Err(error) => tracing::debug!(%error, "push-pull failed"),
            },
            Background::Renewed(result) => self.renewed(result),
            Background::CaKey(result) => self.ca_key_fetched(result),
            Background::GossipKeys(result) => self.gossip_keys_fetched(result),
            Background::ManagerApproved { admitted, peer, reply, result } => {
                let answer = match result {
                    Ok(()) => self.accept_join(admitted, peer),
                    Err(reason) => {
                        tracing::warn!(%peer, reason, "a manager join the managers could not record");
                        Stats::bump(&self.stats.joins_refused);
                        TcpMessage::Refused { reason }
                    }
                };
                let _ = reply.send(Some(answer));
            }
        }
    }

    /// A node joining as a manager: the managers record it first (in the background; the answer
    /// comes back as `Background::ManagerApproved`).
    fn approve_manager(
        &mut self,
        admitted: join::Admitted,
        peer: SocketAddr,
        reply: tokio::sync::oneshot::Sender<Option<TcpMessage>>,
    ) {
        let Some(gate) = self.join_gate.get().cloned() else {
            let reason = "this manager is still starting; try again".to_string();
            let _ = reply.send(Some(TcpMessage::Refused { reason }));
            return;
        };
        let done = self.background_tx.clone();
        tokio::spawn(async move {
            let result = gate.approve_manager(admitted.node).await;
            let _ = done.send(Background::ManagerApproved { admitted, peer, reply, result }).await;
        });
    }

    /// Admits a joiner: announces it to membership and answers with the state.
    fn accept_join(&mut self, admitted: join::Admitted, peer: SocketAddr) -> TcpMessage {
        Stats::bump(&self.stats.joins_accepted);
        let members = self.active_members();
        let _ = self.foca.apply_many(
            std::iter::once(Member::alive(MemberId { node: admitted.node, addr: peer, generation: 0 })),
            true,
            &mut self.runtime,
        );
        let state = lock(&self.shared).state.dump_signed();
        join::accept(&self.creds, admitted, state, members)
    }

    /// A change made here: versioned by the local clock, signed with this node's key, merged
    /// and gossiped (through the same admission as anybody's).
    pub(super) fn local_write(&mut self, change: Change) -> SignedDelta {
        let version = lock(&self.shared).clock.tick(self.node_id);
        let signed = record::sign(&self.creds.key, Delta { version, change });
        self.gossip_signed(&signed);
        signed
    }

    /// Hands a signed delta (local, or learned by push-pull) to foca, which merges it (see
    /// `broadcast`) and, if it is news, spreads it.
    pub(super) fn gossip_signed(&mut self, signed: &SignedDelta) {
        let bytes = broadcast::encode(signed);
        if let Err(error) = self.foca.add_broadcast(&bytes) {
            // Too big for a datagram: merge here; push-pull spreads it.
            tracing::debug!(%error, "state delta not gossiped");
            broadcast::merge(&mut lock(&self.shared), signed.clone(), &self.stats);
        }
    }

    /// Merges a peer's full state and membership. Every delta that is news here goes through
    /// foca, so it is also gossiped on: a push-pull then speeds up convergence for everyone.
    fn merge_remote(&mut self, state: Vec<SignedDelta>, members: Vec<Member<MemberId>>) {
        for signed in state {
            self.gossip_signed(&signed);
        }
        let revoked = self.revoked.load_full();
        let members = members.into_iter().filter(|m| {
            (m.id().node != self.node_id || m.id() == &self.identity) && !revoked.contains(&m.id().node)
        });
        if let Err(error) = self.foca.apply_many(members, false, &mut self.runtime) {
            tracing::debug!(%error, "push-pull membership not applied");
        }
    }

    pub(super) fn push_pull_message(&self) -> TcpMessage {
        let mut members: Vec<Member<MemberId>> = self.foca.iter_membership_state().cloned().collect();
        members.push(Member::alive(self.identity.clone()));
        TcpMessage::PushPull {
            from: self.identity.clone(),
            state: lock(&self.shared).state.dump_signed(),
            members,
        }
    }

    pub(super) fn active_members(&self) -> Vec<MemberId> {
        let mut members: Vec<MemberId> = self.foca.iter_members().map(|m| m.id().clone()).collect();
        members.push(self.identity.clone());
        members
    }

    fn random_active_peer(&self) -> Option<MemberId> {
        let revoked = self.revoked.load_full();
        let peers: Vec<MemberId> =
            self.foca.iter_members().map(|m| m.id().clone()).filter(|m| !revoked.contains(&m.node)).collect();
        peers.choose(&mut rand::rng()).cloned()
    }

    /// A live manager other than this node, to ask for what only managers give.
    pub(super) fn random_manager(&self) -> Option<MemberId> {
        let state = &lock(&self.shared).state;
        let managers: Vec<MemberId> = self
            .foca
            .iter_members()
            .map(|m| m.id().clone())
            .filter(|m| {
                m.node != self.node_id
                    && state.role_of(&m.node) == Role::Manager
                    && !state.is_revoked(&m.node)
            })
            .collect();
        managers.choose(&mut rand::rng()).cloned()
    }

    /// Starts an exchange with `node` at `addr` over TLS; its answer comes back as `wrap(result)`.
    pub(super) fn spawn_exchange(
        &self,
        node: NodeId,
        addr: SocketAddr,
        request: TcpMessage,
        wrap: impl FnOnce(Result<TcpMessage, ExchangeError>) -> Background + Send + 'static,
    ) {
        let (tls, done) = (self.tls.load_full(), self.background_tx.clone());
        tokio::spawn(async move {
            let result = tcp::exchange(addr, Some(node), &tls, &request).await;
            let _ = done.send(wrap(result)).await;
        });
    }

    pub(super) fn start_push_pull(&self, node: NodeId, peer: SocketAddr) {
        let message = self.push_pull_message();
        self.spawn_exchange(node, peer, message, move |result| Background::PushPull { peer, result });
    }

    /// The CA key, for a manager that asks (over TLS, so it is who it says).
    fn ca_key_for(&self, node: NodeId) -> TcpMessage {
        let manager = lock(&self.shared).state.role_of(&node) == Role::Manager;
        match &self.creds.ca {
            Some(ca) if manager => {
                tracing::info!(%node, "handing the CA key to a manager");
                TcpMessage::CaKey { key: Bytes(ca.key_pkcs8().to_vec()) }
            }
            Some(_) => TcpMessage::Refused { reason: format!("{node} is not a manager") },
            None => TcpMessage::Refused { reason: "this node does not hold the CA".into() },
        }
    }
}
