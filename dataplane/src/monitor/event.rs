//! A monitor event as people and scripts see it: the kernel's `md_event` with names resolved
//! from the cluster state (network, service, task and node of each address), the interface by
//! name and the time as wall-clock time.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshd_ebpf::events::{Event, DIR_UNKNOWN, FLOW_SOCKET, TYPE_FLOW};
use meshd_ebpf::net_order;
use meshd_ebpf::verdict::{Direction, Reason};
use serde::{Deserialize, Serialize};

use crate::service::ports::port_owners;
use crate::state::{Protocol, Snapshot};

/// What kind of event: a dropped packet, or a new balanced flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Drop,
    Flow,
}

/// One end of a packet or flow, with what the cluster state says about its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub address: Ipv4Addr,
    /// TCP or UDP port; absent for other protocols.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The overlay network of the address (an endpoint's, or a VIP's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The service of the address: a task's, a VIP's, or a published port's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The node that hosts the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// One monitor event (a line of `meshctl monitor --format json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorEvent {
    /// RFC 3339, UTC, microseconds.
    pub time: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// The node whose program saw the packet.
    pub node: String,
    pub interface: String,
    /// from-container, to-container, from-tunnel, from-underlay, to-tunnel; a flow's is the
    /// direction its first packet took (from-container for a VIP, from-underlay for a published
    /// port reached from outside).
    pub direction: String,
    /// dropped or forwarded.
    pub verdict: String,
    /// The drop reason (`drop-network-mismatch`, ...), or `lb-dnat` (a flow to a VIP) or
    /// `mesh-dnat` (a flow to a published port).
    pub reason: String,
    /// tcp, udp, icmp, or the IP protocol number; `other` when the packet is not IPv4.
    pub protocol: String,
    pub source: Peer,
    pub destination: Peer,
    /// A flow's chosen backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Peer>,
    /// Frame length in bytes.
    pub length: u32,
}

/// What an address is, per the cluster state.
#[derive(Debug, Clone, Default)]
struct AddressInfo {
    network: Option<String>,
    service: Option<String>,
    task: Option<String>,
    node: Option<String>,
}

/// Addresses, VIPs and published ports by what they belong to, built once per snapshot.
#[derive(Debug, Default)]
pub struct Directory {
    addresses: HashMap<Ipv4Addr, AddressInfo>,
    published: HashMap<(u16, u8), String>,
    /// This node's name, for `MonitorEvent::node`.
    node: String,
}

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

impl Directory {
    pub fn new(snapshot: &Snapshot) -> Directory {
        let state = &snapshot.state;
        let mut addresses = HashMap::new();
        for ((owner, id), endpoint) in state.endpoints.live() {
            addresses.insert(
                endpoint.address,
                AddressInfo {
                    network: Some(endpoint.network.clone()),
                    service: endpoint.service.clone(),
                    task: Some(endpoint.task.clone().unwrap_or_else(|| id.clone())),
                    node: Some(
                        state.nodes.get(owner).map(|n| n.name.clone()).unwrap_or_else(|| owner.short()),
                    ),
                },
            );
        }
        for (name, service) in state.services.live() {
            if let Some(vip) = service.vip {
                addresses.insert(
                    vip,
                    AddressInfo {
                        network: Some(service.network.clone()),
                        service: Some(name.clone()),
                        ..AddressInfo::default()
                    },
                );
            }
        }
        for (_, node) in state.nodes.live() {
            if let std::net::IpAddr::V4(ip) = node.gossip_addr.ip() {
                addresses.entry(ip).or_insert_with(|| AddressInfo {
                    node: Some(node.name.clone()),
                    ..AddressInfo::default()
                });
            }
        }
        let published = port_owners(state)
            .into_iter()
            .map(|((port, proto), name)| {
                let proto = match proto {
                    Protocol::Tcp => IPPROTO_TCP,
                    Protocol::Udp => IPPROTO_UDP,
                };
                ((port, proto), name)
            })
            .collect();
        let node = state.nodes.get(&snapshot.self_id).map(|n| n.name.clone()).unwrap_or_default();
        Directory { addresses, published, node }
    }

