//! Routes from the node itself into the overlay: its own clients of published ports reach remote
//! backends that way.

use std::net::Ipv4Addr;

use rtnetlink::{Handle, RouteMessageBuilder};

use super::links::{netlink_err, LinkError};

/// Routes each overlay subnet into the VXLAN device with the node's underlay address as source
/// (replies then come back through the tunnel to an address the node owns), and removes the
/// routes of subnets no longer in `subnets` (`previous` is what the last call installed).
pub async fn sync_routes(
    handle: &Handle,
    vxlan_ifindex: u32,
    source: Ipv4Addr,
    subnets: &[ipnet::Ipv4Net],
    previous: &[ipnet::Ipv4Net],
) -> Result<(), LinkError> {
    let route = |subnet: &ipnet::Ipv4Net| {
        RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(subnet.network(), subnet.prefix_len())
            .output_interface(vxlan_ifindex)
            .pref_source(source)
            .build()
    };
    for subnet in subnets {
        handle
            .route()
            .add(route(subnet))
            .replace()
            .execute()
            .await
            .map_err(netlink_err("add overlay route", subnet.to_string()))?;
    }
    for gone in previous.iter().filter(|p| !subnets.contains(p)) {
        // Already gone (someone removed it) is what we wanted.
        let _ = handle.route().del(route(gone)).execute().await;
    }
    Ok(())
}
