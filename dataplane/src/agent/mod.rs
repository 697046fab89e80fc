//! The node agent: the operations behind the API (networks, services, attach, detach),
//! serialised by one lock so two requests on a node never race, and the loop that keeps the
//! kernel equal to what the cluster state says.
//!
//! - [`setup`]: what the node needs before anything is attached (VXLAN device, programs, the
//!   node-wide settings map), and the attachments found again after a restart.
//! - [`reconcile_loop`]: after every snapshot, the reconciler's answer written to the kernel
//!   (maps, nftables, reserved ports, routes) and the DNS names refreshed.
//! - [`networks`], [`services`]: create and remove, validated against the state, decided by
//!   the managers (`manager`).
//! - [`attachments`]: attach and detach namespaces (veth, address, DNS); [`allocate`]: the
//!   address they get.
//! - [`owners`]: attachments a runtime owns (CNI, Docker): found, checked and released by their
//!   owner key, and addresses reserved before the attachment exists.
//! - [`commit`]: the steps that make a wired pair an attachment, shared by both.
//! - [`handover`]: attachments whose veth the runtime moves into the container itself (Docker).
//! - [`health`]: a task's readiness (`task health`), which decides whether it takes new flows.
//! - [`reaper`]: attachments whose namespace or veth vanished without a detach.
//! - [`node_dns`]: the node's DNS address for containers whose 127.0.0.11 is not meshd's.
//! - [`counters`]: the datapath's verdict counters by interface name.
//! - [`telemetry`]: what the metrics read: reconcile timing, map fill, DNS counters.
//! - [`ports`]: the kernel and the cluster as the agent sees them (fakes in unit tests).

pub mod allocate;
pub mod attachments;
mod commit;
pub mod counters;
pub mod error;
pub mod handover;
pub mod health;
pub mod netns;
pub mod networks;
pub mod node_dns;
pub mod owner_key;
pub mod owners;
pub mod ports;
pub mod reaper;
pub mod reconcile_loop;
pub mod services;
pub mod setup;
pub mod telemetry;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Mutex;

pub use error::AgentError;

use crate::discovery::node::NodeDns;
use crate::discovery::serve::DnsSettings;
use crate::discovery::Discovery;
use crate::identity::NodeId;
use crate::network::LocalAttachment;
use crate::reconcile::Reconciler;
use crate::state::Snapshot;
use crate::state_dir::StateDir;
use ports::{ClusterState, Decisions, Host, Links, Maps, NamespaceDns};

/// What the agent is told at start.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The embedded DNS: upstream resolvers and the TTL of its own answers.
    pub dns: DnsSettings,
    /// How long an idle load-balanced flow keeps its backend.
    pub lb_idle_timeout: Duration,
    /// Encapsulate and decapsulate VXLAN in the programs (`--overlay-fast-path`).
    pub overlay_fast_path: bool,
    /// Balance the containers' connections to VIPs at connect() (`--socket-lb`).
    pub socket_lb: bool,
    /// Where the socket programs attach (`--cgroup-root`; None: the cgroup v2 root).
    pub cgroup_root: Option<std::path::PathBuf>,
}

/// What the agent changes under its lock.
struct Inner {
    maps: Box<dyn Maps>,
    attachments: Vec<LocalAttachment>,
    /// The desired forwarding state, kept between rounds (see `reconcile::incremental`).
    reconciler: Reconciler,
    /// What the nftables table was last written from (None: not written yet).
    masqueraded: Option<crate::host::nftables::Table>,
    /// Overlay subnets routed into the VXLAN device from the node itself.
    routed: Vec<ipnet::Ipv4Net>,
    /// The node's IPv4 addresses as last read (published ports answer on each).
    node_addrs: Vec<Ipv4Addr>,
    /// The node's reserved local ports before meshd added the published ones, and the
    /// published ports reserved now (None: not written yet).
    reserved_base: String,
    reserved: Option<Vec<u16>>,
    /// Address blocks the managers granted this node that gossip has not brought back yet (it
    /// does a moment later; from then on, gossip's word on them counts).
    granted: BTreeSet<(String, u32)>,
    /// Addresses held for owners whose attachment does not exist yet (see `owners`).
    reservations: BTreeMap<String, attachments::Reservation>,
}

pub struct Agent {
    inner: Mutex<Inner>,
    discovery: Arc<Discovery>,
    /// The kernel and the cluster, behind the ports of [`ports`].
    dns: Box<dyn NamespaceDns>,
    links: Box<dyn Links>,
    host: Box<dyn Host>,
    gossip: Box<dyn ClusterState>,
    managers: Box<dyn Decisions>,
    node_id: NodeId,
    state_dir: Arc<StateDir>,
    /// How long reconciling takes, and how far the kernel lags the state.
    timing: telemetry::ReconcileTiming,
    /// The MTU of overlay interfaces: the underlay's, minus VXLAN's overhead.
    mtu: u32,
    vxlan_ifindex: u32,
    advertise: Ipv4Addr,
    /// The interface the routing mesh's front door is attached to.
    underlay_ifname: String,
    /// The node's DNS address for Docker containers, once enabled (`--docker-plugin`).
    node_dns: OnceLock<NodeDns>,
    /// Whether the containers' sockets are balanced at connect() (`--socket-lb`): their
    /// namespaces' cookies are read and handed to the socket programs.
    socket_lb: bool,
}

impl Agent {
    /// The latest cluster snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.gossip.snapshot()
    }

    /// What the cluster was created with (address pools, data path port).
    pub fn cluster_settings(&self) -> &crate::identity::ClusterSettings {
        self.gossip.settings()
    }

    /// The MTU of the interfaces this node makes (the underlay's, minus VXLAN's overhead).
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// This node's ID.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }
}
