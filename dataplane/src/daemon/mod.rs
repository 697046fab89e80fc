//! The meshd process: start-up in a fixed order, the API handler, and a shutdown that leaves the
//! kernel's state alone.
//!
//! Start-up checks everything that can be wrong with the configuration before it creates
//! anything: the advertise address must be local, the state directory usable and free, the API
//! socket not served by another meshd. Only then are bpffs, the eBPF objects and the gossip
//! sockets touched, and the cluster created, joined or rejoined.
//!
//! SIGTERM and SIGINT are a restart, not a leave: the gossip state is saved, the socket removed,
//! and pinned maps (later: attached programs, links, routes) stay, so traffic never notices the
//! agent going away and coming back. `meshctl leave` is the way out of a cluster.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::api::proto::{ApiError, Counter, DatapathCounter, ErrorKind, Reply, Request, Response};
use crate::api::server::{ApiServer, Handler};
use crate::bpf::{bpffs, Datapath};
use crate::config::Config;
use crate::gossip::agent::{Exit, StartParams};
use crate::gossip::{self, GossipHandle};
use crate::netlink::addresses::local_addresses;
use crate::overlay::manager::{Overlay, OverlayError};
use crate::state_dir::StateDir;

/// Runs meshd until SIGTERM or SIGINT, or until it leaves its cluster.
pub async fn run(config: Config) -> anyhow::Result<()> {
    check_advertise_is_local(config.advertise_addr).await?;

    let state = Arc::new(StateDir::open(&config.state_dir)?);
    let (node_id, new_node) = state.node_id()?;
    tracing::info!(
        node = %node_id,
        name = %config.node_name,
        address = %config.advertise_addr,
        state_dir = %state.path().display(),
        new_node,
        "node identity"
    );

    // Claim the socket before touching the kernel: a second meshd pointed at a live socket stops
    // here, having created nothing. Requests wait in the backlog until serving starts below.
    let server = ApiServer::bind(&config.socket)?;

    let bpffs_root = PathBuf::from(bpffs::ROOT);
    if bpffs::ensure_mounted(&bpffs_root)? {
        tracing::info!(path = %bpffs_root.display(), "mounted bpffs");
    }
    let pin_dir = bpffs::node_pin_dir(&bpffs_root, &node_id);
    bpffs::create_pin_dir(&pin_dir)?;
    let datapath = Datapath::load(&pin_dir)?;
    tracing::info!(pins = %pin_dir.display(), "eBPF programs loaded and verified");

    let (gossip, mut gossip_task) = gossip::start(StartParams {
        config: config.gossip.clone(),
        node_id,
        name: config.node_name.clone(),
        advertise: SocketAddr::new(config.advertise_addr, config.listen_port),
        join: config.join.clone(),
        state_dir: state.clone(),
    })
    .await?;
    tracing::info!(port = config.listen_port, "gossip running");
    let overlay = Overlay::start(
        datapath,
        gossip.clone(),
        node_id,
        state.clone(),
        config.advertise_addr,
        config.dns.clone(),
    )
    .await?;

    tracing::info!(socket = %server.path().display(), "API listening");
    let agent = Arc::new(Agent { gossip: gossip.clone(), overlay: overlay.clone() });
    let (stop, stop_rx) = watch::channel(false);
    let api = tokio::spawn(server.serve(agent, stop_rx));

    tokio::select! {
        signal = wait_for_stop_signal() => {
            signal?;
            tracing::info!("stopping for a restart; kernel state (pinned maps, attached programs) is left in place");
            gossip.stop().await;
            let _ = (&mut gossip_task).await;
        }
        exit = &mut gossip_task => match exit.context("gossip task failed")? {
            Exit::Left => {
                // Out of the cluster, the node no longer answers for its services.
                if let Err(error) = overlay.withdraw_published_ports().await {
                    tracing::warn!(%error, "cannot detach the routing mesh");
                }
                tracing::info!("left the cluster; exiting")
            }
            Exit::Stopped => tracing::info!("gossip stopped"),
        },
    }
    let _ = stop.send(true);
    api.await.context("API task failed")?;
    Ok(())
}

