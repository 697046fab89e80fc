//! Service discovery: the embedded DNS of every attached namespace, fed from the cluster state.
//!
//! One listener per namespace (127.0.0.11:53, UDP and TCP, opened inside it), all sharing one
//! registry that is rebuilt after every snapshot and swapped atomically (readers never lock).
//! Each listener's scope is the list of networks its namespace is attached to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use meshd_dns::listener::{self, Listener};
use meshd_dns::{Forwarder, MeshHandler, Registry};

use super::reconcile;
use crate::gossip::Snapshot;
use crate::state::cluster::{EndpointMode, Liveness};

struct Served {
    listener: Listener,
    scope: Arc<ArcSwap<Vec<String>>>,
    /// The resolv.conf written for this namespace, if any (removed when it goes).
    resolv_conf: Option<PathBuf>,
}

pub struct Discovery {
    registry: Arc<ArcSwap<Registry>>,
    forwarder: Arc<Forwarder>,
    resolv_conf: PathBuf,
    resolv_text: std::sync::Mutex<String>,
    ttl: u32,
    served: tokio::sync::Mutex<HashMap<PathBuf, Served>>,
}

impl Discovery {
    /// `resolv_conf` names the node's upstream resolvers (re-read when it changes).
    pub fn new(resolv_conf: PathBuf, ttl: u32) -> Discovery {
        let text = std::fs::read_to_string(&resolv_conf).unwrap_or_default();
        let upstreams = meshd_dns::forward::parse_resolv_conf(&text);
        tracing::info!(?upstreams, path = %resolv_conf.display(), "DNS upstreams");
        Discovery {
            registry: Arc::new(ArcSwap::from_pointee(Registry::default())),
            forwarder: Arc::new(Forwarder::new(upstreams)),
            resolv_conf,
            resolv_text: std::sync::Mutex::new(text),
            ttl,
            served: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Rebuilds the names from a snapshot, and re-reads the upstreams if resolv.conf changed.
    pub fn update(&self, snapshot: &Snapshot) {
        self.registry.store(Arc::new(build(snapshot)));
        let text = std::fs::read_to_string(&self.resolv_conf).unwrap_or_default();
        let mut known = self.resolv_text.lock().unwrap_or_else(|p| p.into_inner());
        if *known != text {
            let upstreams = meshd_dns::forward::parse_resolv_conf(&text);
            tracing::info!(?upstreams, "DNS upstreams changed");
            self.forwarder.set_upstreams(upstreams);
            *known = text;
        }
    }

    /// Serves the namespace at `netns` (if not yet) with `networks` as its scope; writes its
    /// resolv.conf when `resolv_conf` says so.
    pub async fn serve(&self, netns: &Path, networks: Vec<String>, resolv_conf: bool) -> std::io::Result<()> {
        let mut served = self.served.lock().await;
        if networks.is_empty() {
            if let Some(gone) = served.remove(netns) {
                gone.listener.stop().await;
                if let Some(path) = gone.resolv_conf {
                    let _ = std::fs::remove_file(&path);
                    let _ = std::fs::remove_dir(path.parent().unwrap_or(Path::new("/")));
                }
            }
            return Ok(());
        }
        if let Some(existing) = served.get(netns) {
            existing.scope.store(Arc::new(networks));
            return Ok(());
        }
        let scope = Arc::new(ArcSwap::from_pointee(networks));
        let handler = MeshHandler {
            registry: self.registry.clone(),
            scope: scope.clone(),
            forwarder: self.forwarder.clone(),
            ttl: self.ttl,
        };
        let listener = listener::listen(netns, handler).await?;
        let resolv_conf = if resolv_conf { write_resolv_conf(netns) } else { None };
        served.insert(netns.to_path_buf(), Served { listener, scope, resolv_conf });
        Ok(())
    }

    pub fn upstreams(&self) -> Vec<SocketAddr> {
        self.forwarder.upstreams().to_vec()
    }
}

/// For a namespace named under /run/netns, `ip netns exec` bind-mounts
/// /etc/netns/NAME/resolv.conf over /etc/resolv.conf: point it at the embedded DNS.
fn write_resolv_conf(netns: &Path) -> Option<PathBuf> {
    let name = netns.strip_prefix("/run/netns").ok()?.to_str()?;
    let dir = Path::new("/etc/netns").join(name);
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join("resolv.conf");
    std::fs::write(
        &path,
        "# written by meshd: the embedded DNS of this namespace\nnameserver 127.0.0.11\noptions ndots:0\n",
    )
    .ok()?;
    Some(path)
}

/// The registry a snapshot gives: for every network, its services, `tasks.SVC` and task names,
/// from tasks whose node is alive (or suspect) and, for service names, not drained.
pub fn build(snapshot: &Snapshot) -> Registry {
    let state = &snapshot.state;
    let mut registry = Registry::default();
    for (name, _) in state.networks.live() {
        registry.add_network(name);
    }
    for ((owner, _), endpoint) in state.visible_endpoints(|n| snapshot.liveness_of(n)) {
        if matches!(snapshot.liveness_of(owner), Liveness::Down | Liveness::Left) {
            continue;
        }
        if let Some(task) = &endpoint.task {
            registry.add(&endpoint.network, task, endpoint.address);
            registry.add_reverse(&endpoint.network, endpoint.address, task);
        }
    }
    let by_service = reconcile::all_backends(snapshot);
    for (name, service) in state.services.live() {
        let backends = by_service.get(name).cloned().unwrap_or_default();
        for address in &backends {
            registry.add(&service.network, &format!("tasks.{name}"), *address);
        }
        match (service.mode, service.vip) {
            (EndpointMode::Vip, Some(vip)) => {
                registry.add(&service.network, name, vip);
                registry.add_reverse(&service.network, vip, name);
            }
            _ => {
                for address in &backends {
                    registry.add(&service.network, name, *address);
                }
            }
        }
    }
    registry
}
