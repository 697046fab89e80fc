//! Serving the embedded DNS in every attached namespace.
//!
//! One listener per namespace (127.0.0.11:53, UDP and TCP, opened inside it), all sharing one
//! registry that is rebuilt after every snapshot ([`super::names`]) and swapped atomically
//! (readers never lock). Each listener's scope is the list of networks its namespace is
//! attached to.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use meshd_dns::fast::{FastPath, Prepared};
use meshd_dns::limits::NodeLimits;
use meshd_dns::listener::{self, Listener};
use meshd_dns::{Forwarder, MeshHandler, Registry};

use super::names;
use crate::state::Snapshot;

struct Served {
    listener: Listener,
    scope: Arc<ArcSwap<Vec<String>>>,
    /// The resolv.conf written for this namespace, if any (removed when it goes).
    resolv_conf: Option<PathBuf>,
}

/// Where the embedded DNS takes its upstream resolvers from, and how long its own answers live.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    pub resolv_conf: PathBuf,
    pub ttl: u32,
    /// UDP queries for the names meshd owns answered on the fast path (`meshd_dns::fast`);
    /// `--dns-fast-path off` leaves every query to hickory-server.
    pub fast_path: bool,
}

pub struct Discovery {
    pub(super) registry: Arc<ArcSwap<Registry>>,
    pub(super) forwarder: Arc<Forwarder>,
    resolv_conf: PathBuf,
    resolv_text: std::sync::Mutex<String>,
    pub(super) ttl: u32,
    pub(super) limits: Arc<NodeLimits>,
    /// The fast path's workers and prepared answers (None: `--dns-fast-path off`, or its threads
    /// could not start).
    fast: Option<Arc<FastPath>>,
    served: tokio::sync::Mutex<HashMap<PathBuf, Served>>,
}

impl Discovery {
    /// The forwarder every namespace's handler shares (it keeps the DNS counters).
    pub fn forwarder(&self) -> &Arc<Forwarder> {
        &self.forwarder
    }

    /// `settings.resolv_conf` names the node's upstream resolvers (re-read when it changes).
    pub fn new(settings: DnsSettings) -> Discovery {
        let DnsSettings { resolv_conf, ttl, fast_path } = settings;
        let fast = if fast_path {
            match FastPath::start(Arc::new(Prepared::default())) {
                Ok(fast) => Some(fast),
                Err(error) => {
                    tracing::warn!(%error, "DNS fast path not started: every query goes through hickory-server");
                    None
                }
            }
        } else {
            None
        };
        let text = std::fs::read_to_string(&resolv_conf).unwrap_or_default();
        let upstreams = meshd_dns::forward::parse_resolv_conf(&text);
        tracing::info!(?upstreams, path = %resolv_conf.display(), "DNS upstreams");
        Discovery {
            registry: Arc::new(ArcSwap::from_pointee(Registry::default())),
            forwarder: Arc::new(Forwarder::new(upstreams)),
            resolv_conf,
            resolv_text: std::sync::Mutex::new(text),
            ttl,
            limits: NodeLimits::new(),
            fast,
            served: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The embedded DNS's counters (forwarded, refused by a bound, ...), as (name, value).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        self.limits.counters.rows()
    }

    /// Rebuilds the names from a snapshot, and re-reads the upstreams if resolv.conf changed.
    pub fn update(&self, snapshot: &Snapshot) {
        let registry = Arc::new(names::build(snapshot));
        self.registry.store(registry.clone());
        // Until this returns, the fast path sees answers of an older registry and leaves every
        // query to the slow path, which reads the new one.
        if let Some(fast) = &self.fast {
            fast.prepared().prepare(registry, self.ttl);
        }
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
            limits: self.limits.namespace(),
        };
        let address = std::net::SocketAddr::new(meshd_dns::forward::MESH_DNS.into(), 53);
        let listener = listener::listen_with(netns, address, handler, self.fast.clone()).await?;
        let resolv_conf = if resolv_conf { write_resolv_conf(netns) } else { None };
        served.insert(netns.to_path_buf(), Served { listener, scope, resolv_conf });
        Ok(())
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