    fn peer(&self, address: Ipv4Addr, port: Option<u16>) -> Peer {
        let info = self.addresses.get(&address).cloned().unwrap_or_default();
        Peer { address, port, network: info.network, service: info.service, task: info.task, node: info.node }
    }

    /// The event as people see it. `interface` is the name of `raw.ifindex`, `boot` the wall
    /// clock time at which CLOCK_MONOTONIC was zero.
    pub fn describe(&self, raw: &Event, interface: String, boot: SystemTime) -> MonitorEvent {
        let ports = matches!(raw.proto, IPPROTO_TCP | IPPROTO_UDP);
        let port = |p: u16| ports.then(|| net_order::to_port(p));
        // A flow balanced at connect() has no client port yet.
        let at_socket = raw.kind == TYPE_FLOW && raw.reason == FLOW_SOCKET;
        let source = self.peer(net_order::to_ipv4(raw.saddr), port(raw.sport).filter(|_| !at_socket));
        let mut destination = self.peer(net_order::to_ipv4(raw.daddr), port(raw.dport));
        // The reader passes only the two known types; anything else reads as a drop.
        let kind = if raw.kind == TYPE_FLOW { EventKind::Flow } else { EventKind::Drop };
        let (verdict, reason, backend, direction) = match kind {
            EventKind::Drop => (
                "dropped",
                Reason::from_code(raw.reason).to_string(),
                None,
                Direction::from_code(raw.dir).to_string(),
            ),
            EventKind::Flow => {
                // A VIP is in the directory with its service; anything else that conntrack
                // balanced is a published port on one of this node's addresses.
                let to_vip = destination.service.is_some() && destination.task.is_none();
                let (reason, direction) = if at_socket {
                    ("sock-lb", Direction::FromContainer)
                } else if to_vip {
                    ("lb-dnat", Direction::FromContainer)
                } else {
                    if let Some(port) = destination.port {
                        destination.service = self.published.get(&(port, raw.proto)).cloned();
                    }
                    ("mesh-dnat", Direction::FromUnderlay)
                };
                let direction =
                    if raw.dir == DIR_UNKNOWN { direction } else { Direction::from_code(raw.dir) };
                let backend = self.peer(net_order::to_ipv4(raw.backend), destination.port.filter(|_| to_vip));
                ("forwarded", reason.to_string(), Some(backend), direction.to_string())
            }
        };
        MonitorEvent {
            time: rfc3339(boot + Duration::from_nanos(raw.time_ns)),
            kind,
            node: self.node.clone(),
            interface,
            direction,
            verdict: verdict.to_string(),
            reason,
            protocol: match raw.proto {
                _ if raw.saddr == 0 && raw.daddr == 0 && raw.proto == 0 => "other".to_string(),
                IPPROTO_ICMP => "icmp".to_string(),
                IPPROTO_TCP => "tcp".to_string(),
                IPPROTO_UDP => "udp".to_string(),
                other => other.to_string(),
            },
            source,
            destination,
            backend,
            length: raw.len,
        }
    }
}

