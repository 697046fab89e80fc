//! Published ports on this node's addresses (md_frontends_v1): the routing mesh's front doors.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use meshd_ebpf::mesh::{Frontend, FrontendKey, PROTO_TCP, PROTO_UDP};
use meshd_ebpf::net_order;

use crate::service::ports::port_owners;
use crate::state::{Protocol, Snapshot};

/// Every port of every vip service that holds it (see [`port_owners`]), on each of `node_addrs`
/// (the node's IPv4 addresses, loopback included so that the node's own `localhost:PORT` works).
pub fn frontends(snapshot: &Snapshot, node_addrs: &[Ipv4Addr]) -> BTreeMap<FrontendKey, Frontend> {
    let state = &snapshot.state;
    let mut out = BTreeMap::new();
    for ((published, protocol), name) in port_owners(state) {
        let Some(service) = state.services.get(&name) else { continue };
        let (Some(vip), Some(port)) =
            (service.vip, service.ports.iter().find(|p| (p.published, p.protocol) == (published, protocol)))
        else {
            continue;
        };
        let proto = match protocol {
            Protocol::Tcp => PROTO_TCP,
            Protocol::Udp => PROTO_UDP,
        };
        for addr in node_addrs {
            out.insert(
                FrontendKey { addr: net_order::ipv4(*addr), port: net_order::port(published), proto, pad: 0 },
                Frontend { vip: net_order::ipv4(vip), target_port: net_order::port(port.target), pad: 0 },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{snapshot_with_web, WEB_VIP};

    #[test]
    fn every_published_port_answers_on_every_node_address() {
        let addrs = [Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(192, 0, 2, 1)];
        let frontends = frontends(&snapshot_with_web(), &addrs);
        // web publishes 8080 -> 80/tcp and 5353 -> 53/udp; "late" claimed 8080/tcp after it.
        assert_eq!(frontends.len(), 4);
        for addr in addrs {
            let key = FrontendKey {
                addr: net_order::ipv4(addr),
                port: net_order::port(8080),
                proto: PROTO_TCP,
                pad: 0,
            };
            assert_eq!(
                frontends[&key],
                Frontend { vip: net_order::ipv4(WEB_VIP), target_port: net_order::port(80), pad: 0 },
                "the earliest claim holds the port"
            );
            let udp = FrontendKey {
                addr: net_order::ipv4(addr),
                port: net_order::port(5353),
                proto: PROTO_UDP,
                pad: 0,
            };
            assert_eq!(frontends[&udp].target_port, net_order::port(53));
        }
        assert!(super::frontends(&snapshot_with_web(), &[]).is_empty());
    }
}
