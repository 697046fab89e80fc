//! Starting the gossip agent: bind the sockets, then create a cluster (and its CA), join one with
//! a token, or rejoin the one saved in the state directory, and announce this node.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use foca::{AccumulatingRuntime, Foca, PostcardCodec};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::admission::Admission;
use super::broadcast::{self, lock, DeltaHandler, Shared, SharedState};
use super::config::GossipConfig;
use super::credentials::Credentials;
use super::crypto::{Keyring, Purpose, ReplayGuard, REPLAY_PER_SOURCE, REPLAY_TOTAL};
use super::engine::Engine;
use super::handle::{Exit, GossipHandle};
use super::held_keys::HeldKeys;
use super::join::{self, JoinError};
use super::key_material;
use super::member::MemberId;
use super::persist::{self, ClusterFile};
use super::stats::Stats;
use super::tcp::{self, JoinRings, Keyrings, SharedGuard};
use crate::identity::{JoinToken, NodeId, RequestedSettings, Secret};
use crate::state::version::unix_millis;
use crate::state::{Change, ClusterSecrets, ClusterState, Delta, JoinEpochs, Liveness, Snapshot};
use crate::state_dir::{StateDir, StateDirError};
use crate::trust::ca::{ClusterCa, IssuedCert};
use crate::trust::certs::CaAnchor;
use crate::trust::keys::NodeKey;
use crate::trust::record;
use crate::util::hex::Bytes;

