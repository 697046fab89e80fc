//! DNS on the node itself, for clients whose 127.0.0.11 is not meshd's: a Docker container's
//! resolver (Docker's own, at 127.0.0.11 inside the container) forwards the names it does not
//! know to the container's `--dns` servers, from the container's address. meshd listens on one
//! address in the node's namespace and answers each query with the scope of the attachment
//! whose address asked. Anyone else is REFUSED: the node is no open resolver for the underlay.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;

use crate::forward::Forwarder;
use crate::handler::MeshHandler;
use crate::limits::NamespaceLimits;
use crate::registry::Registry;

/// How long a TCP client may stay idle.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);

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
}

/// Opens `addr` (UDP and TCP) and serves it with `handler`.
pub fn listen(addr: SocketAddr, handler: SourceScopedHandler) -> io::Result<NodeListener> {
    let udp = std::net::UdpSocket::bind(addr)?;
    udp.set_nonblocking(true)?;
    let tcp = std::net::TcpListener::bind(addr)?;
    tcp.set_nonblocking(true)?;
    let mut server = Server::new(handler);
    server.register_socket(tokio::net::UdpSocket::from_std(udp)?);
    server.register_listener(tokio::net::TcpListener::from_std(tcp)?, TCP_TIMEOUT, 65_535);
    Ok(NodeListener { server: Some(server) })
}

impl Drop for NodeListener {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.shutdown_token().cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::str::FromStr;

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
        let asker = Asker {
            scope: Arc::new(ArcSwap::from_pointee(vec!["front".to_string()])),
            limits: crate::limits::NodeLimits::new().namespace(),
        };
        let scopes: Scopes = HashMap::from([(known, asker)]);
        let handler = SourceScopedHandler {
            registry: Arc::new(ArcSwap::from_pointee(registry)),
            scopes: Arc::new(ArcSwap::from_pointee(scopes)),
            forwarder: Arc::new(Forwarder::new(Vec::new())),
            ttl: 5,
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
}
