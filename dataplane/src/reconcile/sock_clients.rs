//! Which of this node's namespaces have their sockets balanced at connect() (md_sock_clients_v1):
//! every attached namespace whose cookie is known, with the subnets of its networks (a VIP is
//! balanced at the socket only for a client of its own network, as the veth program checks).

use std::collections::BTreeMap;

use meshd_ebpf::net_order;
use meshd_ebpf::sock_lb::{SockClient, SockNet, SOCK_CLIENT_NETS};

use crate::network::LocalAttachment;
use crate::state::Snapshot;

/// The md_sock_clients_v1 entries: namespace cookie -> the subnets of its networks. A namespace
/// attached to more than `SOCK_CLIENT_NETS` networks has the first ones (by subnet) at the
/// socket; the veth program balances the rest as it balances everything without a cookie.
pub fn sock_clients(snapshot: &Snapshot, local: &[LocalAttachment]) -> BTreeMap<u64, SockClient> {
    let mut nets: BTreeMap<u64, Vec<SockNet>> = BTreeMap::new();
    for attachment in local {
        let Some(cookie) = attachment.netns_cookie.filter(|c| *c != 0) else { continue };
        let Some(network) = snapshot.state.networks.get(&attachment.network) else { continue };
        nets.entry(cookie).or_default().push(SockNet {
            subnet: net_order::ipv4(network.subnet.network()),
            mask: net_order::ipv4(network.subnet.netmask()),
            addr: net_order::ipv4(attachment.address),
            ifindex: attachment.host_ifindex,
        });
    }
    nets.into_iter()
        .map(|(cookie, mut list)| {
            // One entry per network (a namespace has one attachment per network).
            list.sort_by_key(|n| (u32::from_be(n.subnet), u32::from_be(n.mask)));
            list.dedup_by_key(|n| (n.subnet, n.mask));
            list.truncate(SOCK_CLIENT_NETS as usize);
            let mut client = SockClient { count: list.len() as u32, ..SockClient::default() };
            client.nets[..list.len()].copy_from_slice(&list);
            (cookie, client)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn a_namespace_gets_its_networks_subnets_once_known() {
        let snapshot = fixture::snapshot_with_web();
        let mut local = fixture::local();
        assert!(sock_clients(&snapshot, &local).is_empty(), "no cookie read yet");
        local[0].netns_cookie = Some(0);
        assert!(sock_clients(&snapshot, &local).is_empty(), "a cookie that could not be read");
        local[0].netns_cookie = Some(42);
        let clients = sock_clients(&snapshot, &local);
        let client = clients[&42];
        assert_eq!(client.count, 1);
        let subnet = snapshot.state.networks.get(&"front".to_string()).unwrap().subnet;
        assert_eq!(client.nets[0].subnet, net_order::ipv4(subnet.network()));
        assert_eq!(client.nets[0].mask, net_order::ipv4(subnet.netmask()));
        assert_eq!(client.nets[0].addr, net_order::ipv4(local[0].address));
        assert_eq!(client.nets[0].ifindex, local[0].host_ifindex);
        // A second attachment of the same namespace to the same network adds nothing.
        local.push(local[0].clone());
        assert_eq!(sock_clients(&snapshot, &local)[&42].count, 1);
        // An attachment to a network the state does not know (yet) is left out.
        local[1].network = "gone".into();
        assert_eq!(sock_clients(&snapshot, &local)[&42].count, 1);
    }
}
