//! The node's DNS address for Docker containers: a /32 on the node's loopback, as Kubernetes'
//! NodeLocal DNSCache holds 169.254.20.10 on a device of its own (not every kernel has the
//! dummy device, so loopback it is). A link-local address is outside every overlay subnet, so
//! a container's packet to it goes up the node's stack (the veth program's "outside the
//! overlay" rule) and reaches meshd's socket; the reply goes back by the container's /32 route.

use std::net::Ipv4Addr;

use rtnetlink::Handle;

use super::links::{self, netlink_err, LinkError};

/// Adds `address`/32 to `lo` (kept if already there).
pub async fn ensure_on_loopback(node: &Handle, address: Ipv4Addr) -> Result<(), LinkError> {
    let lo = links::find(node, "lo").await?.ok_or_else(|| LinkError::Missing("lo".into()))?;
    node.address()
        .add(lo.header.index, address.into(), 32)
        .replace()
        .execute()
        .await
        .map_err(netlink_err("add address", "lo"))
}
