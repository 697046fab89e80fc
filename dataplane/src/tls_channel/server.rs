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
//! The client end is `client::Channel`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::gossip::stats::Stats;
use crate::gossip::tcp::{ChannelServer, MemberStream};
use crate::gossip::wire::{self, TcpMessage, WireError, MAX_FRAME};
use crate::identity::NodeId;
use crate::util::hex::Bytes;

/// How long a channel may stay silent before the server closes it.
pub const IDLE: Duration = Duration::from_secs(30);

/// What answers a channel's requests: the node the peer's certificate proved, and the request's
/// bytes; the reply's bytes come back.
pub trait ChannelHandler: Send + Sync + 'static {
    fn handle(&self, peer: NodeId, request: Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;
}

/// Serves channels with a [`ChannelHandler`]: what gossip's TCP server hands a member
/// connection to once its first frame opens a channel (installed with
/// `GossipHandle::set_channel_server`, so gossip never imports this layer).
pub struct Server {
    handler: Arc<dyn ChannelHandler>,
}

impl Server {
    pub fn new(handler: Arc<dyn ChannelHandler>) -> Arc<Server> {
        Arc::new(Server { handler })
    }
}

impl ChannelServer for Server {
    fn serve<'a>(
        &'a self,
        stream: &'a mut MemberStream,
        peer: NodeId,
        first: Vec<u8>,
        stats: &'a Stats,
    ) -> Pin<Box<dyn Future<Output = Result<(), &'static str>> + Send + 'a>> {
        Box::pin(serve(stream, peer, first, self.handler.as_ref(), stats))
    }
}

/// Serves a channel whose first request is `first`, until the peer closes it, goes idle, or
/// sends something else.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    peer: NodeId,
    first: Vec<u8>,
    handler: &dyn ChannelHandler,
    stats: &Stats,
) -> Result<(), &'static str> {
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
            Err(WireError::TooLarge(_)) => {
                Stats::bump(&stats.tcp_frame_too_large);
                return Err("channel frame too large");
            }
            Err(_) => return Err("channel broken"),
        };
    }
}
