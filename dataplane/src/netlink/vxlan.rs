//! The node's one VXLAN device, in collect-metadata ("external") mode on UDP 4789, and the
//! underlay interface it runs over (the one holding the advertise address).

use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::LinkAttribute;
use rtnetlink::{Handle, LinkUnspec, LinkVxlan};

use super::links::{self, netlink_err, LinkError};

pub const DEVICE: &str = "md-vxlan";
pub const PORT: u16 = 4789;
/// VXLAN over IPv4 adds 50 bytes (outer Ethernet is not counted in the MTU: IP 20 + UDP 8 +
/// VXLAN 8 + inner Ethernet 14).
pub const OVERHEAD: u32 = 50;

/// Creates the VXLAN device if it is missing (an existing one is reused: restarts keep it) and
/// brings it up. Returns its ifindex.
pub async fn ensure_device(handle: &Handle) -> Result<u32, LinkError> {
    if links::find(handle, DEVICE).await?.is_none() {
        let device = LinkVxlan::new(DEVICE, 0).collect_metadata(true).port(PORT).learning(false).build();
        handle.link().add(device).execute().await.map_err(netlink_err("create vxlan", DEVICE))?;
    }
    let link = links::find(handle, DEVICE).await?.ok_or_else(|| LinkError::Missing(DEVICE.to_string()))?;
    // No ARP: the node's packets routed into the overlay get their tunnel key from the eBPF
    // program on egress (the peer's MACs are set on the far side), so there is nobody to ask.
    handle
        .link()
        .set(LinkUnspec::new_with_index(link.header.index).up().arp(false).build())
        .execute()
        .await
        .map_err(netlink_err("bring up", DEVICE))?;
    Ok(link.header.index)
}

/// The interface that holds the node's underlay address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    pub ifindex: u32,
    pub name: String,
    pub mtu: u32,
}

/// The interface holding `addr`, or None if no interface has it.
pub async fn underlay(handle: &Handle, addr: IpAddr) -> Result<Option<Underlay>, LinkError> {
    let mut addresses = handle.address().get().execute();
    let mut index = None;
    while let Some(message) = addresses.try_next().await.map_err(netlink_err("list addresses", "*"))? {
        let matches = message
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::Local(ip) | AddressAttribute::Address(ip) if *ip == addr));
        if matches {
            index = Some(message.header.index);
        }
    }
    let Some(index) = index else { return Ok(None) };
    let mut found = handle.link().get().match_index(index).execute();
    let Some(link) = found.try_next().await.map_err(netlink_err("get", index.to_string()))? else {
        return Ok(None);
    };
    let mtu =
        link.attributes.iter().find_map(|a| if let LinkAttribute::Mtu(m) = a { Some(*m) } else { None });
    let name = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    });
    Ok(Some(Underlay { ifindex: index, name: name.unwrap_or_default(), mtu: mtu.unwrap_or(1500) }))
}
