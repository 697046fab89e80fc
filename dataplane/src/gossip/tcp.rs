//! TCP 7946: serving members (mutual TLS) and joiners (one sealed request), and making both
//! kinds of exchange.
//!
//! A connection carries one request and one reply. Its first byte says which kind it is: a TLS
//! handshake starts with 0x16 (a record of type handshake), a join frame with the high byte of
//! its length, which is 0 for any frame a joiner may send (at most `MAX_JOIN_FRAME`).
//!
//! - Members: the TLS handshake proves a certificate of the cluster CA that is valid and not
//!   revoked (`trust::tls`); the peer's node ID is the hash of its certified key. Push-pull,
//!   certificate renewal and the CA key (for a promoted manager) travel here.
//! - Joiners: the frame is sealed with the key the join token's secret gives; only managers
//!   hold the secrets (derived from the CA key). Which secret opens it says the role.
//!
//! Before a peer is known it holds little: the first byte within [`FIRST_BYTE_DEADLINE`], the
//! handshake or the join frame within [`HANDSHAKE_DEADLINE`], a join frame of at most
//! `MAX_JOIN_FRAME` bytes (nothing larger is allocated), and at most [`PER_SOURCE`]
//! connections from one address at a time. Anything else closes the connection and is counted.
//!
//! The slots are two pools, chosen by the source address before a byte is read: the gossip
//! addresses of the cluster's nodes share [`MEMBER_CONNECTIONS`], every other source (joiners,
//! and anyone else on the underlay) shares [`STRANGER_CONNECTIONS`]. A connection that finds its
//! pool full is closed at once and counted; nothing waits in the backlog. So a flood from any
//! number of underlay addresses fills only the strangers' pool (it can delay a join, never a
//! member's exchange), and a member address's share is taken only by that node itself: its
//! containers cannot open connections to any node's gossip port (`host::nftables`).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::crypto::{Keyring, OpenError, Opened, ReplayGuard};
use super::stats::Stats;
use super::wire::{self, TcpMessage, WireError, MAX_JOIN_FRAME};
use crate::identity::NodeId;
use crate::state::version::unix_millis;
use crate::state::Snapshot;
use crate::trust::ca::JoinRole;
use crate::trust::keys::PublicKey;
use crate::trust::tls::{self, TlsConfigs};

/// Connections from the cluster's nodes' gossip addresses served at once: [`PER_SOURCE`] for
/// each of 128 nodes (a manager holds a lasting channel from every worker).
pub const MEMBER_CONNECTIONS: usize = 1024;
/// Connections from any other source served at once; more are closed at once.
pub const STRANGER_CONNECTIONS: usize = 64;
/// Connections from one source address at once; more are closed at once.
pub const PER_SOURCE: usize = 8;
/// How long an unknown peer has to send its first byte.
pub const FIRST_BYTE_DEADLINE: Duration = Duration::from_secs(1);
/// How long an unknown peer has to finish the TLS handshake, or to send its join frame.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(2);
/// How long the agent may take to answer a request.
const AGENT_TIMEOUT: Duration = Duration::from_secs(6);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// The keys in force for sealed traffic, replaced by the agent whenever they change.
#[derive(Debug)]
pub struct Keyrings {
    /// UDP gossip between members; none until this node holds a key the `secrets` record
    /// names (a joiner or a restarted member waiting for a manager to hand it over).
    pub gossip: Option<Keyring>,
    /// Joins as a worker and as a manager; only a node holding the CA has them.
    pub join: Option<JoinRings>,
}

#[derive(Debug)]
pub struct JoinRings {
    pub worker: Keyring,
    pub manager: Keyring,
}

/// A request that arrived, handed to the agent; it answers with a reply or `None` (refuse:
/// the connection is closed).
#[derive(Debug)]
pub enum Inbound {
    /// A sealed join request, with the role its secret admits.
    Join { message: TcpMessage, role: JoinRole, peer: SocketAddr, reply: oneshot::Sender<Option<TcpMessage>> },
    /// A member's request over TLS, with the node and key its certificate proved.
    Member {
        message: TcpMessage,
        peer: SocketAddr,
        node: NodeId,
        key: PublicKey,
        reply: oneshot::Sender<Option<TcpMessage>>,
    },
}