async fn check_advertise_is_local(addr: IpAddr) -> anyhow::Result<()> {
    let local = local_addresses().await.context("cannot list this namespace's addresses over rtnetlink")?;
    if local.contains(&addr) {
        return Ok(());
    }
    let mut shown: Vec<String> =
        local.iter().filter(|ip| !ip.is_loopback()).map(|ip| ip.to_string()).collect();
    if shown.is_empty() {
        shown.push("none but loopback".into());
    }
    bail!(
        "--advertise-addr {addr} is not assigned to any interface in this network namespace (addresses here: {})",
        shown.join(", ")
    )
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

/// What the API handler needs of the running node.
struct Agent {
    gossip: GossipHandle,
    /// Owns the loaded programs and maps for as long as the agent runs.
    overlay: Arc<Overlay>,
}

impl Handler for Agent {
    async fn handle(&self, request: Request) -> Response {
        let result = match request {
            Request::NodeLs {} => Ok(Reply::Nodes(self.gossip.snapshot().nodes())),
            Request::JoinToken { rotate: false } => self
                .gossip
                .snapshot()
                .join_token()
                .map(|token| Reply::JoinToken { token: token.to_string() })
                .ok_or_else(|| internal("the cluster has no join secret")),
            Request::JoinToken { rotate: true } => self
                .gossip
                .rotate_join_token()
                .await
                .map(|token| Reply::JoinToken { token: token.to_string() })
                .map_err(internal),
            Request::NodeUpdate { node, availability } => self
                .gossip
                .set_availability(node, availability)
                .await
                .map(|id| Reply::NodeUpdated { id })
                .map_err(|message| ApiError::new(ErrorKind::NotFound, message)),
            Request::Leave {} => self.gossip.leave().await.map(|()| Reply::Left {}).map_err(internal),
            Request::Stats {} => match self.overlay.counters().await {
                Ok(rows) => Ok(Reply::Stats {
                    gossip: self
                        .gossip
                        .stats()
                        .snapshot()
                        .rows()
                        .into_iter()
                        .map(|(name, value)| Counter { name: name.to_string(), value })
                        .collect(),
                    datapath: rows
                        .into_iter()
                        .map(|(interface, direction, verdict, packets, bytes)| DatapathCounter {
                            interface,
                            direction,
                            verdict,
                            packets,
                            bytes,
                        })
                        .collect(),
                }),
                Err(error) => Err(overlay_error(error)),
            },
            Request::NetworkCreate { name, subnet } => self
                .overlay
                .network_create(&name, &subnet)
                .await
                .map(|n| Reply::Networks(vec![n]))
                .map_err(overlay_error),
            Request::NetworkLs {} => Ok(Reply::Networks(self.overlay.networks())),
            Request::NetworkRm { name } => {
                self.overlay.network_rm(&name).await.map(|()| Reply::Removed {}).map_err(overlay_error)
            }
            Request::Attach { netns, network, service, name, no_resolv_conf } => self
                .overlay
                .attach(&netns, &network, service, name, !no_resolv_conf)
                .await
                .map(|(address, interface)| Reply::Attached { address, interface })
                .map_err(overlay_error),
            Request::ServiceCreate { name, network, publish, endpoint_mode } => self
                .overlay
                .service_create(&name, &network, endpoint_mode, &publish)
                .await
                .map(|s| Reply::Services(vec![s]))
                .map_err(overlay_error),
            Request::ServiceLs {} => Ok(Reply::Services(self.overlay.services())),
            Request::ServiceInspect { name } => {
                self.overlay.service_inspect(&name).await.map(Reply::Inspect).map_err(overlay_error)
            }
            Request::ServicePs { name } => {
                self.overlay.service_ps(&name).map(Reply::Tasks).map_err(overlay_error)
            }
            Request::ServiceRm { name } => {
                self.overlay.service_rm(&name).await.map(|()| Reply::Removed {}).map_err(overlay_error)
            }
            Request::Detach { netns, network, grace_ms } => self
                .overlay
                .detach(&netns, network.as_deref(), std::time::Duration::from_millis(grace_ms))
                .await
                .map(|count| Reply::Detached { count })
                .map_err(overlay_error),
        };
        match result {
            Ok(reply) => Response::Ok(reply),
            Err(error) => Response::Error(error),
        }
    }
}

fn overlay_error(error: OverlayError) -> ApiError {
    use crate::overlay::network::NetworkError as N;
    use crate::overlay::service::ServiceError as S;
    let kind = match &error {
        OverlayError::Network(N::NotFound(_)) | OverlayError::NotAttached(..) | OverlayError::Netns(..) => {
            ErrorKind::NotFound
        }
        OverlayError::Network(
            N::Exists(_) | N::Overlap { .. } | N::VniCollision { .. } | N::InUse { .. },
        )
        | OverlayError::AlreadyAttached(..)
        | OverlayError::Exhausted(_) => ErrorKind::Conflict,
        OverlayError::Network(_) => ErrorKind::BadRequest,
        OverlayError::Service(S::NotFound(_) | S::NoNetwork(_)) => ErrorKind::NotFound,
        OverlayError::Service(S::Exists(_) | S::WrongNetwork { .. }) => ErrorKind::Conflict,
        OverlayError::Service(_) => ErrorKind::BadRequest,
        OverlayError::Kernel(_) | OverlayError::Gossip(_) => ErrorKind::Internal,
    };
    ApiError::new(kind, error.to_string())
}

fn internal(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Internal, message)
}
