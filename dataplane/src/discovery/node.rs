//! The node's own DNS address (`--docker-dns-addr`), for namespaces whose 127.0.0.11 is not
//! meshd's (Docker containers: Docker's resolver forwards what it does not know to the
//! container's `--dns` servers, from the container's address). One listener; each query is
//! answered with the networks of the namespace that owns its source address, and anyone else
//! is refused (see `meshd_dns::by_source`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use meshd_dns::by_source::{self, NodeListener, Scopes, SourceScopedHandler};

use super::Discovery;

pub struct NodeDns {
    scopes: Arc<ArcSwap<Scopes>>,
    _listener: NodeListener,
}

impl NodeDns {
    /// Serves `address`:53 (UDP and TCP) in the node's namespace; the address must be local.
    pub fn serve(discovery: &Discovery, address: Ipv4Addr) -> std::io::Result<NodeDns> {
        let scopes = Arc::new(ArcSwap::from_pointee(Scopes::new()));
        let handler = SourceScopedHandler {
            registry: discovery.registry.clone(),
            scopes: scopes.clone(),
            forwarder: discovery.forwarder.clone(),
            ttl: discovery.ttl,
        };
        let listener = by_source::listen(SocketAddr::new(address.into(), 53), handler)?;
        Ok(NodeDns { scopes, _listener: listener })
    }

    /// Replaces who may ask and what each sees: `(source address, its networks)`.
    pub fn set_scopes(&self, scopes: Vec<(Ipv4Addr, Vec<String>)>) {
        let map: HashMap<IpAddr, Arc<ArcSwap<Vec<String>>>> = scopes
            .into_iter()
            .map(|(address, networks)| (IpAddr::V4(address), Arc::new(ArcSwap::from_pointee(networks))))
            .collect();
        self.scopes.store(Arc::new(map));
    }
}