pub type SharedGuard = Arc<Mutex<ReplayGuard>>;

/// A member's connection as the server accepted it (after the TLS handshake).
pub type MemberStream = tokio_rustls::server::TlsStream<TcpStream>;

/// What takes over a member connection whose first frame opens a lasting channel
/// (`TcpMessage::Channel`): the `tls_channel` layer above gossip, installed once gossip runs.
/// Gossip owns the port, the connection's slot and the peer's proven identity; the channel
/// layer owns the frames that follow. A trait, so that gossip does not import the layer above.
pub trait ChannelServer: Send + Sync + 'static {
    fn serve<'a>(
        &'a self,
        stream: &'a mut MemberStream,
        peer: NodeId,
        first: Vec<u8>,
        stats: &'a Stats,
    ) -> Pin<Box<dyn Future<Output = Result<(), &'static str>> + Send + 'a>>;
}

/// Where the channel server is installed, once, after gossip started.
pub type ChannelSlot = Arc<OnceLock<Arc<dyn ChannelServer>>>;
pub type SharedTls = Arc<ArcSwap<TlsConfigs>>;

/// Checks a frame's timestamp and nonce against the shared replay guard, in `source`'s share.
pub fn check_replay(guard: &SharedGuard, source: IpAddr, opened: &Opened) -> Result<(), OpenError> {
    guard.lock().unwrap_or_else(|p| p.into_inner()).check(source, opened, unix_millis())
}

/// Whether `source` is past its share of the replay guard (its frames need not be opened).
pub fn over_share(guard: &SharedGuard, source: IpAddr) -> bool {
    guard.lock().unwrap_or_else(|p| p.into_inner()).over_share(source, unix_millis())
}

/// What every connection of the server needs.
struct Server {
    keys: watch::Receiver<Arc<Keyrings>>,
    tls: SharedTls,
    guard: SharedGuard,
    inbound: mpsc::Sender<Inbound>,
    stats: Arc<Stats>,
    sources: Mutex<HashMap<IpAddr, usize>>,
    channels: ChannelSlot,
    pools: Pools,
}

/// Which pool a source's connections take their slots from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    /// The gossip address of a node in the cluster's state.
    Members,
    /// Anyone else: joiners, underlay hosts.
    Strangers,
}

impl Pool {
    fn of(ip: IpAddr, snapshot: &Snapshot) -> Pool {
        // A removed node's records are forgotten with its revocation; checked anyway, so that a
        // record merged before its revocation never gives a removed node a member's share.
        let member =
            snapshot.state.nodes.live().any(|(id, node)| {
                !node.left && node.gossip_addr.ip() == ip && !snapshot.state.is_revoked(id)
            });
        if member {
            Pool::Members
        } else {
            Pool::Strangers
        }
    }
}

/// The connection slots, one semaphore per pool.
struct Pools {
    members: Arc<Semaphore>,
    strangers: Arc<Semaphore>,
}

impl Pools {
    fn new(members: usize, strangers: usize) -> Pools {
        Pools { members: Arc::new(Semaphore::new(members)), strangers: Arc::new(Semaphore::new(strangers)) }
    }

    /// A slot of `pool`, or `None` when it is full (never waits).
    fn take(&self, pool: Pool) -> Option<OwnedSemaphorePermit> {
        let semaphore = match pool {
            Pool::Members => &self.members,
            Pool::Strangers => &self.strangers,
        };
        semaphore.clone().try_acquire_owned().ok()
    }
}

/// One connection's hold on its source's share; released on drop.
struct SourceSlot {
    server: Arc<Server>,
    ip: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut sources = self.server.sources.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = sources.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                sources.remove(&self.ip);
            }
        }
    }
}

