//! The node's DNS address for Docker containers: a /32 on a dummy interface (`md-dns`), as
//! Kubernetes' NodeLocal DNSCache does with 169.254.20.10. A link-local address is outside every
//! overlay subnet, so a container's packet to it goes up the node's stack (the veth program's
//! "outside the overlay" rule) and reaches meshd's socket on the node; the reply goes back by
//! the container's /32 route.

use std::net::Ipv4Addr;

use rtnetlink::{Handle, LinkDummy, LinkUnspec};

use super::links::{self, netlink_err, LinkError};

/// Name of the dummy interface that holds the DNS address.
pub const DEVICE: &str = "md-dns";

/// Creates `md-dns` (if missing), up, with `address`/32 (kept if already there).
pub async fn ensure_address(node: &Handle, address: Ipv4Addr) -> Result<(), LinkError> {
    let link = match links::find(node, DEVICE).await? {
        Some(link) => link,
        None => {
            node.link()
                .add(LinkDummy::new(DEVICE).build())
                .execute()
                .await
                .map_err(netlink_err("create dummy", DEVICE))?;
            links::find(node, DEVICE).await?.ok_or_else(|| LinkError::Missing(DEVICE.into()))?
        }
    };
    let index = link.header.index;
    node.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(netlink_err("bring up", DEVICE))?;
    node.address()
        .add(index, address.into(), 32)
        .replace()
        .execute()
        .await
        .map_err(netlink_err("add address", DEVICE))?;
    Ok(())
}
