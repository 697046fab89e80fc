//! The overlay operations behind the API (network create/ls/rm, attach, detach), serialised by
//! one lock so two requests on a node never race, and the loop that keeps the forwarding maps
//! equal to what the cluster state says.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rtnetlink::Handle;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::attach::{self, AttachSpec};
use super::ipam::{self, Plan};
use super::network::{self, NetworkError};
use super::reconcile::{self, LocalAttachment};
use super::service::{self, ServiceError};
use super::vxlan;
use crate::bpf::{BpfError, Datapath};
use crate::gossip::{GossipHandle, Snapshot};
use crate::identity::NodeId;
use crate::state::cluster::{BlockClaim, EndpointMode, EndpointRecord, Liveness, ServiceRecord};
use crate::state::Change;
use crate::state_dir::StateDir;

const ATTACHMENTS_FILE: &str = "attachments.json";
/// How long a fresh block claim must stand before its addresses are used: longer than gossip
/// takes to reach every node (docs/benchmarks.md), so a concurrent claim is seen and settled.
const CLAIM_SETTLE: Duration = Duration::from_millis(1500);

#[derive(Debug, Default, Serialize, Deserialize)]
struct AttachmentsFile {
    attachments: Vec<LocalAttachment>,
}

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("network namespace {0}: {1}")]
    Netns(String, String),
    #[error("{0} is already attached to network {1:?}")]
    AlreadyAttached(String, String),
    #[error("{0} is not attached{1}")]
    NotAttached(String, String),
    #[error("network {0:?} has no free address left on this node or in free blocks")]
    Exhausted(String),
    #[error("kernel: {0}")]
    Kernel(String),
    #[error("cluster state: {0}")]
    Gossip(String),
}

impl From<BpfError> for OverlayError {
    fn from(e: BpfError) -> Self {
        OverlayError::Kernel(e.to_string())
    }
}

impl From<crate::netlink::links::LinkError> for OverlayError {
    fn from(e: crate::netlink::links::LinkError) -> Self {
        OverlayError::Kernel(e.to_string())
    }
}

/// One row of `service ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    pub network: String,
    pub mode: EndpointMode,
    pub vip: Option<Ipv4Addr>,
    /// Healthy backends (tasks on live, active nodes) / all tasks.
    pub healthy: usize,
    pub tasks: usize,
    /// Published ports, `PUBLISHED:TARGET/PROTO`; a port another service claimed first is
    /// marked and not served.
    #[serde(default)]
    pub ports: Vec<String>,
}

/// One row of `service ps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub task: String,
    pub address: Ipv4Addr,
    pub node: String,
    /// running (receives new flows), or why not: node-down, node-drained.
    pub state: String,
}

/// `service inspect`: one VIP as this node's kernel maps hold it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInspect {
    pub name: String,
    pub vip: Option<Ipv4Addr>,
    /// Maglev table size (0: no healthy backend).
    pub table_size: u32,
    pub backends: Vec<BackendView>,
    /// Published ports as this node's kernel serves them: `ADDRESS:PORT/PROTO -> TARGET`.
    #[serde(default)]
    pub frontends: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendView {
    pub address: Ipv4Addr,
    /// Maglev slots owned, and their share of the table.
    pub slots: u32,
    pub share: f64,
    /// Flows tracked to this backend on this node.
    pub flows: u32,
}

/// One row of `network ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub name: String,
    pub subnet: String,
    pub vni: u32,
    pub gateway: Ipv4Addr,
    pub endpoints: usize,
}

struct Inner {
    datapath: Datapath,
    attachments: Vec<LocalAttachment>,
    /// The subnets the nftables table masquerades (None: the table is not written yet).
    masqueraded: Option<Vec<ipnet::Ipv4Net>>,
    /// Overlay subnets routed into the VXLAN device from the node itself.
    routed: Vec<ipnet::Ipv4Net>,
    /// The node's IPv4 addresses as last read (published ports answer on each).
    node_addrs: Vec<Ipv4Addr>,
    /// The node's reserved local ports before meshd added the published ones, and the
    /// published ports reserved now (None: not written yet).
    reserved_base: String,
    reserved: Option<Vec<u16>>,
}

