//! A lasting request/reply channel between members over TCP 7946's mutual TLS, for a layer above
//! gossip that talks more than once a connection: the managers' Raft group (heartbeats twenty
//! times a second per peer) and the proposals workers send to it.
//!
//! The first frame of a member connection says which kind it is: a `TcpMessage::Channel` opens a
//! channel, and every frame after it, both ways, is one too. Gossip carries the bytes and proves
//! who sent them (the TLS certificate); what they mean is the [`ChannelHandler`]'s business,
//! installed by the layer above (`manager::serve`).
//!
//! Bounded like any member connection (it holds one of the server's connection slots and its
//! source's share), plus an idle limit: a channel that carries nothing for [`IDLE`] closes.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::tcp::{connect, ExchangeError, HANDSHAKE_DEADLINE};
use super::wire::{self, TcpMessage, WireError, MAX_FRAME};
use crate::hex::Bytes;
use crate::identity::NodeId;
use crate::trust::tls::{self, TlsConfigs};

/// How long a channel may stay silent before the server closes it.
pub const IDLE: Duration = Duration::from_secs(30);

/// What answers a channel's requests: the node the peer's certificate proved, and the request's
/// bytes; the reply's bytes come back.
pub trait ChannelHandler: Send + Sync + 'static {
    fn handle(&self, peer: NodeId, request: Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;
}

/// Where the handler is installed, once, after gossip started.
pub type HandlerSlot = Arc<OnceLock<Arc<dyn ChannelHandler>>>;

/// Serves a channel whose first request is `first`, until the peer closes it, goes idle, or
/// sends something else.
pub(super) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    peer: NodeId,
    first: Vec<u8>,
    slot: &HandlerSlot,
) -> Result<(), &'static str> {
    let handler = slot.get().ok_or("no channel handler on this node")?.clone();
    let mut request = first;
    loop {
        let reply = handler.handle(peer, request).await;
        let frame = wire::encode(&TcpMessage::Channel { payload: Bytes(reply) });
        wire::write_frame(stream, &frame).await.map_err(|_| "reply not delivered")?;
        request = match wire::read_frame_limited(stream, MAX_FRAME, IDLE).await {
            Ok(frame) => match wire::decode(&frame) {
                Ok(TcpMessage::Channel { payload }) => payload.0,
                _ => return Err("not a channel frame"),
            },
            Err(WireError::Closed | WireError::Timeout) => return Ok(()),
            Err(_) => return Err("channel broken"),
        };
    }
}

/// The client end of a channel to one member: connected on first use, and again after any
/// failure. One request at a time (`&mut self`).
pub struct Channel {
    addr: SocketAddr,
    node: NodeId,
    stream: Option<TlsStream<TcpStream>>,
}

impl Channel {
    pub fn new(addr: SocketAddr, node: NodeId) -> Channel {
        Channel { addr, node, stream: None }
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `request` and returns the reply, within `deadline` (connecting included).
    pub async fn call(
        &mut self,
        tls: &TlsConfigs,
        request: Vec<u8>,
        deadline: Duration,
    ) -> Result<Vec<u8>, ExchangeError> {
        let addr = self.addr;
        let result = tokio::time::timeout(deadline, self.exchange(tls, request))
            .await
            .unwrap_or(Err(ExchangeError::Wire { addr, source: WireError::Timeout }));
        if result.is_err() {
            // Whatever state the stream is in, the next call starts afresh.
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, tls: &TlsConfigs, request: Vec<u8>) -> Result<Vec<u8>, ExchangeError> {
        let addr = self.addr;
        if self.stream.is_none() {
            let tcp = connect(addr).await?;
            let connector = TlsConnector::from(tls.client.clone());
            let name = tls::server_name(Some(self.node), addr.ip());
            let stream = tokio::time::timeout(HANDSHAKE_DEADLINE, connector.connect(name, tcp))
                .await
                .map_err(|_| ExchangeError::Tls { addr, source: std::io::ErrorKind::TimedOut.into() })?
                .map_err(|source| ExchangeError::Tls { addr, source })?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected above");
        let frame = wire::encode(&TcpMessage::Channel { payload: Bytes(request) });
        wire::write_frame(stream, &frame).await.map_err(|source| ExchangeError::Wire { addr, source })?;
        let answer = match wire::read_frame(stream).await {
            Ok(frame) => frame,
            Err(WireError::Closed) => return Err(ExchangeError::Refused { addr }),
            Err(source) => return Err(ExchangeError::Wire { addr, source }),
        };
        match wire::decode(&answer).map_err(|source| ExchangeError::Wire { addr, source })? {
            TcpMessage::Channel { payload } => Ok(payload.0),
            TcpMessage::Refused { reason } => Err(ExchangeError::RefusedWithReason { addr, reason }),
            _ => Err(ExchangeError::Wire { addr, source: WireError::Closed }),
        }
    }
}