/// `2026-01-02T03:04:05.678901Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::snapshot_with_web;
    use meshd_ebpf::events::TYPE_DROP;

    proptest::proptest! {
        /// Whatever the ring holds (a bug, a newer program), reading and naming it never
        /// panics, and the JSON always has the fields a script expects.
        #[test]
        fn any_record_decodes_or_is_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let directory = Directory::new(&snapshot_with_web());
            if let Some(raw) = Event::from_bytes(&bytes) {
                let event = directory.describe(&raw, "x".into(), UNIX_EPOCH);
                let json = serde_json::to_value(&event).unwrap();
                proptest::prop_assert!(json["source"]["address"].is_string());
                proptest::prop_assert!(json["time"].as_str().is_some_and(|t| t.ends_with('Z')));
            } else {
                proptest::prop_assert!(bytes.len() < 40);
            }
        }
    }

    #[test]
    fn time_is_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::from_micros(1_709_251_199_123_456);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.123456Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000000Z");
    }

    fn addr(ip: Ipv4Addr) -> u32 {
        u32::from_ne_bytes(ip.octets())
    }

    #[test]
    fn a_drop_between_two_endpoints_names_both_ends() {
        let snapshot = snapshot_with_web();
        let directory = Directory::new(&snapshot);
        let (src, dst) = {
            let mut live = snapshot.state.endpoints.live().map(|(_, e)| e.address);
            (live.next().unwrap(), live.next().unwrap())
        };
        let raw = Event {
            time_ns: 1_000_000,
            ifindex: 9,
            len: 98,
            saddr: addr(src),
            daddr: addr(dst),
            reason: Reason::DropNetworkMismatch.code(),
            dir: Direction::FromContainer.code(),
            proto: IPPROTO_ICMP,
            kind: TYPE_DROP,
            ..Event::default()
        };
        let event = directory.describe(&raw, "mdv1".into(), UNIX_EPOCH);
        assert_eq!(event.kind, EventKind::Drop);
        assert_eq!(event.reason, "drop-network-mismatch");
        assert_eq!(event.direction, "from-container");
        assert_eq!(event.protocol, "icmp");
        assert_eq!(event.time, "1970-01-01T00:00:00.001000Z");
        assert_eq!(event.source.address, src);
        assert!(event.source.network.is_some() && event.destination.network.is_some());
        assert_eq!(event.source.port, None);
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "drop");
        assert!(json["source"].get("port").is_none());
    }

    #[test]
    fn a_flow_to_a_vip_names_the_service_and_its_backend() {
        let snapshot = snapshot_with_web();
        let directory = Directory::new(&snapshot);
        let web = snapshot.state.services.get(&"web".to_string()).unwrap();
        let backend = snapshot
            .state
            .endpoints
            .live()
            .find(|(_, e)| e.service.as_deref() == Some("web"))
            .map(|(_, e)| e.address)
            .unwrap();
        let raw = Event {
            saddr: addr(Ipv4Addr::new(10, 9, 9, 9)),
            daddr: addr(web.vip.unwrap()),
            backend: addr(backend),
            sport: 40000u16.to_be(),
            dport: 80u16.to_be(),
            proto: IPPROTO_TCP,
            dir: DIR_UNKNOWN,
            kind: TYPE_FLOW,
            ..Event::default()
        };
        let event = directory.describe(&raw, "mdv1".into(), UNIX_EPOCH);
        assert_eq!(
            (event.kind, event.reason.as_str(), event.verdict.as_str()),
            (EventKind::Flow, "lb-dnat", "forwarded")
        );
        assert_eq!(event.destination.service.as_deref(), Some("web"));
        assert_eq!(event.destination.port, Some(80));
        assert_eq!(event.source.port, Some(40000));
        let backend_peer = event.backend.unwrap();
        assert_eq!(backend_peer.address, backend);
        assert_eq!(backend_peer.service.as_deref(), Some("web"));

        // To a node address on a published port: mesh-dnat, the port's owner as the service.
        let raw = Event { daddr: addr(Ipv4Addr::new(192, 0, 2, 1)), dport: 8080u16.to_be(), ..raw };
        let event = directory.describe(&raw, "eth0".into(), UNIX_EPOCH);
        assert_eq!(event.reason, "mesh-dnat");
        assert_eq!(event.direction, "from-underlay");
        assert_eq!(event.destination.service.as_deref(), Some("web"));

        // Balanced at a container's connect(): sock-lb, and no client port yet.
        let raw = Event {
            daddr: addr(web.vip.unwrap()),
            dport: 80u16.to_be(),
            sport: 0,
            reason: FLOW_SOCKET,
            ..raw
        };
        let event = directory.describe(&raw, "mdv1".into(), UNIX_EPOCH);
        assert_eq!((event.reason.as_str(), event.direction.as_str()), ("sock-lb", "from-container"));
        assert_eq!(event.source.port, None);
        assert_eq!(event.destination.service.as_deref(), Some("web"));
        assert_eq!(event.backend.unwrap().port, Some(80));
    }
}
