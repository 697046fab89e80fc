//! Published ports on this node's addresses (md_frontends_v2): the routing mesh's front doors.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use meshd_ebpf::mesh::{Frontend, FrontendKey, FRONTEND_LOCAL, PROTO_TCP, PROTO_UDP};
use meshd_ebpf::net_order;

use super::services::local_backends;
use crate::service::id::{local_table_id, service_id};
use crate::service::ports::port_claims;
use crate::state::{Protocol, PublishMode, Snapshot};

/// Every port of every vip service that holds it (see [`port_claims`]; a range is each of its
/// ports), on each of `node_addrs` it answers on (the node's IPv4 addresses, loopback included
/// so that the node's own `localhost:PORT` works; `address=` narrows them). A mode=host port
/// answers only while the service has a healthy task on this node, and picks from those tasks'
/// table.
pub fn frontends(snapshot: &Snapshot, node_addrs: &[Ipv4Addr]) -> BTreeMap<FrontendKey, Frontend> {
    let state = &snapshot.state;
    let local = local_backends(snapshot);
    let mut out = BTreeMap::new();
    for claim in port_claims(state).into_iter().filter(|c| c.held_by.is_none()) {
        let Some(service) = state.services.get(&claim.service) else { continue };
        let Some(vip) = service.vip else { continue };
        let port = claim.port;
        let (flags, table) = match port.mode {
            PublishMode::Ingress => (0, service_id(&claim.service)),
            PublishMode::Host if local.contains_key(&claim.service) => {
                (FRONTEND_LOCAL, local_table_id(&claim.service))
            }
            PublishMode::Host => continue,
        };
        let proto = match port.protocol {
            Protocol::Tcp => PROTO_TCP,
            Protocol::Udp => PROTO_UDP,
        };
        for addr in node_addrs.iter().filter(|addr| port.answers_on(**addr)) {
            for (published, target) in port.pairs() {
                let key = FrontendKey {
                    addr: net_order::ipv4(*addr),
                    port: net_order::port(published),
                    proto,
                    pad: 0,
                };
                let value = Frontend {
                    vip: net_order::ipv4(vip),
                    target_port: net_order::port(target),
                    flags,
                    table,
                };
                // Served claims do not overlap; the first stays if a stale state says otherwise.
                out.entry(key).or_insert(value);
            }
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
                Frontend {
                    vip: net_order::ipv4(WEB_VIP),
                    target_port: net_order::port(80),
                    flags: 0,
                    table: service_id("web")
                },
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

    /// web republished as `ports` (a later version than the fixture's).
    fn web_publishing(ports: &[&str]) -> Snapshot {
        let mut snapshot = snapshot_with_web();
        let mut web = snapshot.state.services.get(&"web".to_string()).unwrap().clone();
        web.ports = ports.iter().map(|p| crate::service::ports::parse_publish(p).unwrap()).collect();
        let change = crate::state::Change::Service { name: "web".into(), record: Some(web) };
        crate::fixture::apply(&mut snapshot.state, 1, 50, change);
        snapshot
    }

    /// The keys, "late"'s 8080 aside (served once web no longer holds it).
    fn keys(out: &BTreeMap<FrontendKey, Frontend>) -> Vec<FrontendKey> {
        out.keys().copied().filter(|k| k.port != net_order::port(8080)).collect()
    }

    fn key(addr: Ipv4Addr, port: u16) -> FrontendKey {
        FrontendKey { addr: net_order::ipv4(addr), port: net_order::port(port), proto: PROTO_TCP, pad: 0 }
    }

    #[test]
    fn address_narrows_the_node_addresses_and_ranges_are_each_port() {
        let (lo, first, second) =
            (Ipv4Addr::LOCALHOST, Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 1));
        let addrs = [lo, first, second];
        let out = frontends(&web_publishing(&["published=9000,target=90,address=198.51.100.0/24"]), &addrs);
        assert_eq!(keys(&out), [key(second, 9000)]);
        let out = frontends(&web_publishing(&["published=9000,target=90,address=127.0.0.1"]), &addrs);
        assert_eq!(keys(&out), [key(lo, 9000)]);
        let out = frontends(&web_publishing(&["30000-30019:40000-40019"]), &addrs);
        assert_eq!(keys(&out).len(), 20 * addrs.len());
        assert_eq!(out[&key(first, 30007)].target_port, net_order::port(40007));
    }

    #[test]
    fn host_mode_answers_only_with_a_local_task_and_picks_from_its_table() {
        let addrs = [Ipv4Addr::new(192, 0, 2, 1)];
        let snapshot = web_publishing(&["published=9000,target=90,mode=host"]);
        let out = frontends(&snapshot, &addrs);
        let fe = out[&key(addrs[0], 9000)];
        assert_eq!((fe.flags, fe.table), (FRONTEND_LOCAL, local_table_id("web")));
        // Its table holds this node's task only (10.1.0.2; 10.1.0.3 is on node 2).
        let (_, tables) = super::super::services::services(&snapshot, &mut Default::default());
        let table = &tables[&local_table_id("web")];
        let slots = &table[meshd_ebpf::lb::MAGLEV_SLOTS as usize..];
        assert!(slots.iter().all(|s| *s == net_order::ipv4(Ipv4Addr::new(10, 1, 0, 2))));
        // Without a local task the port is closed here.
        let mut gone = snapshot.clone();
        let change =
            crate::state::Change::Endpoint { owner: crate::fixture::id(1), id: "a".into(), record: None };
        crate::fixture::apply(&mut gone.state, 1, 60, change);
        assert!(keys(&frontends(&gone, &addrs)).is_empty());
    }
}
