//! The records the cluster state holds, and the small domain types they are made of. Every other
//! layer speaks of nodes, networks, services and endpoints with these types.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::signature::Signature;
use super::version::Version;
use crate::identity::{NodeId, Secret};
use crate::util::hex::Bytes;

/// What a node says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    /// Underlay address and gossip port.
    pub gossip_addr: SocketAddr,
    /// Set by the node itself just before it leaves the cluster on purpose.
    pub left: bool,
    /// When a node joins again after leaving, the version of its last departure: everything it
    /// owned from before that stays gone, whatever order the deltas arrive in.
    #[serde(default)]
    pub departed: Option<Version>,
    /// The node's certificate (DER), issued by the cluster CA: it certifies the key that signs
    /// the node's records (and its TLS handshakes).
    #[serde(default)]
    pub cert: Bytes,
    /// The CA's founder grant, on the node that created the cluster: its first manager.
    #[serde(default)]
    pub founder: Option<Signature>,
    /// The gossip keys this node holds and the one it seals with: what a key rotation waits on.
    #[serde(default)]
    pub keyring: KeyringStatus,
    /// The node's WireGuard public key and port: how peers reach it on encrypted networks
    /// (`encryption/`). Signed with the record, so only the node itself can say it.
    #[serde(default)]
    pub wireguard: Option<WireguardPeer>,
}

/// What a node publishes about its WireGuard engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireguardPeer {
    /// Curve25519 public key, base64 as `wg` writes it (44 characters).
    pub public_key: String,
    /// The UDP port the engine listens on, on the node's underlay address.
    pub port: u16,
    /// Which engine the node runs: "kernel" or "userspace" (`node ls`).
    pub engine: String,
}

impl WireguardPeer {
    /// Whether the key has the shape of a WireGuard key (32 bytes in base64) and the port is
    /// one: what a peer says is checked here before it reaches `wg` or a config line.
    pub fn is_valid(&self) -> bool {
        let key = self.public_key.as_bytes();
        key.len() == 44
            && key[43] == b'='
            && key[..43].iter().all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
            && self.port != 0
    }
}

/// The gossip keys a node holds, by key id (see `gossip::crypto`), and the one it seals with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyringStatus {
    pub held: Vec<u32>,
    pub sealing: Option<u32>,
}

/// The cluster's shared secrets, written by managers only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSecrets {
    /// The gossip keys, primary (the one that seals) first; the others still open during a
    /// rotation. Never empty. Each entry is a public salt, not the key: the key is derived
    /// from it and the CA key (`gossip::key_material`), so it never travels in the state.
    pub gossip_keys: Vec<Secret>,
    /// The rotation count of each role's join secret. The secrets themselves are derived from
    /// the CA key (only managers can compute them), so they never travel in the state.
    #[serde(default)]
    pub join_epochs: JoinEpochs,
}

/// How often each role's join token has been rotated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinEpochs {
    pub worker: u64,
    pub manager: u64,
}

/// A namespace attached to a network on its owner node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub network: String,
    pub address: Ipv4Addr,
    pub service: Option<String>,
    pub task: Option<String>,
    /// Being detached with a grace period: no new flows, open ones continue until it goes.
    #[serde(default)]
    pub terminating: bool,
    /// More names of the endpoint on its network (`attach --alias`, podman's and Docker's
    /// `--network-alias`): each resolves to every endpoint holding it, scoped like task names.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Whether the task is ready for new flows (see [`Health`]).
    #[serde(default)]
    pub health: Health,
}

/// A task's readiness, as its runtime (Docker's HEALTHCHECK), an operator (`meshctl task
/// health`) or a probe says. Only a healthy task takes new flows and is in its service's DNS
/// answers; open connections to a task that turns unhealthy are kept (as for a terminating
/// task). With no source, a task is healthy from its attach, as before health existed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    #[default]
    Healthy,
    /// Not yet ready (attached with `--health starting`, or a Docker container whose health
    /// check has not passed yet).
    Starting,
    Unhealthy,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Healthy => "healthy",
            Health::Starting => "starting",
            Health::Unhealthy => "unhealthy",
        })
    }
}

