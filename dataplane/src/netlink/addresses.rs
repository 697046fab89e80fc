//! Addresses assigned in the current network namespace.

use std::io;
use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;

/// Every address assigned to an interface of this network namespace (both families).
pub async fn local_addresses() -> io::Result<Vec<IpAddr>> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    let connection = tokio::spawn(connection);
    let mut messages = handle.address().get().execute();
    let mut out = Vec::new();
    let result = async {
        while let Some(message) = messages.try_next().await.map_err(io::Error::other)? {
            // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point
            // links and equal to IFA_LOCAL elsewhere, and the only one IPv6 sends.
            let local = message.attributes.iter().find_map(|attr| match attr {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let address = message.attributes.iter().find_map(|attr| match attr {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = local.or(address) {
                out.push(ip);
            }
        }
        Ok::<(), io::Error>(())
    }
    .await;
    connection.abort();
    result.map(|()| out)
}

/// The addresses of interface `index` in the namespace of `handle`.
pub async fn of_link(handle: &rtnetlink::Handle, index: u32) -> Result<Vec<IpAddr>, super::links::LinkError> {
    let mut messages = handle.address().get().set_link_index_filter(index).execute();
    let mut out = Vec::new();
    while let Some(message) =
        messages.try_next().await.map_err(super::links::netlink_err("list addresses", index.to_string()))?
    {
        out.extend(message.attributes.iter().find_map(|attr| match attr {
            AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        }));
    }
    Ok(out)
}
