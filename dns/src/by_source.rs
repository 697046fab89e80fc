//! DNS on the node itself, for clients whose 127.0.0.11 is not meshd's: a Docker container's
//! resolver (Docker's own, at 127.0.0.11 inside the container) forwards the names it does not
//! know to the container's `--dns` servers, from the container's address. meshd listens on one
//! address in the node's namespace and answers each query with the scope of the attachment
//! whose address asked. Anyone else is REFUSED: the node is no open resolver for the underlay.
//!
//! TCP is served by [`crate::listener`]'s bounded loop, not hickory-server's (which has no
//! bound on connections): a connection from a namespace's address counts against that
//! namespace's share and the node's total ([`crate::limits`]), the same ones its 127.0.0.11
//! uses; one from any other address holds nothing but one of the few refusal slots.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;

use tokio::task::JoinHandle;

use crate::forward::Forwarder;
use crate::handler::MeshHandler;
use crate::limits::{DnsCounters, NamespaceLimits, NodeLimits};
use crate::listener::{accept_loop, Admission};
use crate::registry::Registry;

/// Who may ask, by source address: the networks of the namespace that owns the address, and
/// that namespace's share of the node's forwarding slots.
pub type Scopes = HashMap<IpAddr, Asker>;

/// One namespace that asks from its address.
#[derive(Clone)]
pub struct Asker {
    pub scope: Arc<ArcSwap<Vec<String>>>,
    pub limits: Arc<NamespaceLimits>,
}

/// Answers like [`MeshHandler`], with the scope taken from the query's source address.
#[derive(Clone)]
pub struct SourceScopedHandler {
    pub registry: Arc<ArcSwap<Registry>>,
    pub scopes: Arc<ArcSwap<Scopes>>,
    pub forwarder: Arc<Forwarder>,
    pub ttl: u32,
    /// The node's bounds: TCP from an unknown address takes only a refusal slot of it.
    pub node: Arc<NodeLimits>,
}

