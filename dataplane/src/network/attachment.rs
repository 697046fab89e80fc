//! A namespace this node attached to a network: the local facts the forwarding maps need and the
//! cluster state does not carry (which veth, which MACs). Kept in `attachments.json` so an agent
//! restart finds its veths again.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalAttachment {
    /// Endpoint ID in the cluster state.
    pub id: String,
    pub netns: PathBuf,
    pub network: String,
    pub address: Ipv4Addr,
    pub host_ifname: String,
    pub host_ifindex: u32,
    pub host_mac: [u8; 6],
    pub container_ifname: String,
    pub container_mac: [u8; 6],
    /// Whether meshd wrote /etc/netns/NAME/resolv.conf for this namespace.
    #[serde(default = "yes")]
    pub resolv_conf: bool,
}

fn yes() -> bool {
    true
}
