//! The gossip agent: one task that owns foca, the sockets' receive side and the state, and
//! publishes a [`Snapshot`] after every change.
//!
//! Everything that changes cluster state funnels through this task (datagrams, TCP requests,
//! timers, API commands), so there are no locks to order and no races between a merge and a
//! snapshot. Slow work (push-pull exchanges with other nodes) runs in spawned tasks and comes back
//! as a message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foca::{AccumulatingRuntime, Foca, Member, OwnedNotification, PostcardCodec, State, Timer};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::broadcast::{self, lock, DeltaHandler, Shared, SharedState};
use super::config::GossipConfig;
use super::crypto::{Keyring, Purpose, ReplayGuard};
use super::member::MemberId;
use super::persist::{self, ClusterFile, StateFile};
use super::snapshot::Snapshot;
use super::stats::Stats;
use super::tcp::{self, ExchangeError, Inbound, Keyrings, SharedGuard};
use super::wire::TcpMessage;
use crate::api::proto::Availability;
use crate::cluster_identity::{fingerprint, JoinToken, Secret};
use crate::identity::NodeId;
use crate::state::cluster::{ClusterSecrets, Liveness};
use crate::state::version::unix_millis;
use crate::state::{Change, Delta, NodeRecord};
use crate::state_dir::{StateDir, StateDirError};

type Swim = Foca<MemberId, PostcardCodec, StdRng, DeltaHandler>;

/// Everything the agent needs to start.
pub struct StartParams {
    pub config: GossipConfig,
    pub node_id: NodeId,
    pub name: String,
    /// The advertise address and gossip port: bound for UDP and TCP, and told to other nodes.
    pub advertise: SocketAddr,
    pub join: Option<(SocketAddr, JoinToken)>,
    pub state_dir: Arc<StateDir>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind gossip {proto} {addr}: {source}")]
    Bind { proto: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("cannot join the cluster: {0}")]
    Join(ExchangeError),
    #[error("the cluster at {addr} is not the one the join token is for (fingerprint mismatch)")]
    WrongCluster { addr: SocketAddr },
    #[error("this node's state directory belongs to another cluster than the join token's; remove cluster.json and state.json there to join a different one")]
    StateOfAnotherCluster,
    #[error("the cluster sent no secrets")]
    NoSecrets,
    #[error("unexpected answer to a join request from {addr}")]
    Protocol { addr: SocketAddr },
    #[error(transparent)]
    State(#[from] StateDirError),
    #[error("cannot generate a random value: {0}")]
    Random(getrandom::Error),
}

/// How the agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Stopped for a restart (SIGTERM): still a member.
    Stopped,
    /// Left the cluster on purpose.
    Left,
}