impl Server {
    fn take_slot(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let count = sources.entry(ip).or_insert(0);
        if *count >= PER_SOURCE {
            return None;
        }
        *count += 1;
        Some(SourceSlot { server: self.clone(), ip })
    }
}

/// Accepts connections until the listener fails or the agent is gone. `snapshot` says which
/// addresses are members'.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    listener: TcpListener,
    keys: watch::Receiver<Arc<Keyrings>>,
    tls: SharedTls,
    guard: SharedGuard,
    inbound: mpsc::Sender<Inbound>,
    stats: Arc<Stats>,
    channels: ChannelSlot,
    snapshot: watch::Receiver<Arc<Snapshot>>,
) {
    let server = Arc::new(Server {
        keys,
        tls,
        guard,
        inbound,
        stats,
        sources: Mutex::new(HashMap::new()),
        channels,
        pools: Pools::new(MEMBER_CONNECTIONS, STRANGER_CONNECTIONS),
    });
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "gossip TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if server.inbound.is_closed() {
            return;
        }
        // Dropping the stream closes it: a refused connection holds nothing.
        let pool = Pool::of(peer.ip(), &snapshot.borrow());
        let Some(permit) = server.pools.take(pool) else {
            Stats::bump(match pool {
                Pool::Members => &server.stats.tcp_members_full,
                Pool::Strangers => &server.stats.tcp_strangers_full,
            });
            continue;
        };
        let Some(slot) = server.take_slot(peer.ip()) else {
            Stats::bump(&server.stats.tcp_source_limited);
            continue;
        };
        tokio::spawn(serve_connection(server.clone(), stream, peer, permit, slot));
    }
}

async fn serve_connection(
    server: Arc<Server>,
    stream: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    _slot: SourceSlot,
) {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    let kind = match tokio::time::timeout(FIRST_BYTE_DEADLINE, stream.peek(&mut first)).await {
        Ok(Ok(1)) => first[0],
        _ => {
            Stats::bump(&server.stats.tcp_rejected);
            return;
        }
    };
    let result = if kind == TLS_HANDSHAKE {
        serve_member(&server, stream, peer).await
    } else {
        serve_join(&server, stream, peer).await
    };
    match result {
        Ok(()) => Stats::bump(&server.stats.tcp_accepted),
        Err(reason) => {
            tracing::debug!(%peer, reason, "gossip TCP connection refused");
            Stats::bump(&server.stats.tcp_rejected);
        }
    }
}

/// A member: the TLS handshake, then one request and its answer.
async fn serve_member(server: &Server, stream: TcpStream, peer: SocketAddr) -> Result<(), &'static str> {
    let acceptor = TlsAcceptor::from(server.tls.load().server.clone());
    let mut stream = match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake refused");
            Stats::bump(&server.stats.tcp_tls_refused);
            return Err("TLS handshake refused");
        }
        Err(_) => return Err("TLS handshake timed out"),
    };
    let certificates = stream.get_ref().1.peer_certificates();
    let (node, key) = tls::peer_identity(certificates).ok_or("no peer certificate")?;
    let frame = wire::read_frame(&mut stream).await.map_err(|e| match e {
        WireError::TooLarge(_) => {
            Stats::bump(&server.stats.tcp_frame_too_large);
            "frame too large"
        }
        WireError::Timeout => "timed out",
        _ => "no complete frame",
    })?;
    let message = wire::decode(&frame).map_err(|_| {
        Stats::bump(&server.stats.dropped_malformed);
        "undecodable"
    })?;
    if matches!(message, TcpMessage::JoinRequest { .. } | TcpMessage::JoinAccept { .. }) {
        return Err("a join message over TLS");
    }
    if let TcpMessage::Channel { payload } = message {
        let channels = server.channels.get().ok_or("no channel handler on this node")?.clone();
        return channels.serve(&mut stream, node, payload.0, &server.stats).await;
    }
    let (reply, answer) = oneshot::channel();
    let request = Inbound::Member { message, peer, node, key, reply };
    let reply = ask_agent(server, request, answer).await?;
    wire::write_frame(&mut stream, &wire::encode(&reply)).await.map_err(|_| "reply not delivered")
}