/// Everything the agent needs to start.
pub struct StartParams {
    pub config: GossipConfig,
    pub key: NodeKey,
    pub name: String,
    /// The advertise address and gossip port: bound for UDP and TCP, and told to other nodes.
    pub advertise: SocketAddr,
    pub join: Option<(SocketAddr, JoinToken)>,
    pub state_dir: Arc<StateDir>,
    /// How long the certificates this node issues (as a manager) are valid.
    pub cert_validity: Duration,
    /// The cluster-wide settings this node's flags give: a new cluster's, or checked against
    /// the cluster's when joining or rejoining.
    pub settings: RequestedSettings,
    /// This node's WireGuard public key and port (`encryption/`), published in its record.
    pub wireguard: Option<crate::state::records::WireguardPeer>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind gossip {proto} {addr}: {source}")]
    Bind { proto: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error("this node's state directory belongs to another cluster than the join token's; to join a different one, remove cluster.json, ca.key and state.json there")]
    StateOfAnotherCluster,
    #[error("the saved cluster state has no gossip keys; this node cannot talk to its cluster: remove cluster.json, ca.key and state.json from the state directory and join again with a current token")]
    NoSecrets,
    #[error("cluster.json holds no usable certificate of this node ({0}): remove cluster.json, ca.key and state.json from the state directory and join again with a current token")]
    Certificate(String),
    #[error("this node's certificate expired {0} s ago, and it holds no CA to renew it: it was away longer than certificates last; remove cluster.json, ca.key and state.json from the state directory and join again with a current token")]
    Expired(u64),
    #[error("{0}")]
    Settings(String),
    #[error("cannot create the cluster CA: {0}")]
    Ca(String),
    #[error(transparent)]
    State(#[from] StateDirError),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot generate a random value: {0}")]
    Random(getrandom::Error),
}

/// Binds the gossip sockets, creates, joins or rejoins the cluster, and starts the agent.
pub async fn start(params: StartParams) -> Result<(GossipHandle, JoinHandle<Exit>), StartError> {
    let StartParams { config, key, name, advertise, join, state_dir, cert_validity, settings, wireguard } =
        params;
    let bind_err = |proto| move |source| StartError::Bind { proto, addr: advertise, source };
    let udp = UdpSocket::bind(advertise).await.map_err(bind_err("UDP"))?;
    let listener = TcpListener::bind(advertise).await.map_err(bind_err("TCP"))?;

    let stats = Arc::new(Stats::default());
    let guard: SharedGuard = Arc::new(Mutex::new(ReplayGuard::new(
        config.replay_window.as_millis() as u64,
        REPLAY_PER_SOURCE,
        REPLAY_TOTAL,
    )));
    let node_id = key.node_id();
    let identity = MemberId { node: node_id, addr: advertise, generation: unix_millis() };
    let key = Arc::new(key);

    // Which cluster, and what we know of it.
    let mut seeds: Vec<MemberId> = Vec::new();
    let cluster_file = persist::load_cluster(&state_dir)?;
    let fresh_join = cluster_file.is_none() && join.is_some();
    let (creds, known, founder) = match (cluster_file, &join) {
        (Some(file), join) => {
            let creds =
                rejoin(&state_dir, &key, file, join.as_ref().map(|(_, t)| t), &settings, cert_validity)?;
            (creds, persist::load_state(&state_dir)?.deltas, None)
        }
        (None, Some((addr, token))) => {
            let joined = join::request(*addr, token, &key, &identity, &name, &settings, &guard).await?;
            let anchor =
                CaAnchor::new(&joined.ca_cert).map_err(|e| StartError::Certificate(e.to_string()))?;
            let ca = match &joined.ca_key {
                Some(pkcs8) => Some(Arc::new(
                    ClusterCa::load(joined.ca_cert.clone(), pkcs8)
                        .map_err(|e| StartError::Ca(e.to_string()))?,
                )),
                None => None,
            };
            let creds = Credentials {
                key: key.clone(),
                ca_cert: joined.ca_cert,
                anchor,
                cert: joined.cert,
                ca,
                settings: joined.settings,
            };
            save_credentials(&state_dir, &creds)?;
            seeds = joined.members;
            tracing::info!(%addr, members = seeds.len(), manager = creds.ca.is_some(), settings = %creds.settings, "joined the cluster");
            (creds, joined.state, None)
        }
        (None, None) => {
            let founding = settings.founding();
            founding.validate().map_err(|e| StartError::Settings(e.to_string()))?;
            if founding.data_path_port == advertise.port() {
                return Err(StartError::Settings(format!(
                    "--data-path-port {} is this node's gossip port (--listen-port): choose another",
                    founding.data_path_port
                )));
            }
            let ca = ClusterCa::create().map_err(|e| StartError::Ca(e.to_string()))?;
            let cert = ca
                .issue(&key.public(), cert_validity.as_secs().max(1))
                .map_err(|e| StartError::Ca(e.to_string()))?;
            let grant = ca.founder_grant(&node_id);
            let anchor = CaAnchor::new(ca.cert()).map_err(|e| StartError::Ca(e.to_string()))?;
            let creds = Credentials {
                key: key.clone(),
                ca_cert: ca.cert().to_vec(),
                anchor,
                cert,
                ca: Some(Arc::new(ca)),
                settings: founding,
            };
            save_credentials(&state_dir, &creds)?;
            tracing::info!(fingerprint = %creds.fingerprint(), settings = %creds.settings, "created a new cluster and its CA");
            (creds, Vec::new(), Some(grant))
        }
    };

    // A restart with a --listen-port that is the cluster's data path port: the VXLAN and gossip
    // sockets would want the same UDP port (a founder and a joiner were checked already).
    if creds.settings.data_path_port == advertise.port() {
        return Err(StartError::Settings(format!(
            "--listen-port {} is the cluster's data path (VXLAN) port: choose another",
            advertise.port()
        )));
    }
    let shared: SharedState = Arc::new(Mutex::new(Shared::new(
        Admission::new(creds.anchor.clone(), node_id).with_data_path_port(creds.settings.data_path_port),
    )));
    {
        let mut guard = lock(&shared);
        for signed in known {
            broadcast::merge(&mut guard, signed, &stats);
        }
        tracing::info!(entries = guard.state.len(), "cluster state loaded");
    }

    // Say who we are (a new version every start: name, address or certificate may have
    // changed). Applied here, so that what this node writes next can be checked against its
    // certificate; spread through foca below.
    let own_record = {
        let mut guard = lock(&shared);
        let previous = guard.state.nodes.get(&node_id).cloned();
        let record = crate::state::NodeRecord {
            name: name.clone(),
            gossip_addr: advertise,
            left: false,
            // Back after a leave: carry the departure forward so what we owned before stays gone.
            departed: guard.state.departure(&node_id),
            cert: Bytes(creds.cert.der.clone()),
            founder: founder.map(crate::state::Signature).or(previous.and_then(|p| p.founder)),
            keyring: Default::default(),
            wireguard,
        };
        let version = guard.clock.tick(node_id);
        let signed =
            record::sign(&key, Delta { version, change: Change::Node { id: node_id, record: Some(record) } });
        broadcast::merge(&mut guard, signed.clone(), &stats);
        // Everyone the saved state knows is a peer to announce to after a restart.
        for (id, record) in guard.state.nodes.live() {
            if *id != node_id && !record.left && !seeds.iter().any(|s| s.node == *id) {
                seeds.push(MemberId { node: *id, addr: record.gossip_addr, generation: 0 });
            }
        }
        signed
    };
    if lock(&shared).state.secrets.get(&()).is_none() {
        if join.is_some() || !seeds.is_empty() {
            return Err(StartError::NoSecrets);
        }
        // A new cluster: its first gossip key.
        let secrets = ClusterSecrets {
            gossip_keys: vec![Secret::random().map_err(StartError::Random)?],
            join_epochs: JoinEpochs::default(),
        };
        let mut guard = lock(&shared);
        let version = guard.clock.tick(node_id);
        let signed = record::sign(&key, Delta { version, change: Change::Secrets { value: Some(secrets) } });
        broadcast::merge(&mut guard, signed, &stats);
    }
    let revoked: crate::trust::tls::Revoked = Arc::new(ArcSwap::from_pointee(HashSet::new()));
    let tls = Arc::new(ArcSwap::from_pointee(creds.tls(revoked.clone())?));

    // The gossip keys: derived (a manager), kept from before, or asked of a manager over TLS
    // (the one that admitted a joiner first).
    let mut held_keys = HeldKeys::load(&state_dir)?;
    let salts = key_material::current_salts(&lock(&shared).state);
    if let Some(ca) = &creds.ca {
        held_keys.derive(ca, &salts);
    }
    if !held_keys.missing(&salts).is_empty() {
        let mut managers: Vec<(Option<NodeId>, SocketAddr)> = Vec::new();
        if let (Some((addr, _)), true) = (&join, fresh_join) {
            managers.push((None, *addr));
        }
        let known = key_material::managers(&lock(&shared).state, node_id);
        managers.extend(known.into_iter().take(3).map(|(id, addr)| (Some(id), addr)));
        key_material::fetch_now(&managers, &tls.load(), &salts, &mut held_keys).await;
    }
    held_keys.retain(&salts);
    held_keys.save(&state_dir)?;
    let keys = Arc::new(keyrings(&lock(&shared).state, &creds, &held_keys).ok_or(StartError::NoSecrets)?);
    if keys.gossip.is_none() {
        tracing::warn!("no manager handed over the gossip keys yet; asking again in the background");
    }

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
        cluster: creds.fingerprint(),
        state: lock(&shared).state.clone(),
        liveness: BTreeMap::from([(node_id, Liveness::Alive)]),
    }));
    let (keys_tx, keys_rx) = watch::channel(keys.clone());
    let (inbound_tx, inbound_rx) = mpsc::channel(64);
    let (command_tx, command_rx) = mpsc::channel(16);
    let (timer_tx, timer_rx) = mpsc::unbounded_channel();
    let (background_tx, background_rx) = mpsc::channel(16);

    let channels: tcp::ChannelSlot = Default::default();
    let join_gate: join::GateSlot = Default::default();
    let tcp_task = tokio::spawn(tcp::serve(
        listener,
        keys_rx,
        tls.clone(),
        guard.clone(),
        inbound_tx,
        stats.clone(),
        channels.clone(),
        snapshot_rx.clone(),
    ));

    let mut agent = Engine {
        config,
        node_id,
        identity,
        creds,
        cert_validity,
        foca,
        runtime: AccumulatingRuntime::new(),
        udp: Arc::new(udp),
        shared,
        stats: stats.clone(),
        guard,
        keys,
        keys_tx,
        tls,
        revoked,
        snapshot_tx,
        timer_tx,
        background_tx,
        state_dir,
        needs_persist: true,
        published_liveness: BTreeMap::new(),
        down_since: BTreeMap::new(),
        renewing: false,
        fetching_ca: false,
        join_gate: join_gate.clone(),
        held_keys,
        fetching_keys: false,
    };
    agent.gossip_signed(&own_record);
    for seed in &seeds {
        let _ = agent.foca.announce(seed.clone(), &mut agent.runtime);
    }
    // A full exchange right away repairs whatever changed while this node was away.
    if let Some(seed) = seeds.first() {
        agent.start_push_pull(seed.node, seed.addr);
    }
    agent.flush().await;
    agent.refresh_trust();
    agent.persist();
    agent.publish();

    let handle = GossipHandle {
        settings: Arc::new(agent.creds.settings.clone()),
        snapshot: snapshot_rx,
        commands: command_tx,
        stats,
        tls: agent.tls.clone(),
        channels,
        join_gate,
    };
    let task = tokio::spawn(async move {
        let exit = agent.run(command_rx, inbound_rx, timer_rx, background_rx).await;
        tcp_task.abort();
        exit
    });
    Ok((handle, task))
}

