//! 127.0.0.11:53 (UDP and TCP) inside a namespace.
//!
//! The sockets are opened on a short-lived thread that entered the namespace (setns moves only
//! the calling thread), then handed to tokio: one meshd serves every namespace of its node, no
//! process per container. Every address in 127.0.0.0/8 is local on Linux, so no address needs
//! adding. UDP is served by hickory-server. TCP is served here, because hickory-server's TCP
//! listener has no bound on connections: each connection must first be admitted by the
//! namespace's and the node's bounds ([`crate::limits`]); one over a bound gets REFUSED to its
//! first query and is closed. Connections idle for [`TCP_TIMEOUT`] are closed (denial-of-service
//! protection, as hickory does); dropping a [`Listener`] stops serving.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use hickory_server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

use crate::fast::{FastListener, FastPath};
use crate::forward::MESH_DNS;
use crate::handler::MeshHandler;
use crate::limits::TcpPermit;

/// How long a TCP client may stay idle (between queries, or within one).
pub const TCP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection over a bound has to send the query that gets REFUSED.
const REFUSAL_TIMEOUT: Duration = Duration::from_millis(500);

pub struct Listener {
    server: Option<Server<MeshHandler>>,
    /// UDP on the fast path ([`crate::fast`]) instead of hickory-server's loop, when it is on.
    fast: Option<FastListener>,
    tcp: JoinHandle<()>,
}

/// Opens 127.0.0.11:53 in the namespace at `netns` and starts serving with `handler`.
pub async fn listen(netns: &Path, handler: MeshHandler) -> io::Result<Listener> {
    listen_on(netns, SocketAddr::new(MESH_DNS.into(), 53), handler).await
}

pub async fn listen_on(netns: &Path, addr: SocketAddr, handler: MeshHandler) -> io::Result<Listener> {
    listen_with(netns, addr, handler, None).await
}

/// Like [`listen_on`], with UDP served by `fast` (the node's fast path) when given.
pub async fn listen_with(
    netns: &Path,
    addr: SocketAddr,
    handler: MeshHandler,
    fast: Option<Arc<FastPath>>,
) -> io::Result<Listener> {
    let file = File::open(netns)?;
    // One UDP socket per core, sharing the port (SO_REUSEPORT): the kernel spreads queries over
    // them and hickory-server runs one receive loop per socket (or each fast-path worker serves
    // one), so all cores answer.
    let sockets = match &fast {
        Some(fast) => fast.sockets(),
        None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8),
    };
    let (udp, tcp) = std::thread::spawn(move || -> io::Result<_> {
        setns(&file)?;
        let udp = (0..sockets).map(|_| reuseport_udp(addr)).collect::<io::Result<Vec<_>>>()?;
        let tcp = std::net::TcpListener::bind(addr)?;
        tcp.set_nonblocking(true)?;
        Ok((udp, tcp))
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))??;
    let tcp = TcpListener::from_std(tcp)?;
    if let Some(fast) = fast {
        let fast = fast.serve(udp, handler.clone())?;
        let tcp = tokio::spawn(accept_namespace(tcp, handler));
        return Ok(Listener { server: None, fast: Some(fast), tcp });
    }
    let mut server = Server::new(handler.clone());
    for socket in udp {
        server.register_socket(tokio::net::UdpSocket::from_std(socket)?);
    }
    let tcp = tokio::spawn(accept_namespace(tcp, handler));
    Ok(Listener { server: Some(server), fast: None, tcp })
}