/// A joiner: one sealed frame of at most `MAX_JOIN_FRAME` bytes, opened by a join secret.
async fn serve_join(server: &Server, mut stream: TcpStream, peer: SocketAddr) -> Result<(), &'static str> {
    let frame = wire::read_frame_limited(&mut stream, MAX_JOIN_FRAME, HANDSHAKE_DEADLINE).await.map_err(
        |e| match e {
            WireError::TooLarge(_) => "join frame too large",
            WireError::Timeout => "timed out",
            _ => "no complete frame",
        },
    )?;
    let keys = server.keys.borrow().clone();
    let stats = &server.stats;
    let Some(join) = &keys.join else {
        // Not a manager (or a manager that lost its CA key): nothing here can admit anyone.
        Stats::bump(&stats.joins_refused);
        return Err("not a manager: cannot admit");
    };
    let (role, ring) = if join.manager.knows(&frame) {
        (JoinRole::Manager, &join.manager)
    } else if join.worker.knows(&frame) {
        (JoinRole::Worker, &join.worker)
    } else {
        stats.count_open_error(if frame.len() < 5 { OpenError::Truncated } else { OpenError::UnknownKey });
        Stats::bump(&stats.joins_refused);
        return Err("unknown join key");
    };
    let opened = ring.open(&frame).map_err(|e| {
        stats.count_open_error(e);
        "did not open"
    })?;
    check_replay(&server.guard, peer.ip(), &opened).map_err(|e| {
        stats.count_open_error(e);
        "replayed or stale"
    })?;
    let message = wire::decode(&opened.payload).map_err(|_| {
        Stats::bump(&stats.dropped_malformed);
        "undecodable"
    })?;
    if !matches!(message, TcpMessage::JoinRequest { .. }) {
        Stats::bump(&stats.dropped_malformed);
        return Err("not a join request");
    }
    let (reply, answer) = oneshot::channel();
    let reply = ask_agent(server, Inbound::Join { message, role, peer, reply }, answer).await?;
    let sealed = ring.seal(&wire::encode(&reply), unix_millis());
    wire::write_frame(&mut stream, &sealed).await.map_err(|_| "reply not delivered")
}

async fn ask_agent(
    server: &Server,
    request: Inbound,
    answer: oneshot::Receiver<Option<TcpMessage>>,
) -> Result<TcpMessage, &'static str> {
    server.inbound.send(request).await.map_err(|_| "agent gone")?;
    tokio::time::timeout(AGENT_TIMEOUT, answer)
        .await
        .map_err(|_| "agent timed out")?
        .map_err(|_| "agent dropped the request")?
        .ok_or("refused by the agent")
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("{addr} closed the connection without answering (for a join: the token is wrong or was rotated, or the node is not a manager)")]
    Refused { addr: SocketAddr },
    #[error("{addr} refused: {reason}")]
    RefusedWithReason { addr: SocketAddr, reason: String },
    #[error("TLS with {addr} failed: {source}")]
    Tls { addr: SocketAddr, source: std::io::Error },
    #[error("exchange with {addr} failed: {source}")]
    Wire { addr: SocketAddr, source: WireError },
    #[error("the answer from {addr} did not open: {source}")]
    Open { addr: SocketAddr, source: OpenError },
}

pub async fn connect(addr: SocketAddr) -> Result<TcpStream, ExchangeError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| ExchangeError::Connect { addr, source: std::io::ErrorKind::TimedOut.into() })?
        .map_err(|source| ExchangeError::Connect { addr, source })?;
    // One small request and its answer: Nagle would hold each for a delayed ACK (~40 ms).
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Reads the one answer of an exchange; a closed connection is a refusal.
async fn read_answer<R: tokio::io::AsyncRead + Unpin>(
    addr: SocketAddr,
    stream: &mut R,
) -> Result<Vec<u8>, ExchangeError> {
    match wire::read_frame(stream).await {
        Ok(frame) => Ok(frame),
        Err(WireError::Closed) => Err(ExchangeError::Refused { addr }),
        Err(WireError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Err(ExchangeError::Refused { addr })
        }
        Err(source) => Err(ExchangeError::Wire { addr, source }),
    }
}