/// The credentials of a node that was a member before this start.
fn rejoin(
    state_dir: &StateDir,
    key: &Arc<NodeKey>,
    file: ClusterFile,
    token: Option<&JoinToken>,
    requested: &RequestedSettings,
    cert_validity: Duration,
) -> Result<Credentials, StartError> {
    let fingerprint = crate::trust::ca::fingerprint(&file.ca_cert.0);
    if token.is_some_and(|t| t.fingerprint != fingerprint) {
        return Err(StartError::StateOfAnotherCluster);
    }
    // Before anything is touched: the saved settings hold, and the flags (if any) agree.
    file.settings
        .validate()
        .map_err(|e| StartError::Settings(format!("cluster.json holds unusable settings: {e}")))?;
    if let Some(reason) = requested.conflict(&file.settings) {
        return Err(StartError::Settings(reason));
    }
    let anchor = CaAnchor::new(&file.ca_cert.0).map_err(|e| StartError::Certificate(e.to_string()))?;
    let ca = match persist::load_ca_key(state_dir)? {
        Some(pkcs8) => Some(Arc::new(
            ClusterCa::load(file.ca_cert.0.clone(), &pkcs8).map_err(|e| StartError::Ca(e.to_string()))?,
        )),
        None => None,
    };
    let mut cert: IssuedCert = file.cert;
    let now = unix_millis() / 1000;
    if now >= cert.not_after {
        // A manager renews its own; anyone else has been away too long.
        let ca = ca.as_ref().ok_or(StartError::Expired(now - cert.not_after))?;
        cert = ca
            .issue(&key.public(), cert_validity.as_secs().max(1))
            .map_err(|e| StartError::Ca(e.to_string()))?;
    }
    match anchor.verify(&cert.der, rustls::pki_types::UnixTime::now()) {
        Ok((id, _)) if id == key.node_id() => {}
        Ok((id, _)) => {
            return Err(StartError::Certificate(format!("it certifies {id}, not this node's key")))
        }
        Err(e) => return Err(StartError::Certificate(e.to_string())),
    }
    let creds =
        Credentials { key: key.clone(), ca_cert: file.ca_cert.0, anchor, cert, ca, settings: file.settings };
    save_credentials(state_dir, &creds)?;
    tracing::info!(fingerprint = %fingerprint, manager = creds.ca.is_some(), "rejoining with the saved cluster state");
    Ok(creds)
}

