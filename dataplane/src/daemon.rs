//! The meshd process: start-up in a fixed order, the API handler, and a shutdown that leaves the
//! kernel's state alone.
//!
//! Start-up checks everything that can be wrong with the configuration before it creates
//! anything: the advertise address must be local, the state directory usable and free. Only then
//! are bpffs, the eBPF objects and the API socket touched.
//!
//! SIGTERM and SIGINT are a restart, not a leave: the socket is removed, but pinned maps (and,
//! later, attached programs, links and routes) stay, so traffic never notices the agent going
//! away and coming back.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::api::proto::{
    ApiError, Availability, ErrorKind, NodeInfo, NodeStatus, Reply, Request, Response,
};
use crate::api::server::{ApiServer, Handler};
use crate::bpf::{bpffs, Datapath};
use crate::cluster_identity::ClusterIdentity;
use crate::config::Config;
use crate::identity::NodeId;
use crate::netlink::addresses::local_addresses;
use crate::state_dir::StateDir;

/// Runs meshd until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    check_advertise_is_local(config.advertise_addr).await?;

    let state = StateDir::open(&config.state_dir)?;
    let (node_id, new_node) = state.node_id()?;
    let (cluster, new_cluster) = ClusterIdentity::load_or_create(&state)?;
    tracing::info!(
        node = %node_id,
        name = %config.node_name,
        address = %config.advertise_addr,
        state_dir = %state.path().display(),
        new_node,
        "node identity"
    );
    if new_cluster {
        tracing::info!(fingerprint = %cluster.fingerprint(), "created a new cluster");
    }

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

    tracing::info!(socket = %server.path().display(), "API listening");
    let agent = Arc::new(Agent {
        node_id,
        config: config.clone(),
        state,
        cluster: Mutex::new(cluster),
        _datapath: datapath,
    });
    let (stop, stop_rx) = watch::channel(false);
    let api = tokio::spawn(server.serve(agent, stop_rx));

    wait_for_stop_signal().await?;
    tracing::info!("stopping; kernel state (pinned maps, attached programs) is left in place");
    let _ = stop.send(true);
    api.await.context("API task failed")?;
    Ok(())
}

async fn check_advertise_is_local(addr: IpAddr) -> anyhow::Result<()> {
    let local = local_addresses()
        .await
        .context("cannot list this namespace's addresses over rtnetlink")?;
    if local.contains(&addr) {
        return Ok(());
    }
    let mut shown: Vec<String> = local
        .iter()
        .filter(|ip| !ip.is_loopback())
        .map(|ip| ip.to_string())
        .collect();
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
    node_id: NodeId,
    config: Config,
    state: StateDir,
    cluster: Mutex<ClusterIdentity>,
    /// Held so the loaded programs and maps live as long as the agent.
    _datapath: Datapath,
}

impl Agent {
    fn nodes(&self) -> Vec<NodeInfo> {
        // Until gossip arrives, the cluster is this node.
        vec![NodeInfo {
            id: self.node_id,
            name: self.config.node_name.clone(),
            address: self.config.advertise_addr,
            status: NodeStatus::Alive,
            availability: Availability::Active,
            is_self: true,
        }]
    }

    fn join_token(&self, rotate: bool) -> Result<Reply, ApiError> {
        let internal =
            |e: &dyn std::fmt::Display| ApiError::new(ErrorKind::Internal, e.to_string());
        let mut cluster = self
            .cluster
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if rotate {
            // Rotate a copy and save it first: if saving fails, the old token stays valid everywhere.
            let mut rotated = cluster.clone();
            rotated.rotate().map_err(|e| internal(&e))?;
            rotated.save(&self.state).map_err(|e| internal(&e))?;
            *cluster = rotated;
            tracing::info!("join token rotated");
        }
        Ok(Reply::JoinToken {
            token: cluster.join_token().to_string(),
        })
    }
}

impl Handler for Agent {
    async fn handle(&self, request: Request) -> Response {
        let result = match request {
            Request::NodeLs {} => Ok(Reply::Nodes(self.nodes())),
            Request::JoinToken { rotate } => self.join_token(rotate),
        };
        match result {
            Ok(reply) => Response::Ok(reply),
            Err(error) => Response::Error(error),
        }
    }
}