/// Sends one request to the member at `addr` over mutual TLS and returns its answer. With
/// `node`, the peer must be that node; without, any member.
pub async fn exchange(
    addr: SocketAddr,
    node: Option<NodeId>,
    tls: &TlsConfigs,
    request: &TcpMessage,
) -> Result<TcpMessage, ExchangeError> {
    let mut stream = connect_member(addr, node, tls).await?;
    wire::write_frame(&mut stream, &wire::encode(request))
        .await
        .map_err(|source| ExchangeError::Wire { addr, source })?;
    let frame = read_answer(addr, &mut stream).await?;
    match wire::decode(&frame).map_err(|source| ExchangeError::Wire { addr, source })? {
        TcpMessage::Refused { reason } => Err(ExchangeError::RefusedWithReason { addr, reason }),
        answer => Ok(answer),
    }
}

/// Connects to the member at `addr` over mutual TLS (with `node`, it must be that node).
pub async fn connect_member(
    addr: SocketAddr,
    node: Option<NodeId>,
    tls: &TlsConfigs,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ExchangeError> {
    let stream = connect(addr).await?;
    let connector = TlsConnector::from(tls.client.clone());
    let name = tls::server_name(node, addr.ip());
    tokio::time::timeout(HANDSHAKE_DEADLINE, connector.connect(name, stream))
        .await
        .map_err(|_| ExchangeError::Tls { addr, source: std::io::ErrorKind::TimedOut.into() })?
        .map_err(|source| ExchangeError::Tls { addr, source })
}

/// Sends a join request sealed with `ring` (the join token's) and returns the sealed answer,
/// opened.
pub async fn exchange_join(
    addr: SocketAddr,
    ring: &Keyring,
    guard: &SharedGuard,
    request: &TcpMessage,
) -> Result<TcpMessage, ExchangeError> {
    let mut stream = connect(addr).await?;
    let sealed = ring.seal(&wire::encode(request), unix_millis());
    wire::write_frame(&mut stream, &sealed).await.map_err(|source| ExchangeError::Wire { addr, source })?;
    let frame = read_answer(addr, &mut stream).await?;
    let opened = ring.open(&frame).map_err(|source| ExchangeError::Open { addr, source })?;
    check_replay(guard, addr.ip(), &opened).map_err(|source| ExchangeError::Open { addr, source })?;
    wire::decode(&opened.payload).map_err(|source| ExchangeError::Wire { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_live_nodes_gossip_address_is_a_member() {
        let snapshot = crate::fixture::snapshot();
        assert_eq!(Pool::of("192.0.2.1".parse().unwrap(), &snapshot), Pool::Members);
        assert_eq!(Pool::of("192.0.2.2".parse().unwrap(), &snapshot), Pool::Members);
        assert_eq!(Pool::of("192.0.2.3".parse().unwrap(), &snapshot), Pool::Strangers);
        assert_eq!(Pool::of("10.77.0.200".parse().unwrap(), &snapshot), Pool::Strangers);
    }

    #[test]
    fn strangers_filling_their_pool_leave_the_members_theirs() {
        let pools = Pools::new(2, 3);
        let strangers: Vec<_> = std::iter::from_fn(|| pools.take(Pool::Strangers)).take(10).collect();
        assert_eq!(strangers.len(), 3, "the strangers' pool is bounded");
        let members: Vec<_> = std::iter::from_fn(|| pools.take(Pool::Members)).take(10).collect();
        assert_eq!(members.len(), 2, "the members' slots were all still there");
        drop(strangers);
        assert!(pools.take(Pool::Strangers).is_some(), "a released slot is free again");
        assert!(pools.take(Pool::Members).is_none());
    }
}