/// Saves the CA certificate, this node's certificate and (on managers) the CA key.
pub(super) fn save_credentials(state_dir: &StateDir, creds: &Credentials) -> Result<(), StateDirError> {
    if let Some(ca) = &creds.ca {
        persist::save_ca_key(state_dir, ca.key_pkcs8())?;
    }
    persist::save_cluster(
        state_dir,
        &ClusterFile {
            ca_cert: Bytes(creds.ca_cert.clone()),
            cert: creds.cert.clone(),
            settings: creds.settings.clone(),
        },
    )
}

/// The keyrings the current secrets give: the gossip keys this node holds of those the record
/// names, the join keys for a node holding the CA.
pub(super) fn keyrings(state: &ClusterState, creds: &Credentials, held: &HeldKeys) -> Option<Keyrings> {
    let secrets = state.secrets.get(&())?;
    if secrets.gossip_keys.is_empty() {
        return None;
    }
    let join = creds.join_secrets(secrets.join_epochs).map(|joins| JoinRings {
        worker: Keyring::new(Purpose::Join, &[join::secret(joins.worker)]),
        manager: Keyring::new(Purpose::Join, &[join::secret(joins.manager)]),
    });
    let ring = held.ring(&secrets.gossip_keys);
    let gossip = (!ring.is_empty()).then(|| Keyring::new(Purpose::Gossip, &ring));
    Some(Keyrings { gossip, join })
}
