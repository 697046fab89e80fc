//! The node's own configuration the agent keeps equal to the state: meshd's nftables table,
//! the reserved local ports, the overlay routes into the VXLAN device, the node's addresses,
//! and the node DNS address on loopback.

use std::net::{IpAddr, Ipv4Addr};

use super::BoxFuture;
use crate::host::{nftables, sysctl};
use crate::netlink::links::LinkError;
use crate::netlink::{addresses, local_address, routes};

pub trait Host: Send + Sync {
    /// Writes meshd's nftables table.
    fn apply_nftables(&self, table: &nftables::Table) -> std::io::Result<()>;
    /// The packets and bytes nftables dropped from containers to the node.
    fn to_node_dropped(&self) -> std::io::Result<(u64, u64)>;
    /// Reserves `published` on top of the node's own reserved ports `base`.
    fn reserve_ports(&self, base: &str, published: &[u16]) -> std::io::Result<()>;
    /// Routes `subnets` into the VXLAN device from `source`, removing those of `previous` that
    /// are no longer in `subnets`.
    fn sync_routes<'a>(
        &'a self,
        vxlan_ifindex: u32,
        source: Ipv4Addr,
        subnets: &'a [ipnet::Ipv4Net],
        previous: &'a [ipnet::Ipv4Net],
    ) -> BoxFuture<'a, Result<(), LinkError>>;
    /// The node's addresses.
    fn node_addresses(&self) -> BoxFuture<'_, std::io::Result<Vec<IpAddr>>>;
    /// Puts `address` on the node's loopback (a missing one is added, a present one kept).
    fn ensure_on_loopback(&self, address: Ipv4Addr) -> BoxFuture<'_, Result<(), LinkError>>;
}

/// The node itself.
pub struct NodeHost {
    pub node: rtnetlink::Handle,
}

impl Host for NodeHost {
    fn apply_nftables(&self, table: &nftables::Table) -> std::io::Result<()> {
        nftables::apply(table)
    }

    fn to_node_dropped(&self) -> std::io::Result<(u64, u64)> {
        nftables::to_node_dropped()
    }

    fn reserve_ports(&self, base: &str, published: &[u16]) -> std::io::Result<()> {
        sysctl::reserve_ports(base, published)
    }

    fn sync_routes<'a>(
        &'a self,
        vxlan_ifindex: u32,
        source: Ipv4Addr,
        subnets: &'a [ipnet::Ipv4Net],
        previous: &'a [ipnet::Ipv4Net],
    ) -> BoxFuture<'a, Result<(), LinkError>> {
        Box::pin(routes::sync_routes(&self.node, vxlan_ifindex, source, subnets, previous))
    }

    fn node_addresses(&self) -> BoxFuture<'_, std::io::Result<Vec<IpAddr>>> {
        Box::pin(addresses::local_addresses())
    }

    fn ensure_on_loopback(&self, address: Ipv4Addr) -> BoxFuture<'_, Result<(), LinkError>> {
        Box::pin(local_address::ensure_on_loopback(&self.node, address))
    }
}