enum Command {
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
    snapshot: watch::Receiver<Arc<Snapshot>>,
    commands: mpsc::Sender<Command>,
    stats: Arc<Stats>,
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

/// Binds the gossip sockets, creates, joins or rejoins the cluster, and starts the agent.
pub async fn start(params: StartParams) -> Result<(GossipHandle, JoinHandle<Exit>), StartError> {
    let StartParams { config, node_id, name, advertise, join, state_dir } = params;
    let bind_err = |proto| move |source| StartError::Bind { proto, addr: advertise, source };
    let udp = UdpSocket::bind(advertise).await.map_err(bind_err("UDP"))?;
    let listener = TcpListener::bind(advertise).await.map_err(bind_err("TCP"))?;

    let stats = Arc::new(Stats::default());
    let guard: SharedGuard =
        Arc::new(Mutex::new(ReplayGuard::new(config.replay_window.as_millis() as u64, 1 << 20)));
    let identity = MemberId { node: node_id, addr: advertise, generation: unix_millis() };
    let shared: SharedState = Arc::new(Mutex::new(Shared::default()));

    // Which cluster, and what we know of it.
    let mut seeds: Vec<MemberId> = Vec::new();
    let cluster_id = match (persist::load_cluster(&state_dir)?, &join) {
        (Some(file), join) => {
            if let Some((_, token)) = join {
                if fingerprint(&file.cluster_id) != token.fingerprint {
                    return Err(StartError::StateOfAnotherCluster);
                }
            }
            let saved = persist::load_state(&state_dir)?;
            let mut guard = lock(&shared);
            for delta in saved.deltas {
                broadcast::merge(&mut guard, delta, &stats);
            }
            tracing::info!(entries = guard.state.dump().len(), "rejoining with the saved cluster state");
            file.cluster_id
        }
        (None, Some((addr, token))) => {
            let ring = Keyring::new(Purpose::Join, std::slice::from_ref(&token.secret));
            let request = TcpMessage::JoinRequest { member: identity.clone(), name: name.clone() };
            let reply = join_with_retries(*addr, &ring, &guard, &request).await?;
            let TcpMessage::JoinAccept { cluster_id, state, members } = reply else {
                return Err(StartError::Protocol { addr: *addr });
            };
            if fingerprint(&cluster_id) != token.fingerprint {
                return Err(StartError::WrongCluster { addr: *addr });
            }
            let mut guard = lock(&shared);
            for delta in state {
                broadcast::merge(&mut guard, delta, &stats);
            }
            seeds = members;
            tracing::info!(%addr, members = seeds.len(), "joined the cluster");
            persist::save_cluster(&state_dir, &ClusterFile { cluster_id: cluster_id.clone() })?;
            cluster_id
        }
        (None, None) => {
            let cluster_id = Secret::random().map_err(StartError::Random)?;
            let secrets = ClusterSecrets {
                join_secret: Secret::random().map_err(StartError::Random)?,
                gossip_keys: vec![Secret::random().map_err(StartError::Random)?],
            };
            let mut guard = lock(&shared);
            let version = guard.clock.tick(node_id);
            broadcast::merge(
                &mut guard,
                Delta { version, change: Change::Secrets { value: Some(secrets) } },
                &stats,
            );
            tracing::info!(fingerprint = %fingerprint(&cluster_id), "created a new cluster");
            persist::save_cluster(&state_dir, &ClusterFile { cluster_id: cluster_id.clone() })?;
            cluster_id
        }
    };

    // Say who we are (a new version every start: name or address may have changed). Spread
    // through foca below, which also applies it locally.
    let own_record = {
        let mut guard = lock(&shared);
        let version = guard.clock.tick(node_id);
        // Back after a leave: carry the departure forward so what we owned before stays gone.
        let departed = guard.state.departure(&node_id);
        // Everyone the saved state knows is a peer to announce to after a restart.
        for (id, record) in guard.state.nodes.live() {
            if *id != node_id && !record.left && !seeds.iter().any(|s| s.node == *id) {
                seeds.push(MemberId { node: *id, addr: record.gossip_addr, generation: 0 });
            }
        }
        Delta {
            version,
            change: Change::Node {
                id: node_id,
                record: Some(NodeRecord {
                    name: name.clone(),
                    gossip_addr: advertise,
                    left: false,
                    departed,
                }),
            },
        }
    };
    let keys = Arc::new(keyrings(&lock(&shared).state).ok_or(StartError::NoSecrets)?);

    let mut seed_bytes = [0u8; 8];
    getrandom::fill(&mut seed_bytes).map_err(StartError::Random)?;
    let handler = DeltaHandler { shared: shared.clone(), stats: stats.clone() };
    let foca = Foca::with_custom_broadcast(
        identity.clone(),
        config.foca(16),
        StdRng::seed_from_u64(u64::from_le_bytes(seed_bytes)),
        PostcardCodec,
        handler,
    );

    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot {
        self_id: node_id,
        cluster_id: cluster_id.clone(),
        state: lock(&shared).state.clone(),
        liveness: BTreeMap::from([(node_id, Liveness::Alive)]),
    }));
    let (keys_tx, keys_rx) = watch::channel(keys.clone());
    let (inbound_tx, inbound_rx) = mpsc::channel(64);
    let (command_tx, command_rx) = mpsc::channel(16);
    let (timer_tx, timer_rx) = mpsc::unbounded_channel();
    let (exchange_tx, exchange_rx) = mpsc::channel(16);

    let tcp_task = tokio::spawn(tcp::serve(listener, keys_rx, guard.clone(), inbound_tx, stats.clone()));

    let mut agent = Agent {
        config,
        node_id,
        identity,
        cluster_id,
        foca,
        runtime: AccumulatingRuntime::new(),
        udp: Arc::new(udp),
        shared,
        stats: stats.clone(),
        guard,
        keys,
        keys_tx,
        snapshot_tx,
        timer_tx,
        exchange_tx,
        state_dir,
        needs_persist: true,
        published_liveness: BTreeMap::new(),
        down_since: BTreeMap::new(),
    };
    agent.broadcast_delta(&own_record);
    for seed in &seeds {
        let _ = agent.foca.announce(seed.clone(), &mut agent.runtime);
    }
    // A full exchange right away repairs whatever changed while this node was away.
    if let Some(seed) = seeds.first() {
        agent.start_push_pull(seed.addr);
    }
    agent.flush().await;
    agent.persist();
    agent.publish();

    let handle = GossipHandle { snapshot: snapshot_rx, commands: command_tx, stats };
    let task = tokio::spawn(async move {
        let exit = agent.run(command_rx, inbound_rx, timer_rx, exchange_rx).await;
        tcp_task.abort();
        exit
    });
    Ok((handle, task))
}

