//! In-memory stand-ins for the agent's ports: each holds what the kernel (or the cluster) would
//! hold after the calls it got, and can be told to fail a step. Clones share their state, so a
//! test keeps one and hands the agent another.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use meshd_ebpf::verdict::{VerdictCounter, VerdictKey};
use tokio::sync::watch;

use crate::agent::ports::{BoxFuture, ClusterState, Decisions, Host, Links, Maps, NamespaceDns};
use crate::bpf::forwarding::{Forwarding, Touched};
use crate::bpf::{BpfError, LbView};
use crate::gossip::GossipError;
use crate::host::nftables;
use crate::identity::NodeId;
use crate::manager::{Action, Decision, ManagerError};
use crate::netlink::handover::HandoverVeth;
use crate::netlink::links::LinkError;
use crate::netlink::veth::{VethSpec, WiredVeth};
use crate::state::{Change, Delta, Snapshot, Version};

fn refused(what: &str) -> LinkError {
    LinkError::Netns { path: what.to_string(), source: std::io::Error::other("refused by the test") }
}

/// The node's links and what sits inside each namespace.
#[derive(Debug, Default)]
pub struct LinksState {
    /// Links in the node's namespace, by name: their index.
    pub node: BTreeMap<String, u32>,
    /// Interfaces inside namespaces: their addresses.
    pub inside: BTreeMap<(PathBuf, String), Vec<IpAddr>>,
    /// Node side -> the peer inside a namespace.
    pub peers: BTreeMap<String, (PathBuf, String)>,
    next_index: u32,
    pub fail_wire: bool,
    pub fail_remove: bool,
}

#[derive(Clone, Default)]
pub struct FakeLinks(pub Arc<Mutex<LinksState>>);

impl FakeLinks {
    pub fn state(&self) -> std::sync::MutexGuard<'_, LinksState> {
        self.0.lock().unwrap()
    }
}

impl LinksState {
    fn index(&mut self) -> u32 {
        self.next_index += 1;
        100 + self.next_index
    }
}

impl Links for FakeLinks {
    fn wire<'a>(&'a self, spec: &'a VethSpec) -> BoxFuture<'a, Result<WiredVeth, LinkError>> {
        Box::pin(async move {
            let mut s = self.state();
            if s.fail_wire {
                return Err(refused("wire"));
            }
            let name = match &spec.container_ifname {
                Some(name) if s.inside.contains_key(&(spec.netns.clone(), name.clone())) => {
                    return Err(LinkError::Taken {
                        name: name.clone(),
                        netns: spec.netns.display().to_string(),
                    })
                }
                Some(name) => name.clone(),
                None => (0..)
                    .map(|n| format!("eth{n}"))
                    .find(|n| !s.inside.contains_key(&(spec.netns.clone(), n.clone())))
                    .expect("a free name"),
            };
            let index = s.index();
            s.node.insert(spec.host_ifname.clone(), index);
            s.inside.insert((spec.netns.clone(), name.clone()), vec![IpAddr::V4(spec.address)]);
            s.peers.insert(spec.host_ifname.clone(), (spec.netns.clone(), name.clone()));
            Ok(WiredVeth {
                host_ifindex: index,
                host_mac: [2, 0, 0, 0, 0, index as u8],
                container_ifname: name,
                container_mac: [2, 0, 0, 0, 1, index as u8],
                default_route: true,
            })
        })
    }

    fn create_handover<'a>(
        &'a self,
        host_ifname: &'a str,
        peer_ifname: &'a str,
        _mtu: u32,
        _address: Ipv4Addr,
        mac: Option<[u8; 6]>,
    ) -> BoxFuture<'a, Result<HandoverVeth, LinkError>> {
        Box::pin(async move {
            let mut s = self.state();
            if s.fail_wire {
                return Err(refused("create"));
            }
            let host = s.index();
            let peer = s.index();
            s.node.insert(host_ifname.to_string(), host);
            s.node.insert(peer_ifname.to_string(), peer);
            Ok(HandoverVeth {
                host_ifindex: host,
                host_mac: [2, 0, 0, 0, 0, host as u8],
                peer_ifname: peer_ifname.to_string(),
                peer_mac: mac.unwrap_or([2, 0, 0, 0, 1, peer as u8]),
            })
        })
    }

    fn remove<'a>(&'a self, host_ifname: &'a str) -> BoxFuture<'a, Result<(), LinkError>> {
        Box::pin(async move {
            let mut s = self.state();
            if s.fail_remove {
                return Err(refused("remove"));
            }
            // Deleting one end deletes both.
            s.node.remove(host_ifname);
            s.node.remove(&format!("p{host_ifname}"));
            if let Some(peer) = s.peers.remove(host_ifname) {
                s.inside.remove(&peer);
            }
            Ok(())
        })
    }

    fn names(&self) -> BoxFuture<'_, Result<Vec<String>, LinkError>> {
        Box::pin(async move { Ok(self.state().node.keys().cloned().collect()) })
    }

    fn ifindex<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<u32>, LinkError>> {
        Box::pin(async move { Ok(self.state().node.get(name).copied()) })
    }

    fn addresses_in<'a>(
        &'a self,
        netns: &'a Path,
        ifname: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<IpAddr>>, LinkError>> {
        Box::pin(
            async move { Ok(self.state().inside.get(&(netns.to_path_buf(), ifname.to_string())).cloned()) },
        )
    }
}