impl Listener {
    /// Stops serving and closes the sockets.
    pub async fn stop(mut self) {
        self.tcp.abort();
        self.fast.take();
        if let Some(mut server) = self.server.take() {
            let _ = server.shutdown_gracefully().await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.tcp.abort();
        if let Some(server) = &self.server {
            server.shutdown_token().cancel();
        }
    }
}

/// What becomes of a connection just accepted.
pub(crate) enum Admission {
    /// Served, holding its share of the bounds until it closes.
    Serve(TcpPermit),
    /// Over a bound: its first query gets REFUSED, holding one of the refusal slots.
    Refuse(OwnedSemaphorePermit),
    /// Over every bound: closed at once (already counted).
    Close,
}

/// A namespace's own listener: every connection is the namespace's.
async fn accept_namespace(listener: TcpListener, handler: MeshHandler) {
    let limits = handler.limits.clone();
    accept_loop(listener, handler, move |_| match limits.admit_tcp() {
        Ok(permit) => Admission::Serve(permit),
        Err(_) => limits.node.refusal().map_or(Admission::Close, Admission::Refuse),
    })
    .await
}

/// Accepts TCP connections for as long as the listener lives; `admit` decides each by its
/// source: served by a task of its own, refused, or closed. Connection tasks end with the
/// connection (at most the idle timeout after its last query), not with the listener.
pub(crate) async fn accept_loop<H, A>(listener: TcpListener, handler: H, admit: A)
where
    H: RequestHandler + Clone,
    A: Fn(SocketAddr) -> Admission,
{
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, say: wait a little rather than spin.
                tracing::debug!(%error, "DNS TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match admit(peer) {
            Admission::Serve(permit) => {
                tokio::spawn(serve_connection(stream, peer, handler.clone(), permit));
            }
            Admission::Refuse(permit) => {
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, refuse(stream)).await;
                    drop(permit);
                });
            }
            Admission::Close => {}
        }
    }
}

/// Reads one framed message (two-byte length, then the message) within the idle timeout.
async fn read_message(stream: &mut TcpStream, timeout: Duration) -> Option<Vec<u8>> {
    tokio::time::timeout(timeout, async {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.ok()?;
        let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut message).await.ok()?;
        Some(message)
    })
    .await
    .ok()
    .flatten()
}

async fn write_message(stream: &mut TcpStream, message: &[u8]) -> bool {
    let Ok(len) = u16::try_from(message.len()) else { return false };
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    tokio::time::timeout(TCP_TIMEOUT, stream.write_all(&framed)).await.is_ok_and(|r| r.is_ok())
}

/// Serves queries on one admitted connection, one at a time, until it closes, idles or sends
/// what does not parse.
async fn serve_connection<H: RequestHandler>(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: H,
    _permit: TcpPermit,
) {
    while let Some(bytes) = read_message(&mut stream, TCP_TIMEOUT).await {
        let Ok(request) = Request::from_bytes(bytes, peer, Protocol::Tcp) else { return };
        if request.metadata.message_type == MessageType::Response {
            return;
        }
        let written = Captured::default();
        handler.handle_request::<_, TokioTime>(&request, written.clone()).await;
        let Some(answer) = written.take() else { return };
        if !write_message(&mut stream, &answer).await {
            return;
        }
    }
}

/// Answers the first query of a connection over a bound with REFUSED, then closes it.
async fn refuse(mut stream: TcpStream) {
    let Some(bytes) = read_message(&mut stream, REFUSAL_TIMEOUT).await else { return };
    let Ok(query) = Message::from_vec(&bytes) else { return };
    let mut answer = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    answer.metadata.response_code = ResponseCode::Refused;
    answer.metadata.recursion_desired = query.metadata.recursion_desired;
    for question in query.queries {
        answer.add_query(question);
    }
    if let Ok(bytes) = answer.to_vec() {
        write_message(&mut stream, &bytes).await;
    }
}

/// A response handler that keeps the bytes the handler wrote, for the TCP framing.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Option<Vec<u8>>>>);

impl Captured {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Captured {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::with_capacity(512);
        let info = response.destructive_emit(&mut BinEncoder::new(&mut bytes))?;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes);
        Ok(info)
    }
}

fn reuseport_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Enters the network namespace of `file` on the calling thread (nix's safe wrapper).
fn setns(file: &File) -> io::Result<()> {
    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}
