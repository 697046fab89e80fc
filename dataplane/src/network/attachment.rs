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
    /// Who asked for it, when that is not a person with `meshctl attach`: a CNI attachment
    /// (`cni/NET/CONTAINER/IFNAME`) or a Docker endpoint (`docker/ENDPOINT`). Runtimes find their
    /// attachments by this key when the namespace is gone.
    #[serde(default)]
    pub owner: Option<String>,
    /// The namespace's identity (device and inode of its file) when it was attached: a path
    /// that now names another namespace, or nothing, means the namespace is gone.
    #[serde(default)]
    pub netns_id: Option<NetnsId>,
    /// Whether meshd added the namespace's default route (it had none).
    #[serde(default)]
    pub default_route: bool,
    /// Where the namespace asks meshd's DNS.
    #[serde(default)]
    pub dns: DnsPlacement,
    /// The namespace's cookie (`SO_NETNS_COOKIE`), by which the socket programs recognise its
    /// sockets (socket-level load balancing). Read when the namespace can be entered (Docker's
    /// only after its Join), again at every start: never saved. `Some(0)`: it could not be read.
    #[serde(skip)]
    pub netns_cookie: Option<u64>,
}

/// Device and inode of a namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`): two paths
/// with the same pair are the same namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsId {
    pub dev: u64,
    pub ino: u64,
}

/// Where an attached namespace finds meshd's DNS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsPlacement {
    /// 127.0.0.11:53 inside the namespace, opened by meshd (attach, CNI).
    #[default]
    Namespace,
    /// The node's own DNS address, scoped by the asker's address: for Docker containers, whose
    /// 127.0.0.11 belongs to Docker's resolver (it forwards what it does not know there).
    Node,
}

fn yes() -> bool {
    true
}