/// The datapath: veths with programs, and the forwarding entries as last synced.
#[derive(Debug, Default)]
pub struct MapsState {
    pub programs: BTreeSet<String>,
    pub forwarding: Forwarding,
    pub syncs: usize,
    pub mesh_detached: Option<String>,
    pub fail_attach: bool,
}

#[derive(Clone, Default)]
pub struct FakeMaps(pub Arc<Mutex<MapsState>>, PathBuf);

impl FakeMaps {
    pub fn state(&self) -> std::sync::MutexGuard<'_, MapsState> {
        self.0.lock().unwrap()
    }
}

impl Maps for FakeMaps {
    fn attach_veth(&mut self, host_ifname: &str) -> Result<(), BpfError> {
        let mut s = self.state();
        if s.fail_attach {
            return Err(BpfError::MissingProgram { object: "veth", program: "refused by the test" });
        }
        s.programs.insert(host_ifname.to_string());
        Ok(())
    }

    fn forget_links(&mut self, ifname: &str) -> Result<(), BpfError> {
        self.state().programs.remove(ifname);
        Ok(())
    }

    fn sync_forwarding_touched(
        &mut self,
        desired: &Forwarding,
        _touched: &Touched,
    ) -> Result<(usize, usize), BpfError> {
        let mut s = self.state();
        s.syncs += 1;
        s.forwarding = desired.clone();
        Ok((desired.endpoints.len(), 0))
    }

    fn verdicts(&self) -> Result<BTreeMap<VerdictKey, VerdictCounter>, BpfError> {
        Ok(BTreeMap::new())
    }

    fn lb_view(&self, _vip: u32) -> Result<LbView, BpfError> {
        Err(BpfError::MissingMap { object: "fake", map: "services" })
    }

    fn pin_dir(&self) -> &Path {
        &self.1
    }

    fn detach_mesh(&mut self, underlay_ifname: &str) -> Result<(), BpfError> {
        self.state().mesh_detached = Some(underlay_ifname.to_string());
        Ok(())
    }
}

/// The node's own configuration.
#[derive(Debug, Default)]
pub struct HostState {
    pub nftables: Option<nftables::Table>,
    pub nftables_writes: usize,
    pub reserved: Option<Vec<u16>>,
    pub routes: Vec<ipnet::Ipv4Net>,
    pub addresses: Vec<IpAddr>,
    pub loopback: Vec<Ipv4Addr>,
    pub fail_nftables: bool,
}

#[derive(Clone, Default)]
pub struct FakeHost(pub Arc<Mutex<HostState>>);

impl FakeHost {
    pub fn state(&self) -> std::sync::MutexGuard<'_, HostState> {
        self.0.lock().unwrap()
    }
}

impl Host for FakeHost {
    fn apply_nftables(&self, table: &nftables::Table) -> std::io::Result<()> {
        let mut s = self.state();
        if s.fail_nftables {
            return Err(std::io::Error::other("nft refused by the test"));
        }
        s.nftables = Some(table.clone());
        s.nftables_writes += 1;
        Ok(())
    }

    fn to_node_dropped(&self) -> std::io::Result<(u64, u64)> {
        Ok((0, 0))
    }

    fn reserve_ports(&self, _base: &str, published: &[u16]) -> std::io::Result<()> {
        self.state().reserved = Some(published.to_vec());
        Ok(())
    }

    fn sync_routes<'a>(
        &'a self,
        _vxlan_ifindex: u32,
        _source: Ipv4Addr,
        subnets: &'a [ipnet::Ipv4Net],
        _previous: &'a [ipnet::Ipv4Net],
    ) -> BoxFuture<'a, Result<(), LinkError>> {
        Box::pin(async move {
            self.state().routes = subnets.to_vec();
            Ok(())
        })
    }

    fn node_addresses(&self) -> BoxFuture<'_, std::io::Result<Vec<IpAddr>>> {
        Box::pin(async move { Ok(self.state().addresses.clone()) })
    }

    fn ensure_on_loopback(&self, address: Ipv4Addr) -> BoxFuture<'_, Result<(), LinkError>> {
        Box::pin(async move {
            let mut s = self.state();
            if !s.loopback.contains(&address) {
                s.loopback.push(address);
            }
            Ok(())
        })
    }
}

