//! The client end of a lasting channel to one member (see `channel`): connected over mutual TLS
//! on first use, and again after any failure.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::gossip::tcp::{connect, ExchangeError, HANDSHAKE_DEADLINE};
use crate::gossip::wire::{self, TcpMessage, WireError};
use crate::identity::NodeId;
use crate::trust::tls::{self, TlsConfigs};
use crate::util::hex::Bytes;

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

    /// Sends `request` and returns the reply within `deadline`. Connecting (TCP and the TLS
    /// handshake) has its own deadline and is not counted in `deadline`: on a loaded host a
    /// handshake can take longer than a short request's deadline, and a channel that is torn
    /// down whenever its connection is slow to come up would never come up at all.
    pub async fn call(
        &mut self,
        tls: &TlsConfigs,
        request: Vec<u8>,
        deadline: Duration,
    ) -> Result<Vec<u8>, ExchangeError> {
        let addr = self.addr;
        if self.stream.is_none() {
            self.stream = Some(self.connect(tls).await?);
        }
        let result = tokio::time::timeout(deadline, self.exchange(request))
            .await
            .unwrap_or(Err(ExchangeError::Wire { addr, source: WireError::Timeout }));
        if result.is_err() {
            // Whatever state the stream is in, the next call starts afresh.
            self.stream = None;
        }
        result
    }

    async fn connect(&self, tls: &TlsConfigs) -> Result<TlsStream<TcpStream>, ExchangeError> {
        let addr = self.addr;
        let tcp = connect(addr).await?;
        let connector = TlsConnector::from(tls.client.clone());
        let name = tls::server_name(Some(self.node), addr.ip());
        tokio::time::timeout(HANDSHAKE_DEADLINE, connector.connect(name, tcp))
            .await
            .map_err(|_| ExchangeError::Tls { addr, source: std::io::ErrorKind::TimedOut.into() })?
            .map_err(|source| ExchangeError::Tls { addr, source })
    }

    async fn exchange(&mut self, request: Vec<u8>) -> Result<Vec<u8>, ExchangeError> {
        let addr = self.addr;
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