impl SourceScopedHandler {
    /// Admits a TCP connection from `peer` within the bounds of the namespace that owns the
    /// address (and the node's); anyone else only gets its REFUSED, counted.
    fn admit(&self, peer: SocketAddr) -> Admission {
        let asker = self.scopes.load().get(&peer.ip()).map(|asker| asker.limits.clone());
        let admitted = match asker {
            Some(limits) => limits.admit_tcp().ok(),
            None => {
                DnsCounters::add(&self.node.counters.tcp_refused_unknown);
                None
            }
        };
        match admitted {
            Some(permit) => Admission::Serve(permit),
            None => self.node.refusal().map_or(Admission::Close, Admission::Refuse),
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for SourceScopedHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let asker = self.scopes.load().get(&request.src().ip()).cloned();
        let Some(Asker { scope, limits }) = asker else {
            let refused = MessageResponseBuilder::new(&request.queries, None)
                .error_msg(&request.metadata, ResponseCode::Refused);
            return match response.send_response(refused).await {
                Ok(info) => info,
                Err(_) => {
                    let mut metadata = Metadata::response_from_request(&request.metadata);
                    metadata.response_code = ResponseCode::Refused;
                    ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
                }
            };
        };
        let handler = MeshHandler {
            registry: self.registry.clone(),
            scope,
            forwarder: self.forwarder.clone(),
            ttl: self.ttl,
            limits,
        };
        handler.handle_request::<R, T>(request, response).await
    }
}

/// UDP and TCP on `addr` in the caller's network namespace (the node's), served until dropped.
pub struct NodeListener {
    server: Option<Server<SourceScopedHandler>>,
    tcp: JoinHandle<()>,
}

/// Opens `addr` (UDP and TCP) and serves it with `handler`. Needs a tokio runtime.
pub fn listen(addr: SocketAddr, handler: SourceScopedHandler) -> io::Result<NodeListener> {
    let udp = std::net::UdpSocket::bind(addr)?;
    udp.set_nonblocking(true)?;
    let tcp = std::net::TcpListener::bind(addr)?;
    tcp.set_nonblocking(true)?;
    let tcp = tokio::net::TcpListener::from_std(tcp)?;
    let mut server = Server::new(handler.clone());
    server.register_socket(tokio::net::UdpSocket::from_std(udp)?);
    let admitting = handler.clone();
    let tcp = tokio::spawn(async move { accept_loop(tcp, handler, move |peer| admitting.admit(peer)).await });
    Ok(NodeListener { server: Some(server), tcp })
}

impl Drop for NodeListener {
    fn drop(&mut self) {
        self.tcp.abort();
        if let Some(server) = &self.server {
            server.shutdown_token().cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::Ipv4Addr;
    use std::str::FromStr;
    use std::time::Duration;

    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RData, RecordType};

    use super::*;

    /// A real query over UDP from two source addresses of loopback: the known one gets the
    /// name, the unknown one REFUSED.
    #[tokio::test]
    async fn answers_known_sources_only() {
        let mut registry = Registry::default();
        registry.add("front", "web", Ipv4Addr::new(10, 0, 0, 100));
        let known: IpAddr = Ipv4Addr::new(127, 0, 0, 1).into();
        let node = NodeLimits::new();
        let asker = Asker {
            scope: Arc::new(ArcSwap::from_pointee(vec!["front".to_string()])),
            limits: node.namespace(),
        };
        let scopes: Scopes = HashMap::from([(known, asker)]);
        let handler = SourceScopedHandler {
            registry: Arc::new(ArcSwap::from_pointee(registry)),
            scopes: Arc::new(ArcSwap::from_pointee(scopes)),
            forwarder: Arc::new(Forwarder::new(Vec::new())),
            ttl: 5,
            node,
        };
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let _listener = listen(addr, handler).unwrap();

        let ask = move |from: &str| {
            let socket = std::net::UdpSocket::bind(format!("{from}:0")).unwrap();
            socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut message = Message::new(7, MessageType::Query, OpCode::Query);
            message.add_query(Query::query(Name::from_str("web.").unwrap(), RecordType::A));
            socket.send_to(&message.to_vec().unwrap(), addr).unwrap();
            let mut buf = [0u8; 512];
            let (n, _) = socket.recv_from(&mut buf).unwrap();
            Message::from_vec(&buf[..n]).unwrap()
        };
        let answer = tokio::task::spawn_blocking(move || (ask("127.0.0.1"), ask("127.0.0.2"))).await.unwrap();
        assert_eq!(answer.0.metadata.response_code, ResponseCode::NoError);
        assert!(matches!(answer.0.answers[0].data, RData::A(a) if a.0 == Ipv4Addr::new(10, 0, 0, 100)));
        assert_eq!(answer.1.metadata.response_code, ResponseCode::Refused);
    }

    fn query(id: u16) -> Vec<u8> {
        let mut message = Message::new(id, MessageType::Query, OpCode::Query);
        message.add_query(Query::query(Name::from_str("web.").unwrap(), RecordType::A));
        message.to_vec().unwrap()
    }

    /// One query over TCP from `from`; the answer's code.
    fn ask_tcp(from: Ipv4Addr, addr: SocketAddr) -> Option<ResponseCode> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
        socket.bind(&SocketAddr::new(from.into(), 0).into()).ok()?;
        socket.connect_timeout(&addr.into(), Duration::from_secs(2)).ok()?;
        let mut stream: std::net::TcpStream = socket.into();
        stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        let bytes = query(9);
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).ok()?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).ok()?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut answer).ok()?;
        Some(Message::from_vec(&answer).ok()?.metadata.response_code)
    }

    /// Idle connections from `from` to `addr`; how many the server left open after `wait`.
    fn still_open_after(from: Ipv4Addr, addr: SocketAddr, count: usize, wait: Duration) -> usize {
        let streams: Vec<std::net::TcpStream> = (0..count)
            .filter_map(|_| {
                let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
                socket.bind(&SocketAddr::new(from.into(), 0).into()).ok()?;
                socket.connect(&addr.into()).ok()?;
                Some(socket.into())
            })
            .collect();
        assert_eq!(streams.len(), count, "the kernel accepted every connection");
        std::thread::sleep(wait);
        streams
            .iter()
            .filter(|stream| {
                stream.set_nonblocking(true).unwrap();
                let mut byte = [0u8; 1];
                matches!(stream.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            })
            .count()
    }

    /// TCP to the node's address is bounded like the namespaces' own listeners: an address that
    /// no namespace owns holds nothing (its connections close within the refusal timeout), a
    /// namespace's address at most its share; queries over TCP still get answered after both.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tcp_connections_are_bounded_per_source_and_for_strangers() {
        let mut registry = Registry::default();
        registry.add("front", "web", Ipv4Addr::new(10, 0, 0, 100));
        let known = Ipv4Addr::new(127, 0, 0, 3);
        let stranger = Ipv4Addr::new(127, 0, 0, 4);
        let node = NodeLimits::new();
        let asker = Asker {
            scope: Arc::new(ArcSwap::from_pointee(vec!["front".to_string()])),
            limits: node.namespace(),
        };
        let handler = SourceScopedHandler {
            registry: Arc::new(ArcSwap::from_pointee(registry)),
            scopes: Arc::new(ArcSwap::from_pointee(HashMap::from([(IpAddr::V4(known), asker)]))),
            forwarder: Arc::new(Forwarder::new(Vec::new())),
            ttl: 5,
            node: node.clone(),
        };
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let _listener = listen(addr, handler).unwrap();

        let (strangers_open, known_open, answers) = tokio::task::spawn_blocking(move || {
            let strangers = still_open_after(stranger, addr, 300, Duration::from_millis(1500));
            let known_open = still_open_after(known, addr, 100, Duration::from_millis(1500));
            // Its connections just closed: the server sees them go before the next query.
            std::thread::sleep(Duration::from_millis(300));
            (strangers, known_open, (ask_tcp(known, addr), ask_tcp(stranger, addr)))
        })
        .await
        .unwrap();
        assert_eq!(strangers_open, 0, "a stranger's connections are all closed");
        assert_eq!(known_open, crate::limits::TCP_PER_NAMESPACE, "a namespace keeps its share, no more");
        assert_eq!(answers, (Some(ResponseCode::NoError), Some(ResponseCode::Refused)));
        let rows: HashMap<_, _> = node.counters.rows().into_iter().collect();
        assert!(rows["tcp_refused_unknown"] >= 300, "{rows:?}");
        assert_eq!(rows["tcp_refused_namespace"], 100 - crate::limits::TCP_PER_NAMESPACE as u64, "{rows:?}");
    }
}
