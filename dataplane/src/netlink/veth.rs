//! Wiring a namespace to the overlay: a veth pair, the container end moved into the namespace as
//! `ethN` with its address, MTU and routes, the node end up with a /32 route back to it.
//!
//! The container's default route goes to the network's gateway address, which no one owns: the
//! eBPF program on the host side answers ARP for it (and for everything else) with the veth's
//! MAC, and forwards by destination address. A namespace already on another network keeps its
//! default route; the new network is reachable through its connected route.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use futures::TryStreamExt;
use netlink_packet_route::route::RouteAttribute;
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::links::{self, netlink_err, LinkError};

#[derive(Debug, Clone)]
pub struct VethSpec {
    pub netns: PathBuf,
    /// Name of the node-side veth (also the suffix source for the temporary peer name).
    pub host_ifname: String,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
    /// The interface's name inside the namespace (a CNI runtime chooses it); None: the first
    /// free `ethN`.
    pub container_ifname: Option<String>,
}

#[derive(Debug, Clone)]
pub struct WiredVeth {
    pub host_ifindex: u32,
    pub host_mac: [u8; 6],
    pub container_ifname: String,
    pub container_mac: [u8; 6],
    /// Whether the namespace got its default route from this wiring (it had none).
    pub default_route: bool,
}

/// Creates and configures the veth pair; on any failure, removes what it created.
pub async fn wire(node: &Handle, spec: &VethSpec) -> Result<WiredVeth, LinkError> {
    let peer = format!("p{}", &spec.host_ifname);
    node.link()
        .add(LinkVeth::new(&spec.host_ifname, &peer).mtu(spec.mtu).build())
        .execute()
        .await
        .map_err(netlink_err("create veth", &spec.host_ifname))?;
    let result = configure(node, spec, &peer).await;
    if result.is_err() {
        let _ = links::delete(node, &spec.host_ifname).await;
    }
    result
}

async fn configure(node: &Handle, spec: &VethSpec, peer: &str) -> Result<WiredVeth, LinkError> {
    let netns = std::fs::File::open(&spec.netns)
        .map_err(|source| LinkError::Netns { path: spec.netns.display().to_string(), source })?;
    let peer_link = links::find(node, peer).await?.ok_or_else(|| LinkError::Missing(peer.to_string()))?;
    node.link()
        .set(LinkUnspec::new_with_index(peer_link.header.index).setns_by_fd(netns.as_raw_fd()).build())
        .execute()
        .await
        .map_err(netlink_err("move into namespace", peer))?;

    // The container side.
    let inside = links::handle_in(&spec.netns).await?;
    let existing = links::names(&inside).await?;
    let container_ifname = match &spec.container_ifname {
        // A runtime's name must be free: taking over an interface it made would break it.
        Some(name) if existing.contains(name) => {
            return Err(LinkError::Taken { name: name.clone(), netns: spec.netns.display().to_string() })
        }
        Some(name) => name.clone(),
        None => (0..).map(|i| format!("eth{i}")).find(|name| !existing.contains(name)).expect("unbounded"),
    };
    let moved = links::find(&inside, peer).await?.ok_or_else(|| LinkError::Missing(peer.to_string()))?;
    let index = moved.header.index;
    inside
        .link()
        .set(LinkUnspec::new_with_index(index).name(container_ifname.clone()).mtu(spec.mtu).up().build())
        .execute()
        .await
        .map_err(netlink_err("configure", &container_ifname))?;
    if let Some(lo) = links::find(&inside, "lo").await? {
        let _ = inside.link().set(LinkUnspec::new_with_index(lo.header.index).up().build()).execute().await;
    }
    inside
        .address()
        .add(index, spec.address.into(), spec.prefix_len)
        .execute()
        .await
        .map_err(netlink_err("add address", &container_ifname))?;
    let default_route = !has_default_route(&inside).await?;
    if default_route {
        let route =
            RouteMessageBuilder::<Ipv4Addr>::new().gateway(spec.gateway).output_interface(index).build();
        inside
            .route()
            .add(route)
            .execute()
            .await
            .map_err(netlink_err("add default route", &container_ifname))?;
    }
    let container_mac = links::find(&inside, &container_ifname)
        .await?
        .map(|l| links::mac_of(&l))
        .ok_or_else(|| LinkError::Missing(container_ifname.clone()))?;

    // The node side.
    let host = links::find(node, &spec.host_ifname)
        .await?
        .ok_or_else(|| LinkError::Missing(spec.host_ifname.clone()))?;
    let host_ifindex = host.header.index;
    node.link()
        .set(LinkUnspec::new_with_index(host_ifindex).up().build())
        .execute()
        .await
        .map_err(netlink_err("bring up", &spec.host_ifname))?;
    let back = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(spec.address, 32)
        .output_interface(host_ifindex)
        .build();
    node.route().add(back).replace().execute().await.map_err(netlink_err("add route", &spec.host_ifname))?;

    Ok(WiredVeth {
        host_ifindex,
        host_mac: links::mac_of(&host),
        container_ifname,
        container_mac,
        default_route,
    })
}

async fn has_default_route(handle: &Handle) -> Result<bool, LinkError> {
    let mut routes = handle.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build()).execute();
    while let Some(route) = routes.try_next().await.map_err(netlink_err("list routes", "*"))? {
        let is_default = route.header.destination_prefix_length == 0
            && route
                .attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::Oif(_)))
            && route.header.table == 254;
        if is_default {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Removes the veth pair (deleting one end deletes both, and their routes).
pub async fn unwire(node: &Handle, host_ifname: &str) -> Result<(), LinkError> {
    links::delete(node, host_ifname).await
}