pub struct Overlay {
    inner: Mutex<Inner>,
    discovery: super::discovery::Discovery,
    node: Handle,
    gossip: GossipHandle,
    node_id: NodeId,
    state_dir: Arc<StateDir>,
    mtu: u32,
    vxlan_ifindex: u32,
    advertise: Ipv4Addr,
    /// The interface the routing mesh's front door is attached to.
    underlay_ifname: String,
}

impl Overlay {
    /// Sets up the node (VXLAN device, forwarding) and starts the reconcile loop.
    pub async fn start(
        mut datapath: Datapath,
        gossip: GossipHandle,
        node_id: NodeId,
        state_dir: Arc<StateDir>,
        advertise: std::net::IpAddr,
        dns: OverlaySettings,
    ) -> anyhow::Result<Arc<Overlay>> {
        let (connection, node, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        let std::net::IpAddr::V4(advertise_v4) = advertise else {
            anyhow::bail!(
                "the overlay needs an IPv4 --advertise-addr (IPv6 underlays are not supported yet)"
            );
        };
        let underlay = vxlan::underlay(&node, advertise)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no interface holds the advertise address {advertise}"))?;
        let mtu = underlay.mtu - vxlan::OVERHEAD;
        let vxlan_ifindex = vxlan::ensure_device(&node).await?;
        datapath.attach_vxlan(vxlan::DEVICE)?;
        let netns_cookie = crate::bpf::cgroup::netns_cookie()
            .map_err(|e| anyhow::anyhow!("cannot read the network namespace cookie: {e}"))?;
        datapath.set_config(meshd_ebpf::node::NodeConfig {
            vxlan_ifindex,
            node_ip: meshd_ebpf::net_order::ipv4(advertise_v4),
            ct_idle_ns: dns.lb_idle_timeout.as_nanos().min(u128::from(u64::MAX)) as u64,
            netns_cookie,
        })?;
        // The routing mesh: published ports on the underlay interface, and for the node's own
        // sockets at the cgroup v2 root.
        datapath.attach_underlay(&underlay.name)?;
        let cgroup = crate::bpf::cgroup::cgroup2_root()
            .map_err(|e| anyhow::anyhow!("cannot find or mount the cgroup v2 hierarchy: {e}"))?;
        datapath.attach_sockets(&cgroup)?;
        vxlan::enable_forwarding().map_err(|e| anyhow::anyhow!("cannot enable IPv4 forwarding: {e}"))?;

        // Attachments from before a restart: the veths are still there; attach the programs again.
        let saved: AttachmentsFile = state_dir.read_json(ATTACHMENTS_FILE)?.unwrap_or_default();
        let mut attachments = Vec::new();
        for mut attachment in saved.attachments {
            match crate::netlink::links::find(&node, &attachment.host_ifname).await? {
                Some(link) => {
                    attachment.host_ifindex = link.header.index;
                    datapath.attach_veth(&attachment.host_ifname)?;
                    attachments.push(attachment);
                }
                None => {
                    tracing::warn!(ifname = %attachment.host_ifname, "attached veth is gone; dropping it")
                }
            }
        }
        tracing::info!(mtu, attachments = attachments.len(), "overlay ready");

        let discovery = super::discovery::Discovery::new(dns.resolv_conf, dns.ttl);
        discovery.update(&gossip.snapshot());
        for (netns, networks, resolv_conf) in scopes(&attachments) {
            if let Err(error) = discovery.serve(&netns, networks, resolv_conf).await {
                tracing::warn!(%error, netns = %netns.display(), "cannot serve DNS in the namespace");
            }
        }
        let overlay = Arc::new(Overlay {
            inner: Mutex::new(Inner {
                datapath,
                attachments,
                masqueraded: None,
                routed: Vec::new(),
                node_addrs: Vec::new(),
                reserved_base: vxlan::reserved_ports().unwrap_or_default(),
                reserved: None,
            }),
            discovery,
            node,
            gossip,
            node_id,
            state_dir,
            mtu,
            vxlan_ifindex,
            advertise: advertise_v4,
            underlay_ifname: underlay.name.clone(),
        });
        overlay.save().await;
        let looped = overlay.clone();
        tokio::spawn(async move { looped.reconcile_loop().await });
        Ok(overlay)
    }

    async fn reconcile_loop(self: Arc<Self>) {
        let mut snapshots = self.gossip.subscribe();
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                changed = snapshots.changed() => if changed.is_err() { return },
                _ = tick.tick() => {}
            }
            if let Err(error) = self.reconcile().await {
                tracing::warn!(%error, "overlay reconcile failed; retrying");
            }
        }
    }

    /// Brings the maps (and masquerade rules, and DNS names) in line with the latest snapshot.
    pub async fn reconcile(&self) -> Result<(), OverlayError> {
        let snapshot = self.gossip.snapshot();
        self.discovery.update(&snapshot);
        let node_addrs = node_ipv4_addresses().await;
        let mut inner = self.inner.lock().await;
        if let Some(addrs) = node_addrs {
            inner.node_addrs = addrs;
        }
        let mut desired = reconcile::desired(&snapshot, &inner.attachments);
        desired.frontends = reconcile::frontends(&snapshot, &inner.node_addrs);
        let (written, deleted) = inner.datapath.sync_forwarding(&desired)?;
        if written + deleted > 0 {
            tracing::debug!(written, deleted, "forwarding maps updated");
        }
        let mut subnets: Vec<ipnet::Ipv4Net> =
            snapshot.state.networks.live().map(|(_, n)| n.subnet).collect();
        subnets.sort();
        if inner.masqueraded.as_ref() != Some(&subnets) {
            vxlan::apply_nft_rules(&subnets).map_err(|e| OverlayError::Kernel(e.to_string()))?;
            inner.masqueraded = Some(subnets.clone());
        }
        let mut published: Vec<u16> =
            super::service::port_owners(&snapshot.state).keys().map(|(port, _)| *port).collect();
        published.dedup();
        if inner.reserved.as_ref() != Some(&published) {
            vxlan::reserve_ports(&inner.reserved_base, &published)
                .map_err(|e| OverlayError::Kernel(format!("cannot reserve the published ports: {e}")))?;
            inner.reserved = Some(published);
        }
        if subnets != inner.routed {
            vxlan::sync_routes(&self.node, self.vxlan_ifindex, self.advertise, &subnets, &inner.routed)
                .await?;
            inner.routed = subnets;
        }
        Ok(())
    }

    /// Detaches the routing mesh (the underlay program and the socket programs): after `leave`,
    /// the node no longer answers published ports.
    pub async fn withdraw_published_ports(&self) -> Result<(), OverlayError> {
        let mut inner = self.inner.lock().await;
        inner.datapath.detach_mesh(&self.underlay_ifname)?;
        Ok(())
    }

    pub async fn network_create(&self, name: &str, subnet: &str) -> Result<NetworkInfo, OverlayError> {
        let _serial = self.inner.lock().await;
        let record = network::plan_create(&self.gossip.snapshot().state, name, subnet)?;
        self.gossip
            .write(vec![Change::Network { name: name.to_string(), record: Some(record) }])
            .await
            .map_err(OverlayError::Gossip)?;
        drop(_serial);
        self.networks()
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| OverlayError::Gossip("lost".into()))
    }

    pub async fn network_rm(&self, name: &str) -> Result<(), OverlayError> {
        let _serial = self.inner.lock().await;
        network::plan_remove(&self.gossip.snapshot().state, name)?;
        self.gossip
            .write(vec![Change::Network { name: name.to_string(), record: None }])
            .await
            .map_err(OverlayError::Gossip)
    }

    pub fn networks(&self) -> Vec<NetworkInfo> {
        let snapshot = self.gossip.snapshot();
        snapshot
            .state
            .networks
            .live()
            .map(|(name, record)| NetworkInfo {
                name: name.clone(),
                subnet: record.subnet.to_string(),
                vni: record.vni,
                gateway: ipam::gateway(&record.subnet),
                endpoints: snapshot.state.endpoints.live().filter(|(_, e)| &e.network == name).count(),
            })
            .collect()
    }

    pub async fn service_create(
        &self,
        name: &str,
        network_name: &str,
        mode: EndpointMode,
        publish: &[String],
    ) -> Result<ServiceInfo, OverlayError> {
        let inner = self.inner.lock().await;
        let snapshot = self.gossip.snapshot();
        let ports = service::plan_create(&snapshot.state, name, network_name, mode, publish)?;
        let vip = match mode {
            EndpointMode::Dnsrr => None,
            EndpointMode::Vip => {
                let record =
                    snapshot.state.networks.get(&network_name.to_string()).cloned().expect("checked");
                Some(self.allocate(network_name, &record.subnet, &inner.attachments).await?)
            }
        };
        let record = ServiceRecord { network: network_name.to_string(), mode, vip, ports };
        self.gossip
            .write(vec![Change::Service { name: name.to_string(), record: Some(record) }])
            .await
            .map_err(OverlayError::Gossip)?;
        drop(inner);
        self.reconcile().await?;
        self.services()
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| OverlayError::Gossip("lost".into()))
    }

    pub async fn service_rm(&self, name: &str) -> Result<(), OverlayError> {
        let _serial = self.inner.lock().await;
        if self.gossip.snapshot().state.services.get(&name.to_string()).is_none() {
            return Err(ServiceError::NotFound(name.to_string()).into());
        }
        self.gossip
            .write(vec![Change::Service { name: name.to_string(), record: None }])
            .await
            .map_err(OverlayError::Gossip)
    }

    pub fn services(&self) -> Vec<ServiceInfo> {
        let snapshot = self.gossip.snapshot();
        let owners = service::port_owners(&snapshot.state);
        let ports = |name: &str, record: &ServiceRecord| -> Vec<String> {
            record
                .ports
                .iter()
                .map(|p| match owners.get(&(p.published, p.protocol)) {
                    Some(owner) if owner != name => format!("{p} (held by {owner})"),
                    _ => p.to_string(),
                })
                .collect()
        };
        snapshot
            .state
            .services
            .live()
            .map(|(name, record)| ServiceInfo {
                name: name.clone(),
                network: record.network.clone(),
                mode: record.mode,
                vip: record.vip,
                healthy: reconcile::backends(&snapshot, name).len(),
                tasks: snapshot
                    .state
                    .endpoints
                    .live()
                    .filter(|(_, e)| e.service.as_deref() == Some(name))
                    .count(),
                ports: ports(name, record),
            })
            .collect()
    }

    pub fn service_ps(&self, name: &str) -> Result<Vec<TaskInfo>, OverlayError> {
        let snapshot = self.gossip.snapshot();
        if snapshot.state.services.get(&name.to_string()).is_none() {
            return Err(ServiceError::NotFound(name.to_string()).into());
        }
        let mut tasks: Vec<TaskInfo> = snapshot
            .state
            .endpoints
            .live()
            .filter(|(_, e)| e.service.as_deref() == Some(name))
            .map(|((owner, id), e)| {
                let node =
                    snapshot.state.nodes.get(owner).map(|n| n.name.clone()).unwrap_or_else(|| owner.short());
                let state = match snapshot.liveness_of(owner) {
                    Liveness::Down | Liveness::Left => "node-down",
                    _ if snapshot.state.availability_of(owner) == crate::api::proto::Availability::Drain => {
                        "node-drained"
                    }
                    _ => "running",
                };
                TaskInfo {
                    task: e.task.clone().unwrap_or_else(|| id.clone()),
                    address: e.address,
                    node,
                    state: state.to_string(),
                }
            })
            .collect();
        tasks.sort_by(|a, b| a.task.cmp(&b.task));
        Ok(tasks)
    }

    /// The VIP's load-balancing state as this node's kernel maps hold it.
    pub async fn service_inspect(&self, name: &str) -> Result<ServiceInspect, OverlayError> {
        let snapshot = self.gossip.snapshot();
        let record = snapshot
            .state
            .services
            .get(&name.to_string())
            .cloned()
            .ok_or_else(|| ServiceError::NotFound(name.to_string()))?;
        let Some(vip) = record.vip else {
            return Ok(ServiceInspect {
                name: name.to_string(),
                vip: None,
                table_size: 0,
                backends: Vec::new(),
                frontends: Vec::new(),
            });
        };
        let view = self.inner.lock().await.datapath.lb_view(meshd_ebpf::net_order::ipv4(vip))?;
        let mut keys: Vec<u32> = view.slots.keys().chain(view.flows.keys()).copied().collect();
        keys.sort();
        keys.dedup();
        let backends = keys
            .into_iter()
            .map(|key| {
                let slots = view.slots.get(&key).copied().unwrap_or(0);
                BackendView {
                    address: meshd_ebpf::net_order::to_ipv4(key),
                    slots,
                    share: if view.table_size == 0 {
                        0.0
                    } else {
                        f64::from(slots) / f64::from(view.table_size)
                    },
                    flows: view.flows.get(&key).copied().unwrap_or(0),
                }
            })
            .collect();
        let frontends = view
            .frontends
            .iter()
            .map(|(key, frontend)| {
                format!(
                    "{}:{}/{} -> {}",
                    meshd_ebpf::net_order::to_ipv4(key.addr),
                    u16::from_be(key.port),
                    if key.proto == meshd_ebpf::mesh::PROTO_UDP { "udp" } else { "tcp" },
                    u16::from_be(frontend.target_port)
                )
            })
            .collect();
        Ok(ServiceInspect {
            name: name.to_string(),
            vip: Some(vip),
            table_size: view.table_size,
            backends,
            frontends,
        })
    }

    /// Attaches the namespace at `netns` to `network`; returns its address and interface name.
    pub async fn attach(
        &self,
        netns: &str,
        network_name: &str,
        service: Option<String>,
        task: Option<String>,
        resolv_conf: bool,
    ) -> Result<(Ipv4Addr, String), OverlayError> {
        let path = resolve_netns(netns)?;
        let mut inner = self.inner.lock().await;
        if let Some(existing) =
            inner.attachments.iter().find(|a| same_file(&a.netns, &path) && a.network == network_name)
        {
            return Err(OverlayError::AlreadyAttached(netns.to_string(), existing.network.clone()));
        }
        let snapshot = self.gossip.snapshot();
        let record = snapshot
            .state
            .networks
            .get(&network_name.to_string())
            .cloned()
            .ok_or_else(|| NetworkError::NotFound(network_name.to_string()))?;
        if let Some(service) = &service {
            service::check_task(&snapshot.state, service, network_name)?;
        }
        let address = self.allocate(network_name, &record.subnet, &inner.attachments).await?;

        let id = random_id();
        let spec = AttachSpec {
            netns: path.clone(),
            host_ifname: format!("md{}", &id[..8]),
            address,
            prefix_len: record.subnet.prefix_len(),
            gateway: ipam::gateway(&record.subnet),
            mtu: self.mtu,
        };
        let attached = attach::attach(&self.node, &spec).await?;
        if let Err(error) = inner.datapath.attach_veth(&spec.host_ifname) {
            let _ = inner.datapath.forget_links(&spec.host_ifname);
            let _ = attach::detach(&self.node, &spec.host_ifname).await;
            return Err(error.into());
        }
        let attachment = LocalAttachment {
            id: id.clone(),
            netns: path,
            network: network_name.to_string(),
            address,
            host_ifname: spec.host_ifname.clone(),
            host_ifindex: attached.host_ifindex,
            host_mac: attached.host_mac,
            container_ifname: attached.container_ifname.clone(),
            container_mac: attached.container_mac,
            resolv_conf,
        };
        inner.attachments.push(attachment);
        let endpoint =
            EndpointRecord { network: network_name.to_string(), address, service, task, terminating: false };
        let written = self
            .gossip
            .write(vec![Change::Endpoint { owner: self.node_id, id, record: Some(endpoint) }])
            .await;
        save(&self.state_dir, &inner.attachments);
        drop(inner);
        written.map_err(OverlayError::Gossip)?;
        self.reconcile().await?;
        self.serve_dns(&spec.netns).await;
        tracing::info!(%address, network = network_name, netns, "attached");
        Ok((address, attached.container_ifname))
    }

    /// Finds a free address, claiming (and settling) a new block when this node has none free.
    async fn allocate(
        &self,
        network: &str,
        subnet: &ipnet::Ipv4Net,
        attachments: &[LocalAttachment],
    ) -> Result<Ipv4Addr, OverlayError> {
        let pending: HashSet<Ipv4Addr> = attachments.iter().map(|a| a.address).collect();
        for _ in 0..5 {
            let snapshot = self.gossip.snapshot();
            match ipam::plan(&snapshot.state, self.node_id, network, subnet, &pending, rand::random()) {
                Plan::Use(address) => return Ok(address),
                Plan::Exhausted => return Err(OverlayError::Exhausted(network.to_string())),
                Plan::Claim(index) => {
                    let claim = Change::Block {
                        network: network.to_string(),
                        index,
                        claim: Some(BlockClaim { owner: self.node_id }),
                    };
                    self.gossip.write(vec![claim]).await.map_err(OverlayError::Gossip)?;
                    tokio::time::sleep(CLAIM_SETTLE).await;
                    // If another node's claim won, the next plan simply picks another block.
                }
            }
        }
        Err(OverlayError::Exhausted(network.to_string()))
    }

    /// Detaches the namespace from `network`, or from every network. Returns how many. With a
    /// grace period, its tasks are first marked terminating (no new flows, open ones continue,
    /// service names stop returning them) and removed when the grace period ends.
    pub async fn detach(
        &self,
        netns: &str,
        network: Option<&str>,
        grace: Duration,
    ) -> Result<usize, OverlayError> {
        let path = resolve_netns(netns)?;
        if !grace.is_zero() {
            let marked = self.mark_terminating(&path, network).await?;
            if marked > 0 {
                tracing::info!(netns, grace = ?grace, "tasks terminating");
                tokio::time::sleep(grace).await;
            }
        }
        let mut inner = self.inner.lock().await;
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut inner.attachments)
            .into_iter()
            .partition(|a| same_file(&a.netns, &path) && network.is_none_or(|n| n == a.network));
        inner.attachments = kept;
        if gone.is_empty() {
            let which = network.map(|n| format!(" to network {n:?}")).unwrap_or_default();
            return Err(OverlayError::NotAttached(netns.to_string(), which));
        }
        let mut changes = Vec::new();
        for attachment in &gone {
            inner.datapath.forget_links(&attachment.host_ifname)?;
            attach::detach(&self.node, &attachment.host_ifname).await?;
            changes.push(Change::Endpoint { owner: self.node_id, id: attachment.id.clone(), record: None });
        }
        save(&self.state_dir, &inner.attachments);
        drop(inner);
        self.gossip.write(changes).await.map_err(OverlayError::Gossip)?;
        self.reconcile().await?;
        self.serve_dns(&path).await;
        tracing::info!(netns, count = gone.len(), "detached");
        Ok(gone.len())
    }

    /// Marks the endpoints of `netns` (on `network`, or all) terminating. Returns how many.
    async fn mark_terminating(&self, netns: &Path, network: Option<&str>) -> Result<usize, OverlayError> {
        let ids: Vec<String> = {
            let inner = self.inner.lock().await;
            inner
                .attachments
                .iter()
                .filter(|a| same_file(&a.netns, netns) && network.is_none_or(|n| n == a.network))
                .map(|a| a.id.clone())
                .collect()
        };
        let snapshot = self.gossip.snapshot();
        let changes: Vec<Change> = ids
            .into_iter()
            .filter_map(|id| {
                let mut record = snapshot.state.endpoints.get(&(self.node_id, id.clone()))?.clone();
                record.terminating = true;
                Some(Change::Endpoint { owner: self.node_id, id, record: Some(record) })
            })
            .collect();
        let count = changes.len();
        if count > 0 {
            self.gossip.write(changes).await.map_err(OverlayError::Gossip)?;
            self.reconcile().await?;
        }
        Ok(count)
    }

    /// Verdict counters, summed over CPUs, by interface name where known.
    pub async fn counters(&self) -> Result<Vec<(String, String, String, u64, u64)>, OverlayError> {
        let inner = self.inner.lock().await;
        let counters = inner.datapath.verdicts()?;
        let mut names: std::collections::HashMap<u32, String> =
            inner.attachments.iter().map(|a| (a.host_ifindex, a.host_ifname.clone())).collect();
        names.insert(self.vxlan_ifindex, vxlan::DEVICE.to_string());
        Ok(counters
            .iter()
            .map(|(key, value)| {
                (
                    names.get(&key.ifindex).cloned().unwrap_or_else(|| format!("if{}", key.ifindex)),
                    meshd_ebpf::verdict::Direction::from_code(key.dir).to_string(),
                    meshd_ebpf::verdict::Reason::from_code(key.reason).to_string(),
                    value.packets,
                    value.bytes,
                )
            })
            .collect())
    }

    /// Serves DNS in `netns` for the networks it is attached to now (none: stops serving).
    async fn serve_dns(&self, netns: &Path) {
        let (networks, resolv_conf) = {
            let inner = self.inner.lock().await;
            let mine: Vec<&LocalAttachment> =
                inner.attachments.iter().filter(|a| same_file(&a.netns, netns)).collect();
            (mine.iter().map(|a| a.network.clone()).collect::<Vec<_>>(), mine.iter().all(|a| a.resolv_conf))
        };
        if let Err(error) = self.discovery.serve(netns, networks, resolv_conf).await {
            tracing::warn!(%error, netns = %netns.display(), "cannot serve DNS in the namespace");
        }
    }

    async fn save(&self) {
        save(&self.state_dir, &self.inner.lock().await.attachments);
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.gossip.snapshot()
    }
}