/// The namespaces served DNS: their scope and whether they want a resolv.conf.
/// Namespace -> (its networks, whether it wants a resolv.conf).
type Served = BTreeMap<PathBuf, (Vec<String>, bool)>;

#[derive(Clone, Default)]
pub struct FakeDns(pub Arc<Mutex<Served>>);

impl FakeDns {
    pub fn served(&self, netns: &Path) -> Option<Vec<String>> {
        self.0.lock().unwrap().get(netns).map(|(networks, _)| networks.clone())
    }
}

impl NamespaceDns for FakeDns {
    fn serve<'a>(
        &'a self,
        netns: &'a Path,
        networks: Vec<String>,
        resolv_conf: bool,
    ) -> BoxFuture<'a, std::io::Result<()>> {
        Box::pin(async move {
            let mut served = self.0.lock().unwrap();
            if networks.is_empty() {
                served.remove(netns);
            } else {
                served.insert(netns.to_path_buf(), (networks, resolv_conf));
            }
            Ok(())
        })
    }
}

/// The cluster state as gossip would hold it: every write applied at once, as this node.
#[derive(Clone)]
pub struct FakeCluster(Arc<ClusterInner>);

struct ClusterInner {
    snapshot: watch::Sender<Arc<Snapshot>>,
    settings: crate::identity::ClusterSettings,
    node: NodeId,
    lamport: AtomicU64,
    fail_writes: AtomicBool,
}

impl FakeCluster {
    pub fn new(snapshot: Snapshot) -> FakeCluster {
        FakeCluster(Arc::new(ClusterInner {
            node: snapshot.self_id,
            snapshot: watch::Sender::new(Arc::new(snapshot)),
            lamport: AtomicU64::new(100),
            fail_writes: AtomicBool::new(false),
            settings: Default::default(),
        }))
    }

    pub fn fail_writes(&self, fail: bool) {
        self.0.fail_writes.store(fail, Ordering::Relaxed);
    }

    /// Applies `changes` as `writer` would (another node's, or the managers' mirror).
    pub fn apply(&self, writer: NodeId, changes: Vec<Change>) {
        let mut snapshot = (**self.0.snapshot.borrow()).clone();
        for change in changes {
            let lamport = self.0.lamport.fetch_add(1, Ordering::Relaxed);
            snapshot
                .state
                .apply(Delta { version: Version { lamport, node: writer }, change }, Instant::now())
                .expect("a valid change");
        }
        self.0.snapshot.send_replace(Arc::new(snapshot));
    }
}

impl ClusterState for FakeCluster {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.0.snapshot.borrow().clone()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.0.snapshot.subscribe()
    }

    fn settings(&self) -> &crate::identity::ClusterSettings {
        &self.0.settings
    }

    fn write(&self, changes: Vec<Change>) -> BoxFuture<'_, Result<(), GossipError>> {
        Box::pin(async move {
            if self.0.fail_writes.load(Ordering::Relaxed) {
                return Err(GossipError::Refused("write refused by the test".into()));
            }
            self.apply(self.0.node, changes);
            Ok(())
        })
    }
}

/// The managers: address blocks granted in order (or refused, as when the subnet is full).
#[derive(Clone, Default)]
pub struct FakeDecisions {
    next_block: Arc<AtomicU32>,
    pub refuse_blocks: Arc<AtomicBool>,
    pub grants: Arc<Mutex<Vec<(String, u32)>>>,
}

impl Decisions for FakeDecisions {
    fn require_manager(&self, _what: &'static str) -> Result<(), ManagerError> {
        Ok(())
    }

    fn decide(&self, _what: &'static str, _action: Action) -> BoxFuture<'_, Result<Decision, ManagerError>> {
        // No agent operation under test here proposes anything but blocks.
        Box::pin(async { Err(ManagerError::Refused("the test managers decide only blocks".into())) })
    }

    fn grant_block<'a>(&'a self, network: &'a str) -> BoxFuture<'a, Result<u32, ManagerError>> {
        Box::pin(async move {
            if self.refuse_blocks.load(Ordering::Relaxed) {
                return Err(ManagerError::Refused("no free address block".into()));
            }
            let index = self.next_block.fetch_add(1, Ordering::Relaxed);
            self.grants.lock().unwrap().push((network.to_string(), index));
            Ok(index)
        })
    }
}
