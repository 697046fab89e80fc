//! The node's one VXLAN device, in collect-metadata ("external") mode on the cluster's data path
//! port (UDP 4789 unless the cluster was created with `--data-path-port`), and the underlay
//! interface it runs over (the one holding the advertise address).

use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::LinkAttribute;
use rtnetlink::{Handle, LinkUnspec, LinkVxlan};

use super::links::{self, netlink_err, LinkError};

pub const DEVICE: &str = "md-vxlan";
/// VXLAN over IPv4 adds 50 bytes (outer Ethernet is not counted in the MTU: IP 20 + UDP 8 +
/// VXLAN 8 + inner Ethernet 14).
pub const OVERHEAD: u32 = 50;

/// Creates the VXLAN device on UDP `port` if it is missing (an existing one on that port is
/// reused: restarts keep it; one on another port, left by a cluster this node was in before, is
/// replaced) and brings it up. Returns its ifindex.
pub async fn ensure_device(handle: &Handle, port: u16) -> Result<u32, LinkError> {
    if let Some(existing) = links::find(handle, DEVICE).await? {
        if device_port(&existing) != Some(port) {
            tracing::info!(port, "replacing the VXLAN device of another data path port");
            links::delete(handle, DEVICE).await?;
        }
    }
    if links::find(handle, DEVICE).await?.is_none() {
        let device = LinkVxlan::new(DEVICE, 0).collect_metadata(true).port(port).learning(false).build();
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

/// The UDP port a VXLAN device listens on, as the kernel reports it.
fn device_port(link: &netlink_packet_route::link::LinkMessage) -> Option<u16> {
    use netlink_packet_route::link::{InfoData, InfoVxlan, LinkInfo};
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|info| match info {
            LinkInfo::Data(InfoData::Vxlan(data)) => {
                data.iter().find_map(|d| if let InfoVxlan::Port(p) = d { Some(*p) } else { None })
            }
            _ => None,
        }),
        _ => None,
    })
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
