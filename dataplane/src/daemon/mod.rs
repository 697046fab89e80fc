//! The meshd process: start-up in a fixed order, the API handler, and a shutdown that leaves the
//! kernel's state alone.
//!
//! Start-up checks everything that can be wrong with the configuration before it creates
//! anything: the advertise address must be local, the state directory usable and free, the API
//! socket not served by another meshd. Only then are bpffs, the eBPF objects and the gossip
//! sockets touched, and the cluster created, joined or rejoined.
//!
//! SIGTERM and SIGINT are a restart, not a leave: the gossip state is saved, the socket removed,
//! pinned maps, attached programs and their links, and routes stay, so traffic never notices the
//! agent going away and coming back. `meshctl leave` is the way out of a cluster.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use self::config::{Config, OnOff};
use self::handler::ApiHandler;
use crate::agent::{Agent, AgentSettings};
use crate::api::server::ApiServer;
use crate::bpf::{bpffs, Datapath};
use crate::docker::client::DockerApi;
use crate::docker::driver::{self, DockerDriver};
use crate::docker::server::PluginServer;
use crate::gossip::{self, Exit, StartParams};
use crate::manager::Managers;
use crate::monitor::{self, Monitor};
use crate::netlink::addresses::local_addresses;
use crate::observe::{self, Sources};
use crate::state_dir::StateDir;

pub mod config;
pub mod config_file;
pub mod handler;
pub mod logging;

/// Runs meshd until SIGTERM or SIGINT, or until it leaves its cluster.
pub async fn run(config: Config) -> anyhow::Result<()> {
    check_advertise_is_local(config.advertise_addr).await?;

    // A backup is checked whole before the state directory is touched: a damaged one changes
    // nothing.
    let restore = config
        .restore
        .as_deref()
        .map(crate::manager::backup::read)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let state = Arc::new(StateDir::open(&config.state_dir)?);
    if let Some(backup) = &restore {
        backup.restore_into(&state).map_err(anyhow::Error::msg)?;
        tracing::warn!(node = %backup.node, index = backup.index, "restored the state directory from a backup");
    }
    let (key, new_node) = state.node_key()?;
    let node_id = key.node_id();
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
    let plugin = match &config.docker {
        Some(docker) => Some(PluginServer::bind(&docker.plugin_socket)?),
        None => None,
    };
    // The metrics port likewise: a port in use fails here, before the kernel is touched.
    let metrics = match config.metrics_addr {
        Some(addr) => {
            let listener = observe::http::bind(addr)
                .await
                .with_context(|| format!("cannot listen on --metrics-addr {addr}"))?;
            if !addr.ip().is_loopback() {
                tracing::warn!(%addr, "metrics and the web view are served beyond localhost, without authentication");
            }
            Some(listener)
        }
        None => None,
    };

    let bpffs_root = PathBuf::from(bpffs::ROOT);
    if bpffs::ensure_mounted(&bpffs_root)? {
        tracing::info!(path = %bpffs_root.display(), "mounted bpffs");
    }
    let pin_dir = bpffs::node_pin_dir(&bpffs_root, &node_id);
    bpffs::create_pin_dir(&pin_dir)?;
    let mut datapath = Datapath::load(&pin_dir)?;
    tracing::info!(pins = %pin_dir.display(), "eBPF programs loaded and verified");
    let (ring, control) = datapath.take_events()?;
    let monitor = Monitor::new(Some(control), config.monitor_rate)?;

    // Encrypted networks: the node's WireGuard key and engine, before the record that names them.
    let (encryption, wireguard) = match crate::encryption::prepare(
        &state,
        &node_id,
        &pin_dir,
        config.advertise_addr,
    )
    .await
    {
        Ok((task, published)) => {
            tracing::info!(engine = %published.engine, port = published.port, "WireGuard ready for encrypted networks");
            (Some(task), Some(published))
        }
        Err(error) => {
            tracing::warn!(%error, "no WireGuard engine: encrypted networks cannot reach this node (their packets are dropped, never sent in clear)");
            (None, None)
        }
    };

    let (gossip, mut gossip_task) = gossip::start(StartParams {
        config: config.gossip.clone(),
        key,
        name: config.node_name.clone(),
        advertise: SocketAddr::new(config.advertise_addr, config.listen_port),
        join: config.join.clone(),
        state_dir: state.clone(),
        cert_validity: config.cert_expiry,
        settings: config.settings.clone(),
        wireguard,
    })
    .await?;
    tracing::info!(port = config.listen_port, "gossip running");
    if config.force_new_cluster {
        // Before this node's Raft member starts: it then starts as the only member.
        crate::manager::recovery::force_new_cluster(node_id, &gossip, &state).await?;
    }
    if let Some(task) = encryption {
        tokio::spawn(task.run(gossip.subscribe()));
    }
    let managers = Managers::start(node_id, gossip.clone(), state.clone()).await?;
    let agent = Agent::start(
        datapath,
        gossip.clone(),
        managers.clone(),
        node_id,
        state.clone(),
        config.advertise_addr,
        AgentSettings {
            dns: config.dns.clone(),
            lb_idle_timeout: config.lb_idle_timeout,
            overlay_fast_path: config.overlay_fast_path == OnOff::On,
            socket_lb: config.socket_lb == OnOff::On,
            cgroup_root: config.cgroup_root.clone(),
        },
    )
    .await?;

    tokio::spawn(monitor::reader::run(ring, monitor.clone(), gossip.clone()));

    tracing::info!(socket = %server.path().display(), "API listening");
    let handler = Arc::new(ApiHandler {
        gossip: gossip.clone(),
        managers,
        agent: agent.clone(),
        monitor: monitor.clone(),
    });
    let (stop, stop_rx) = watch::channel(false);
    let mut plugin_task = None;
    if let (Some(docker), Some(plugin)) = (&config.docker, plugin) {
        agent.enable_node_dns(docker.dns_addr).await?;
        let driver =
            Arc::new(DockerDriver::load(agent.clone(), state.clone(), docker.dns_addr, &docker.docker_host)?);
        tracing::info!(socket = %plugin.path().display(), dns = %docker.dns_addr, "Docker network driver listening");
        plugin_task = Some(tokio::spawn(plugin.serve(driver.clone(), stop_rx.clone())));
        tokio::spawn(driver::events::watch(driver, DockerApi::new(&docker.docker_host), stop_rx.clone()));
    }
    let metrics = metrics.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "metrics and web view listening");
        }
        let sources = Arc::new(Sources::new(gossip.clone(), agent.clone(), monitor.clone()));
        tokio::spawn(observe::http::serve(listener, sources, stop_rx.clone()))
    });
    let api = tokio::spawn(server.serve(handler, stop_rx));

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
                if let Err(error) = agent.withdraw_published_ports().await {
                    tracing::warn!(%error, "cannot detach the routing mesh");
                }
                tracing::info!("left the cluster; exiting")
            }
            Exit::Stopped => tracing::info!("gossip stopped"),
        },
    }
    let _ = stop.send(true);
    api.await.context("API task failed")?;
    if let Some(task) = plugin_task {
        // Its socket file goes with it: Docker then sees the plugin gone, not a dead socket.
        task.await.context("Docker plugin task failed")?;
    }
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
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
