//! The cluster's nodes by underlay address (md_nodes_v1): the only senders whose tunnel packets
//! the node accepts (`vxlan_ingress`, and `underlay_ingress` before decapsulation).

use std::collections::BTreeMap;
use std::net::IpAddr;

use meshd_ebpf::net_order;
use meshd_ebpf::node::{Node, NODE_MEMBER};

use crate::state::Snapshot;

/// Every node of the cluster that has not left, this one included, by its underlay (gossip)
/// address: the address its endpoints' tunnel packets come from. A node that is only down stays
/// (its packets are welcome again when it returns, like its endpoints); one that left is gone.
pub fn nodes(snapshot: &Snapshot) -> BTreeMap<u32, Node> {
    snapshot
        .state
        .nodes
        .live()
        .filter(|(_, record)| !record.left)
        .filter_map(|(_, record)| match record.gossip_addr.ip() {
            IpAddr::V4(addr) => Some((net_order::ipv4(addr), Node { flags: NODE_MEMBER, pad: 0 })),
            IpAddr::V6(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Instant;

    use super::*;
    use crate::fixture::{id, snapshot};
    use crate::state::{Change, Delta, NodeRecord, Version};

    #[test]
    fn members_are_accepted_and_leavers_are_not() {
        let mut snapshot = snapshot();
        let addr = |n| net_order::ipv4(Ipv4Addr::new(192, 0, 2, n));
        assert_eq!(nodes(&snapshot).keys().copied().collect::<Vec<_>>(), [addr(1), addr(2)]);
        let left = NodeRecord {
            name: "n2".into(),
            gossip_addr: "192.0.2.2:7946".parse().unwrap(),
            left: true,
            departed: None,
            cert: Default::default(),
            founder: None,
            keyring: Default::default(),
            wireguard: None,
        };
        let delta = Delta {
            version: Version { lamport: 50, node: id(2) },
            change: Change::Node { id: id(2), record: Some(left) },
        };
        snapshot.state.apply(delta, Instant::now()).unwrap();
        assert_eq!(nodes(&snapshot).keys().copied().collect::<Vec<_>>(), [addr(1)]);
    }
}
