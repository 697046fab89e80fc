//! The node's own DNS address (`--docker-dns-addr`), for namespaces whose 127.0.0.11 is not
//! meshd's (Docker containers: Docker's resolver forwards what it does not know to the
//! container's `--dns` servers, from the container's address). One listener; each query is
//! answered with the networks of the namespace that owns its source address, and anyone else
//! is refused (see `meshd_dns::by_source`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use meshd_dns::by_source::{self, Asker, NodeListener, Scopes, SourceScopedHandler};
use meshd_dns::limits::NodeLimits;

use super::Discovery;

pub struct NodeDns {
    address: Ipv4Addr,
    scopes: Arc<ArcSwap<Scopes>>,
    limits: Arc<NodeLimits>,
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
            node: discovery.limits.clone(),
        };
        let listener = by_source::listen(SocketAddr::new(address.into(), 53), handler)?;
        Ok(NodeDns { address, scopes, limits: discovery.limits.clone(), _listener: listener })
    }

    /// The address it serves (containers may ask it: meshd's nftables table lets DNS to it in).
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// Replaces who may ask and what each sees: `(source address, its networks)`. An address
    /// that stays keeps its share of the forwarding slots (its lookups in flight count on).
    pub fn set_scopes(&self, scopes: Vec<(Ipv4Addr, Vec<String>)>) {
        let current = self.scopes.load();
        let map: HashMap<IpAddr, Asker> = scopes
            .into_iter()
            .map(|(address, networks)| {
                let address = IpAddr::V4(address);
                let limits =
                    current.get(&address).map_or_else(|| self.limits.namespace(), |a| a.limits.clone());
                (address, Asker { scope: Arc::new(ArcSwap::from_pointee(networks)), limits })
            })
            .collect();
        self.scopes.store(Arc::new(map));
    }
}