/// Sends the join request, retrying with jittered exponential backoff while the seed cannot be
/// reached (it may be starting, or busy); a refusal (wrong token) or a bad answer is final.
async fn join_with_retries(
    addr: SocketAddr,
    ring: &Keyring,
    guard: &SharedGuard,
    request: &TcpMessage,
) -> Result<TcpMessage, StartError> {
    const ATTEMPTS: u32 = 6;
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=ATTEMPTS {
        match tcp::exchange(addr, ring, guard, request).await {
            Ok(reply) => return Ok(reply),
            Err(error @ (ExchangeError::Connect { .. } | ExchangeError::Wire { .. }))
                if attempt < ATTEMPTS =>
            {
                let jitter = Duration::from_millis(u64::from(rand::random::<u16>() % 200));
                tracing::warn!(%error, attempt, "cannot reach the seed yet; retrying");
                tokio::time::sleep(delay + jitter).await;
                delay *= 2;
            }
            Err(error) => return Err(StartError::Join(error)),
        }
    }
    unreachable!("the last attempt returns")
}

/// The keyrings the current secrets give.
fn keyrings(state: &crate::state::ClusterState) -> Option<Keyrings> {
    let secrets = state.secrets.get(&())?;
    if secrets.gossip_keys.is_empty() {
        return None;
    }
    Some(Keyrings {
        gossip: Keyring::new(Purpose::Gossip, &secrets.gossip_keys),
        join: Keyring::new(Purpose::Join, std::slice::from_ref(&secrets.join_secret)),
    })
}

/// The result of a push-pull this node started.
struct ExchangeResult {
    peer: SocketAddr,
    result: Result<TcpMessage, ExchangeError>,
}

