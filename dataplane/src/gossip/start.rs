//! Starting the gossip agent: bind the sockets, then create a cluster, join one with a token, or
//! rejoin the one saved in the state directory, and announce this node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foca::{AccumulatingRuntime, Foca, PostcardCodec};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::agent::Agent;
use super::broadcast::{self, lock, DeltaHandler, Shared, SharedState};
use super::config::GossipConfig;
use super::crypto::{Keyring, Purpose, ReplayGuard};
use super::handle::{Exit, GossipHandle};
use super::member::MemberId;
use super::persist::{self, ClusterFile};
use super::stats::Stats;
use super::tcp::{self, ExchangeError, Keyrings, SharedGuard};
use super::wire::TcpMessage;
use crate::identity::{fingerprint, JoinToken, NodeId, Secret};
use crate::state::version::unix_millis;
use crate::state::{Change, ClusterSecrets, ClusterState, Delta, Liveness, NodeRecord, Snapshot};
use crate::state_dir::{StateDir, StateDirError};

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
pub(super) fn keyrings(state: &ClusterState) -> Option<Keyrings> {
    let secrets = state.secrets.get(&())?;
    if secrets.gossip_keys.is_empty() {
        return None;
    }
    Some(Keyrings {
        gossip: Keyring::new(Purpose::Gossip, &secrets.gossip_keys),
        join: Keyring::new(Purpose::Join, std::slice::from_ref(&secrets.join_secret)),
    })
}
