//! Where every endpoint is (md_endpoints_v2) and what every local veth belongs to (md_ifaces_v2).

use std::collections::BTreeMap;
use std::net::IpAddr;

use meshd_ebpf::endpoint::{Endpoint, Iface, FLAG_LOCAL};
use meshd_ebpf::net_order;

use crate::identity::NodeId;
use crate::network::LocalAttachment;
use crate::state::{EndpointRecord, Snapshot};

/// Every endpoint of every known network, by address: local ones (this node's, with a veth here)
/// delivered to their veth, remote ones tunnelled to their node. A node that is only down keeps
/// its entries (harmless, and nothing is lost if it comes back); one that left has no endpoints
/// left in the state.
pub fn endpoints(snapshot: &Snapshot, local: &[LocalAttachment]) -> BTreeMap<u32, Endpoint> {
    let mut out = BTreeMap::new();
    for ((owner, id), record) in snapshot.state.endpoints.live() {
        if let Some(endpoint) = endpoint_of(snapshot, local, owner, id, record) {
            // Two records with one address can only be one node's own (every node admits a
            // claim only in a block granted to its writer, `state::claims`, and blocks go to
            // one node each): the last key wins (the incremental reconciler follows the same
            // rule).
            out.insert(net_order::ipv4(record.address), endpoint);
        }
    }
    out
}

/// The md_endpoints_v2 value of one endpoint record (None: it has no entry, see [`endpoints`]).
pub fn endpoint_of(
    snapshot: &Snapshot,
    local: &[LocalAttachment],
    owner: &NodeId,
    id: &str,
    record: &EndpointRecord,
) -> Option<Endpoint> {
    let state = &snapshot.state;
    let network = state.networks.get(&record.network)?;
    if *owner == snapshot.self_id {
        let attachment = local.iter().find(|a| a.id == id)?;
        Some(Endpoint {
            vni: network.vni,
            node_ip: 0,
            ifindex: attachment.host_ifindex,
            mac: attachment.container_mac,
            flags: FLAG_LOCAL,
            pad: 0,
        })
    } else {
        let node = state.nodes.get(owner)?;
        let IpAddr::V4(node_ip) = node.gossip_addr.ip() else { return None };
        Some(Endpoint {
            vni: network.vni,
            node_ip: net_order::ipv4(node_ip),
            ifindex: 0,
            mac: [0; 6],
            flags: 0,
            pad: 0,
        })
    }
}

/// Every veth this node attached, by the host side's ifindex: its network, its address, the
/// network's subnet, and the MAC the programs answer ARP with.
pub fn ifaces(snapshot: &Snapshot, local: &[LocalAttachment]) -> BTreeMap<u32, Iface> {
    let mut out = BTreeMap::new();
    for attachment in local {
        let Some(network) = snapshot.state.networks.get(&attachment.network) else { continue };
        out.insert(
            attachment.host_ifindex,
            Iface {
                vni: network.vni,
                ip: net_order::ipv4(attachment.address),
                subnet: net_order::ipv4(network.subnet.network()),
                mask: net_order::ipv4(network.subnet.netmask()),
                mac: attachment.host_mac,
                flags: if network.options.internal { meshd_ebpf::endpoint::IFACE_INTERNAL } else { 0 },
                pad: 0,
                gateway: net_order::ipv4(network.gateway()),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::fixture::{local, snapshot};

    #[test]
    fn local_and_remote_endpoints_and_ifaces() {
        let endpoints = endpoints(&snapshot(), &local());
        let a = endpoints[&net_order::ipv4(Ipv4Addr::new(10, 1, 0, 2))];
        assert_eq!((a.flags, a.ifindex, a.mac, a.vni), (FLAG_LOCAL, 7, [2, 0, 0, 0, 0, 8], 5000));
        let b = endpoints[&net_order::ipv4(Ipv4Addr::new(10, 1, 0, 3))];
        assert_eq!((b.flags, b.node_ip, b.vni), (0, net_order::ipv4(Ipv4Addr::new(192, 0, 2, 2)), 5000));
        assert_eq!(endpoints.len(), 2, "an endpoint of an unknown network is left out");
        let ifaces = ifaces(&snapshot(), &local());
        let iface = ifaces[&7];
        assert_eq!(iface.subnet, net_order::ipv4(Ipv4Addr::new(10, 1, 0, 0)));
        assert_eq!(iface.mask, net_order::ipv4(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(iface.mac, [2, 0, 0, 0, 0, 7]);
    }

    #[test]
    fn own_endpoints_without_a_local_attachment_are_not_forwarded_to() {
        let endpoints = endpoints(&snapshot(), &[]);
        assert!(!endpoints.contains_key(&net_order::ipv4(Ipv4Addr::new(10, 1, 0, 2))));
        assert!(ifaces(&snapshot(), &[]).is_empty());
    }
}