/// Settings of the overlay's services: where the embedded DNS takes its upstreams from, how
/// long its answers live, and how long an idle load-balanced flow keeps its backend.
#[derive(Debug, Clone)]
pub struct OverlaySettings {
    pub resolv_conf: PathBuf,
    pub ttl: u32,
    pub lb_idle_timeout: Duration,
}

/// Every attached namespace with the networks it is on, and whether it wants a resolv.conf.
/// The node's IPv4 addresses (published ports answer on each). None when they cannot be read
/// (logged): the caller keeps the last list, and the next reconcile tries again.
async fn node_ipv4_addresses() -> Option<Vec<Ipv4Addr>> {
    match crate::netlink::addresses::local_addresses().await {
        Ok(addrs) => Some(
            addrs
                .into_iter()
                .filter_map(|a| match a {
                    std::net::IpAddr::V4(v4) => Some(v4),
                    std::net::IpAddr::V6(_) => None,
                })
                .collect(),
        ),
        Err(error) => {
            tracing::warn!(%error, "cannot list the node's addresses");
            None
        }
    }
}

fn scopes(attachments: &[LocalAttachment]) -> Vec<(PathBuf, Vec<String>, bool)> {
    let mut out: Vec<(PathBuf, Vec<String>, bool)> = Vec::new();
    for a in attachments {
        match out.iter_mut().find(|(ns, _, _)| same_file(ns, &a.netns)) {
            Some((_, networks, resolv)) => {
                networks.push(a.network.clone());
                *resolv &= a.resolv_conf;
            }
            None => out.push((a.netns.clone(), vec![a.network.clone()], a.resolv_conf)),
        }
    }
    out
}

fn save(state_dir: &StateDir, attachments: &[LocalAttachment]) {
    let file = AttachmentsFile { attachments: attachments.to_vec() };
    if let Err(error) = state_dir.write_json(ATTACHMENTS_FILE, &file) {
        tracing::warn!(%error, "cannot save attachments");
    }
}

/// `NAME` means `/run/netns/NAME`; anything with a slash is a path. It must exist.
fn resolve_netns(netns: &str) -> Result<PathBuf, OverlayError> {
    if netns.is_empty() {
        return Err(OverlayError::Netns(netns.into(), "empty name".into()));
    }
    let path = if netns.contains('/') { PathBuf::from(netns) } else { Path::new("/run/netns").join(netns) };
    std::fs::metadata(&path).map_err(|e| OverlayError::Netns(path.display().to_string(), e.to_string()))?;
    Ok(path)
}

/// Whether two paths name the same namespace (same device and inode), whatever the spelling.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => a == b,
    }
}

fn random_id() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    crate::hex::encode(&bytes)
}