impl FromStr for Health {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "healthy" => Ok(Health::Healthy),
            "starting" => Ok(Health::Starting),
            "unhealthy" => Ok(Health::Unhealthy),
            other => Err(format!("unknown health {other:?} (healthy, starting or unhealthy)")),
        }
    }
}

/// An overlay network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub subnet: ipnet::Ipv4Net,
    /// VXLAN network identifier, derived from the name (see `network::plan`).
    pub vni: u32,
    /// `--gateway`, `--ip-range`, `--aux-address`, `--internal`, `--opt mtu`, `--label`.
    #[serde(default)]
    pub options: super::network_options::NetworkOptions,
}

/// A node's claim on a block of a network's addresses; it hands out addresses from its own
/// blocks only, so two nodes never pick the same address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockClaim {
    pub owner: NodeId,
}

/// How a service is reached: through a VIP balanced in eBPF, or by DNS round robin over its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointMode {
    Vip,
    Dnsrr,
}

impl fmt::Display for EndpointMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndpointMode::Vip => "vip",
            EndpointMode::Dnsrr => "dnsrr",
        })
    }
}

/// The transport of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// Where a published port answers (Docker's `mode=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishMode {
    /// The routing mesh: every node answers and sends to a task anywhere.
    #[default]
    Ingress,
    /// Only the nodes that run a task answer, and each sends only to its own tasks.
    Host,
}

impl fmt::Display for PublishMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PublishMode::Ingress => "ingress",
            PublishMode::Host => "host",
        })
    }
}

/// A port, or a range of ports, published on the nodes' addresses and forwarded to `target` on
/// the service's tasks. Written `PUBLISHED:TARGET/PROTOCOL` (as Swarm does) when it answers on
/// every address in ingress mode, else in Docker's long syntax; `service::ports` parses both.
/// A range is one record (`count` ports from `published`, to `count` ports from `target`), so
/// a service's record stays small enough to gossip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublishedPort {
    pub published: u16,
    pub target: u16,
    pub protocol: Protocol,
    /// How many ports from `published` (and from `target`): 1 for a single port.
    #[serde(default = "one")]
    pub count: u16,
    /// Ingress (the routing mesh) or host (only where a task runs, to it).
    #[serde(default)]
    pub mode: PublishMode,
    /// Only the node addresses inside this network answer (an exact address is a /32;
    /// 127.0.0.1 is the node's own clients only). None: every address of the node.
    #[serde(default)]
    pub address: Option<ipnet::Ipv4Net>,
}

fn one() -> u16 {
    1
}

/// At most this many ports per service (a range counts each of its ports): each is a kernel map
/// entry per node address it answers on (md_frontends_v2 holds MD_FRONTENDS_MAX = 16384 for all
/// services together) and a reserved local port on every node, so one service cannot take a
/// node's whole table or its port space. Docker sets no limit; 1024 covers the ranges people
/// publish (RTP, passive FTP) with room to spare.
pub const MAX_PUBLISHED_PORTS: usize = 1024;
/// At most this many `--publish` entries (ports or ranges) per service: the record rides in a
/// gossip datagram (1400 bytes), and an entry with an address takes up to 17 bytes there.
pub const MAX_PUBLISH_ENTRIES: usize = 32;

impl PublishedPort {
    /// A single ingress port on every address (the short syntax without a range).
    pub fn single(published: u16, target: u16, protocol: Protocol) -> PublishedPort {
        PublishedPort { published, target, protocol, count: 1, mode: PublishMode::Ingress, address: None }
    }

    /// The last published port of the range.
    pub fn last(&self) -> u32 {
        u32::from(self.published) + u32::from(self.count.max(1)) - 1
    }

    /// Every (published, target) pair of the range.
    pub fn pairs(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        (0..self.count.max(1)).map(|i| (self.published.wrapping_add(i), self.target.wrapping_add(i)))
    }

    /// Whether `port`/`protocol` is one of this range's published ports.
    pub fn publishes(&self, port: u16, protocol: Protocol) -> bool {
        self.protocol == protocol && self.published <= port && u32::from(port) <= self.last()
    }

    /// The target of published port `port` (one of this range's).
    pub fn target_of(&self, port: u16) -> u16 {
        self.target.wrapping_add(port.wrapping_sub(self.published))
    }

