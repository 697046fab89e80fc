//! Veth pairs and the namespaces they are wired into: what attach, handover, detach, check and
//! the reaper ask of rtnetlink.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use rtnetlink::Handle;

use super::BoxFuture;
use crate::netlink::addresses;
use crate::netlink::handover::{self, HandoverVeth};
use crate::netlink::links::{self, LinkError};
use crate::netlink::veth::{self, VethSpec, WiredVeth};

pub trait Links: Send + Sync {
    /// Creates the pair, moves the peer into `spec.netns` and configures it there; on failure
    /// nothing is left behind.
    fn wire<'a>(&'a self, spec: &'a VethSpec) -> BoxFuture<'a, Result<WiredVeth, LinkError>>;

    /// Creates a pair whose peer a runtime moves into the container itself (see
    /// `netlink::handover`); on failure nothing is left behind.
    fn create_handover<'a>(
        &'a self,
        host_ifname: &'a str,
        peer_ifname: &'a str,
        mtu: u32,
        address: Ipv4Addr,
        mac: Option<[u8; 6]>,
    ) -> BoxFuture<'a, Result<HandoverVeth, LinkError>>;

    /// Removes the pair whose node side is `host_ifname` (a missing one is not an error).
    fn remove<'a>(&'a self, host_ifname: &'a str) -> BoxFuture<'a, Result<(), LinkError>>;

    /// The names of the node's links.
    fn names(&self) -> BoxFuture<'_, Result<Vec<String>, LinkError>>;

    /// The index of the node's link `name`, if it exists.
    fn ifindex<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<u32>, LinkError>>;

    /// The addresses of interface `ifname` inside the namespace at `netns` (None: no such
    /// interface there).
    fn addresses_in<'a>(
        &'a self,
        netns: &'a Path,
        ifname: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<IpAddr>>, LinkError>>;
}

/// The node's rtnetlink.
pub struct NodeLinks {
    pub node: Handle,
}

impl Links for NodeLinks {
    fn wire<'a>(&'a self, spec: &'a VethSpec) -> BoxFuture<'a, Result<WiredVeth, LinkError>> {
        Box::pin(veth::wire(&self.node, spec))
    }

    fn create_handover<'a>(
        &'a self,
        host_ifname: &'a str,
        peer_ifname: &'a str,
        mtu: u32,
        address: Ipv4Addr,
        mac: Option<[u8; 6]>,
    ) -> BoxFuture<'a, Result<HandoverVeth, LinkError>> {
        Box::pin(handover::create(&self.node, host_ifname, peer_ifname, mtu, address, mac))
    }

    fn remove<'a>(&'a self, host_ifname: &'a str) -> BoxFuture<'a, Result<(), LinkError>> {
        Box::pin(veth::unwire(&self.node, host_ifname))
    }

    fn names(&self) -> BoxFuture<'_, Result<Vec<String>, LinkError>> {
        Box::pin(links::names(&self.node))
    }

    fn ifindex<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<u32>, LinkError>> {
        Box::pin(async move { Ok(links::find(&self.node, name).await?.map(|link| link.header.index)) })
    }

    fn addresses_in<'a>(
        &'a self,
        netns: &'a Path,
        ifname: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<IpAddr>>, LinkError>> {
        Box::pin(async move {
            let inside = links::handle_in(netns).await?;
            let Some(link) = links::find(&inside, ifname).await? else { return Ok(None) };
            Ok(Some(addresses::of_link(&inside, link.header.index).await?))
        })
    }
}
