//! The reconciler: from the cluster state and this node's own facts to what the forwarding maps
//! must hold. A function of its inputs (the Maglev cache it is handed only saves recomputing a
//! table); the agent writes the result with `bpf::forwarding`, which changes only what differs.
//! Run after every new snapshot and after every attach or detach; running it twice changes
//! nothing.
//!
//! - [`endpoints`](mod@endpoints): md_endpoints_v2 and md_ifaces_v2.
//! - [`services`](mod@services): md_services_v1 and md_maglev_v3.
//! - [`frontends`](mod@frontends): md_frontends_v2.
//! - [`nodes`](mod@nodes): md_nodes_v1.
//! - [`sock_clients`](mod@sock_clients): md_sock_clients_v1.
//!
//! [`Reconciler`] keeps the answer between rounds and recomputes only what a state change can
//! have touched ([`incremental`]); the agent uses it, [`desired`] is the full build it must equal.

pub mod endpoints;
pub mod frontends;
pub mod incremental;
pub mod nodes;
pub mod services;
pub mod sock_clients;

use std::net::Ipv4Addr;

pub use incremental::{Reconciler, Round};

use crate::bpf::Forwarding;
use crate::network::LocalAttachment;
use crate::service::MaglevCache;
use crate::state::Snapshot;

/// What the forwarding maps must hold on this node: `local` are its attachments, `node_addrs`
/// its IPv4 addresses (published ports answer on each).
pub fn desired(
    snapshot: &Snapshot,
    local: &[LocalAttachment],
    node_addrs: &[Ipv4Addr],
    cache: &mut MaglevCache,
) -> Forwarding {
    let (services, maglev) = services::services(snapshot, cache);
    let ifaces = endpoints::ifaces(snapshot, local);
    Forwarding {
        endpoints: endpoints::endpoints(snapshot, local),
        // Every attached veth's endpoint has a flow table of its own.
        flow_tables: ifaces.values().map(|iface| iface.ip).collect(),
        ifaces,
        services,
        maglev,
        frontends: frontends::frontends(snapshot, node_addrs),
        nodes: nodes::nodes(snapshot),
        sock_clients: sock_clients::sock_clients(snapshot, local),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_is_the_sum_of_its_parts_and_repeatable() {
        let snapshot = crate::fixture::snapshot_with_web();
        let addrs = [Ipv4Addr::LOCALHOST];
        let mut cache = MaglevCache::default();
        let first = desired(&snapshot, &crate::fixture::local(), &addrs, &mut cache);
        assert_eq!(first.endpoints.len(), 2);
        assert_eq!(first.ifaces.len(), 1);
        assert_eq!(first.services.len(), 2);
        assert_eq!(first.maglev.len(), 1);
        assert_eq!(first.frontends.len(), 2);
        assert_eq!(first.nodes.len(), 2);
        assert_eq!(first.flow_tables.len(), 1);
        assert_eq!(desired(&snapshot, &crate::fixture::local(), &addrs, &mut cache), first);
    }
}