struct Agent {
    config: GossipConfig,
    node_id: NodeId,
    identity: MemberId,
    cluster_id: Secret,
    foca: Swim,
    runtime: AccumulatingRuntime<MemberId>,
    udp: Arc<UdpSocket>,
    shared: SharedState,
    stats: Arc<Stats>,
    guard: SharedGuard,
    keys: Arc<Keyrings>,
    keys_tx: watch::Sender<Arc<Keyrings>>,
    snapshot_tx: watch::Sender<Arc<Snapshot>>,
    timer_tx: mpsc::UnboundedSender<Timer<MemberId>>,
    exchange_tx: mpsc::Sender<ExchangeResult>,
    state_dir: Arc<StateDir>,
    /// The state changed since it was last written to the state directory.
    needs_persist: bool,
    /// Liveness as last published, to republish when only suspicion changed.
    published_liveness: BTreeMap<NodeId, Liveness>,
    /// When membership first saw each node down, for reaping.
    down_since: BTreeMap<NodeId, Instant>,
}

impl Agent {
    async fn run(
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
    fn broadcast_delta(&mut self, delta: &Delta) {
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

    fn dump(&self) -> Vec<Delta> {
        lock(&self.shared).state.dump()
    }

    fn push_pull_message(&self) -> TcpMessage {
        let mut members: Vec<Member<MemberId>> = self.foca.iter_membership_state().cloned().collect();
        members.push(Member::alive(self.identity.clone()));
        TcpMessage::PushPull { from: self.identity.clone(), state: self.dump(), members }
    }

    fn active_members(&self) -> Vec<MemberId> {
        let mut members: Vec<MemberId> = self.foca.iter_members().map(|m| m.id().clone()).collect();
        members.push(self.identity.clone());
        members
    }

    fn random_active_peer(&self) -> Option<SocketAddr> {
        let peers: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        peers.choose(&mut rand::rng()).copied()
    }

    fn start_push_pull(&self, peer: SocketAddr) {
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

    /// With no live member (after a restart, or on the small side of a partition), announce to
    /// every node the state knows; whoever answers brings the rest.
    fn rejoin_if_alone(&mut self) {
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
    fn reap(&mut self) {
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
    async fn flush(&mut self) {
        while let Some((to, data)) = self.runtime.to_send() {
            let sealed = self.keys.gossip.seal(&data, unix_millis());
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
                        self.start_push_pull(m.addr);
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

    fn liveness(&self) -> BTreeMap<NodeId, Liveness> {
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

    fn publish_if_changed(&mut self) {
        let dirty = std::mem::take(&mut lock(&self.shared).dirty);
        if dirty {
            self.refresh_keys();
            self.publish();
        }
    }

    fn refresh_keys(&mut self) {
        if let Some(keys) = keyrings(&lock(&self.shared).state) {
            let keys = Arc::new(keys);
            self.keys = keys.clone();
            self.keys_tx.send_replace(keys);
        }
    }

    fn publish(&mut self) {
        let state = lock(&self.shared).state.clone();
        let liveness = self.liveness();
        self.published_liveness = liveness.clone();
        let snapshot =
            Snapshot { self_id: self.node_id, cluster_id: self.cluster_id.clone(), state, liveness };
        log_changes(&self.snapshot_tx.borrow(), &snapshot);
        self.snapshot_tx.send_replace(Arc::new(snapshot));
        // Written at the next housekeeping tick: at most one write a second however busy gossip is.
        self.needs_persist = true;
    }

    fn persist(&mut self) {
        let file = StateFile { deltas: self.dump() };
        match persist::save_state(&self.state_dir, &file) {
            Ok(()) => self.needs_persist = false,
            Err(error) => tracing::warn!(%error, "cannot save the cluster state"),
        }
    }
}

/// Logs what an operator (or a benchmark reading the logs) wants to see change: a node turning
/// suspect, and availability changes, on every node that learns of them. Up and down are logged
/// where foca reports them.
fn log_changes(before: &Snapshot, after: &Snapshot) {
    for (id, live) in &after.liveness {
        if *live == Liveness::Suspect && before.liveness.get(id) != Some(&Liveness::Suspect) {
            tracing::info!(node = %id, "member suspect");
        }
    }
    for (id, availability) in after.state.availability.live() {
        if before.state.availability_of(id) != *availability {
            tracing::info!(node = %id, %availability, "availability changed");
        }
    }
}