    /// Whether two entries cannot both be served: a port in common, the same protocol, on
    /// addresses that may overlap (no address is every address).
    pub fn conflicts(&self, other: &PublishedPort) -> bool {
        self.protocol == other.protocol
            && u32::from(self.published) <= other.last()
            && u32::from(other.published) <= self.last()
            && match (self.address, other.address) {
                (Some(a), Some(b)) => a.contains(&b.network()) || b.contains(&a.network()),
                _ => true,
            }
    }

    /// Whether node address `addr` answers on this port.
    pub fn answers_on(&self, addr: Ipv4Addr) -> bool {
        self.address.is_none_or(|net| net.contains(&addr))
    }
}

impl fmt::Display for PublishedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = |f: &mut fmt::Formatter<'_>, first: u16| {
            if self.count > 1 {
                write!(f, "{first}-{}", u32::from(first) + u32::from(self.count) - 1)
            } else {
                write!(f, "{first}")
            }
        };
        if self.mode == PublishMode::Ingress && self.address.is_none() {
            range(f, self.published)?;
            f.write_str(":")?;
            range(f, self.target)?;
            return write!(f, "/{}", self.protocol);
        }
        f.write_str("published=")?;
        range(f, self.published)?;
        f.write_str(",target=")?;
        range(f, self.target)?;
        write!(f, ",protocol={},mode={}", self.protocol, self.mode)?;
        match self.address {
            Some(net) if net.prefix_len() == 32 => write!(f, ",address={}", net.addr()),
            Some(net) => write!(f, ",address={net}"),
            None => Ok(()),
        }
    }
}

/// A service: a name, a network, (in vip mode) a virtual address on it, and published ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub network: String,
    pub mode: EndpointMode,
    pub vip: Option<Ipv4Addr>,
    /// Ports every node answers on (vip mode only). Defaults to none in state files written
    /// before ports existed.
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
}

impl FromStr for EndpointMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "vip" => Ok(EndpointMode::Vip),
            "dnsrr" => Ok(EndpointMode::Dnsrr),
            other => Err(format!("unknown endpoint mode {other:?} (vip or dnsrr)")),
        }
    }
}

/// Whether a node takes new work: `drain` takes its tasks out of every load-balancing table
/// and service name (Swarm's `node update --availability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Active,
    Drain,
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Availability::Active => "active",
            Availability::Drain => "drain",
        })
    }
}

impl FromStr for Availability {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "active" => Ok(Availability::Active),
            "drain" => Ok(Availability::Drain),
            other => Err(format!("unknown availability {other:?} (active or drain)")),
        }
    }
}

/// What a node may do: a manager writes cluster-wide records (networks, services, roles,
/// secrets, removals) and admits new nodes; a worker writes only its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Worker,
    Manager,
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "worker" => Ok(Role::Worker),
            "manager" => Ok(Role::Manager),
            other => Err(format!("unknown role {other:?} (worker or manager)")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Worker => "worker",
            Role::Manager => "manager",
        })
    }
}

/// A node's role, written by a manager (`node promote`, `node demote`, or when a node joins
/// with a manager token). A node without one is a worker, unless it founded the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRecord {
    pub role: Role,
    /// A demoted manager: the cluster-wide records it wrote while it was one stay valid.
    #[serde(default)]
    pub previously_manager: bool,
}

/// A node removed from the cluster (`node rm`): its certificate is revoked, everything it
/// wrote leaves the state, and nothing it signs is accepted again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The manager that removed it.
    pub by: NodeId,
}

/// What a manager says of the managers' Raft group, as it sees it: the leader it follows (or is)
/// and in which term, and the group's voters. Written by that manager only; `node ls` builds
/// MANAGER STATUS from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerStatus {
    pub term: u64,
    pub leader: Option<NodeId>,
    pub voters: Vec<NodeId>,
}

/// Liveness of a node as membership sees it; decides what of its entries is visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Suspect,
    Down,
    Left,
}

impl Liveness {
    /// Alive or only suspect: its tasks still take traffic (suspicion alone never drops them).
    pub fn is_up(self) -> bool {
        matches!(self, Liveness::Alive | Liveness::Suspect)
    }
}
