//! A veth pair left whole in the node's namespace for a container runtime to take: Docker moves
//! the peer into the container itself, renames it `ethN` and gives it its address and routes
//! (a network driver only names the peer). The node side is wired as for any attachment: up,
//! with a /32 route to the container's address.

use std::net::Ipv4Addr;

use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::links::{self, netlink_err, LinkError};

/// What the runtime is handed, and what the forwarding maps need.
#[derive(Debug, Clone)]
pub struct HandoverVeth {
    pub host_ifindex: u32,
    pub host_mac: [u8; 6],
    /// The peer's name in the node's namespace (the runtime renames it when it moves it).
    pub peer_ifname: String,
    pub peer_mac: [u8; 6],
}

/// Creates the pair `host_ifname` / `peer_ifname` with `mtu`, the peer's MAC set to `mac` if
/// given (the runtime keeps the MAC of the interface it moves), and the node side up with a
/// route to `address`. On failure nothing is left behind.
pub async fn create(
    node: &Handle,
    host_ifname: &str,
    peer_ifname: &str,
    mtu: u32,
    address: Ipv4Addr,
    mac: Option<[u8; 6]>,
) -> Result<HandoverVeth, LinkError> {
    node.link()
        .add(LinkVeth::new(host_ifname, peer_ifname).mtu(mtu).build())
        .execute()
        .await
        .map_err(netlink_err("create veth", host_ifname))?;
    let result = configure(node, host_ifname, peer_ifname, mtu, address, mac).await;
    if result.is_err() {
        let _ = links::delete(node, host_ifname).await;
    }
    result
}

async fn configure(
    node: &Handle,
    host_ifname: &str,
    peer_ifname: &str,
    mtu: u32,
    address: Ipv4Addr,
    mac: Option<[u8; 6]>,
) -> Result<HandoverVeth, LinkError> {
    let peer = links::find(node, peer_ifname).await?.ok_or_else(|| LinkError::Missing(peer_ifname.into()))?;
    // The MTU given at creation is the node side's only: the kernel gives the peer 1500 unless
    // told, and the runtime keeps the MTU of the interface it moves (Docker does), so without
    // this a container would send frames the overlay cannot carry.
    let mut peer_settings = LinkUnspec::new_with_index(peer.header.index).mtu(mtu);
    if let Some(mac) = mac {
        peer_settings = peer_settings.address(mac.to_vec());
    }
    node.link()
        .set(peer_settings.build())
        .execute()
        .await
        .map_err(netlink_err("set MTU and MAC", peer_ifname))?;
    let peer = links::find(node, peer_ifname).await?.ok_or_else(|| LinkError::Missing(peer_ifname.into()))?;
    let host = links::find(node, host_ifname).await?.ok_or_else(|| LinkError::Missing(host_ifname.into()))?;
    let host_ifindex = host.header.index;
    node.link()
        .set(LinkUnspec::new_with_index(host_ifindex).up().build())
        .execute()
        .await
        .map_err(netlink_err("bring up", host_ifname))?;
    // The route works before the peer is up (the link is only without carrier until then).
    let back = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(address, 32)
        .output_interface(host_ifindex)
        .build();
    node.route().add(back).replace().execute().await.map_err(netlink_err("add route", host_ifname))?;
    Ok(HandoverVeth {
        host_ifindex,
        host_mac: links::mac_of(&host),
        peer_ifname: peer_ifname.to_string(),
        peer_mac: links::mac_of(&peer),
    })
}
