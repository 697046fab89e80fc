//! TCP 7946: serving join requests and push-pull exchanges, and making them.
//!
//! A connection carries one request frame and one reply frame. The key that opens the request
//! says what it may be: the join key admits only a `JoinRequest`, a gossip key only a
//! `PushPull`. Anything else (unknown key, forgery, replay, bad size, slow sender) closes the
//! connection without a reply and is counted; the connecting side of a refused join sees the
//! connection close, which is all a holder of a wrong token learns.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use super::crypto::{Keyring, OpenError, Purpose, ReplayGuard};
use super::stats::Stats;
use super::wire::{self, TcpMessage, WireError};
use crate::state::version::unix_millis;

/// Connections served at once; more wait in the backlog.
const MAX_CONNECTIONS: usize = 32;
/// How long the agent may take to answer a request.
const AGENT_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The keys in force, replaced by the agent whenever the cluster's secrets change.
#[derive(Debug)]
pub struct Keyrings {
    pub gossip: Keyring,
    pub join: Keyring,
}

/// A request that opened and decoded, handed to the agent; it answers with a reply or `None`
/// (refuse: the connection is closed).
#[derive(Debug)]
pub struct Inbound {
    pub message: TcpMessage,
    pub peer: SocketAddr,
    pub reply: oneshot::Sender<Option<TcpMessage>>,
}

pub type SharedGuard = Arc<Mutex<ReplayGuard>>;

/// Checks a frame's timestamp and nonce against the shared replay guard.
pub fn check_replay(guard: &SharedGuard, opened: &super::crypto::Opened) -> Result<(), OpenError> {
    guard.lock().unwrap_or_else(|p| p.into_inner()).check(opened, unix_millis())
}

/// Accepts connections until the listener fails or `inbound`'s receiver is gone.
pub async fn serve(
    listener: TcpListener,
    keys: watch::Receiver<Arc<Keyrings>>,
    guard: SharedGuard,
    inbound: mpsc::Sender<Inbound>,
    stats: Arc<Stats>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "gossip TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if inbound.is_closed() {
            return;
        }
        let keys = keys.borrow().clone();
        let (guard, inbound, stats) = (guard.clone(), inbound.clone(), stats.clone());
        tokio::spawn(async move {
            match serve_connection(stream, peer, &keys, &guard, &inbound, &stats).await {
                Ok(()) => Stats::bump(&stats.tcp_accepted),
                Err(reason) => {
                    tracing::debug!(%peer, reason, "gossip TCP connection refused");
                    Stats::bump(&stats.tcp_rejected);
                }
            }
            drop(permit);
        });
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    keys: &Keyrings,
    guard: &SharedGuard,
    inbound: &mpsc::Sender<Inbound>,
    stats: &Stats,
) -> Result<(), &'static str> {
    let frame = wire::read_frame(&mut stream).await.map_err(|e| match e {
        WireError::TooLarge(_) => "frame too large",
        WireError::Timeout => "timed out",
        _ => "no complete frame",
    })?;
    let (purpose, ring) = if keys.gossip.knows(&frame) {
        (Purpose::Gossip, &keys.gossip)
    } else if keys.join.knows(&frame) {
        (Purpose::Join, &keys.join)
    } else {
        stats.count_open_error(if frame.len() < 5 { OpenError::Truncated } else { OpenError::UnknownKey });
        if purpose_of_unknown(&frame) {
            Stats::bump(&stats.joins_refused);
        }
        return Err("unknown key");
    };
    let opened = ring.open(&frame).map_err(|e| {
        stats.count_open_error(e);
        "did not open"
    })?;
    check_replay(guard, &opened).map_err(|e| {
        stats.count_open_error(e);
        "replayed or stale"
    })?;
    let message = wire::decode(&opened.payload).map_err(|_| {
        Stats::bump(&stats.dropped_malformed);
        "undecodable"
    })?;
    let allowed = matches!(
        (purpose, &message),
        (Purpose::Join, TcpMessage::JoinRequest { .. }) | (Purpose::Gossip, TcpMessage::PushPull { .. })
    );
    if !allowed {
        Stats::bump(&stats.dropped_malformed);
        return Err("message not allowed under this key");
    }
    let (reply_tx, reply_rx) = oneshot::channel();
    inbound.send(Inbound { message, peer, reply: reply_tx }).await.map_err(|_| "agent gone")?;
    let reply = tokio::time::timeout(AGENT_TIMEOUT, reply_rx)
        .await
        .map_err(|_| "agent timed out")?
        .map_err(|_| "agent dropped the request")?
        .ok_or("refused by the agent")?;
    let sealed = ring.seal(&wire::encode(&reply), unix_millis());
    wire::write_frame(&mut stream, &sealed).await.map_err(|_| "reply not delivered")?;
    Ok(())
}

/// A frame with a valid shape but a key we do not hold: most likely a join with a wrong token
/// (or a node of another cluster). Counted as a refused join as well.
fn purpose_of_unknown(frame: &[u8]) -> bool {
    frame.len() >= super::crypto::OVERHEAD && frame[0] == 1
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error(
        "{addr} closed the connection without answering (for a join: the token is wrong or was rotated)"
    )]
    Refused { addr: SocketAddr },
    #[error("exchange with {addr} failed: {source}")]
    Wire { addr: SocketAddr, source: WireError },
    #[error("the answer from {addr} did not open: {source}")]
    Open { addr: SocketAddr, source: OpenError },
}

/// Sends one request sealed with `ring` and returns the reply.
pub async fn exchange(
    addr: SocketAddr,
    ring: &Keyring,
    guard: &SharedGuard,
    request: &TcpMessage,
) -> Result<TcpMessage, ExchangeError> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| ExchangeError::Connect { addr, source: std::io::ErrorKind::TimedOut.into() })?
        .map_err(|source| ExchangeError::Connect { addr, source })?;
    let sealed = ring.seal(&wire::encode(request), unix_millis());
    wire::write_frame(&mut stream, &sealed).await.map_err(|source| ExchangeError::Wire { addr, source })?;
    let frame = match wire::read_frame(&mut stream).await {
        Ok(frame) => frame,
        Err(WireError::Closed) => return Err(ExchangeError::Refused { addr }),
        Err(WireError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            return Err(ExchangeError::Refused { addr })
        }
        Err(source) => return Err(ExchangeError::Wire { addr, source }),
    };
    let opened = ring.open(&frame).map_err(|source| ExchangeError::Open { addr, source })?;
    check_replay(guard, &opened).map_err(|source| ExchangeError::Open { addr, source })?;
    wire::decode(&opened.payload).map_err(|source| ExchangeError::Wire { addr, source })
}
