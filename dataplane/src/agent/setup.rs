//! Starting the agent: the node's VXLAN device and programs, the node-wide settings map, the
//! routing mesh's attachments, forwarding on, and the attachments of before a restart found
//! again (their veths are still there; their programs are re-attached).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use meshd_ebpf::net_order;
use meshd_ebpf::node::NodeConfig;
use meshd_ebpf::overlay::{self, OverlayConfig};
use tokio::sync::Mutex;

use super::attachments::{load_attachments, save_attachments, scopes};
use super::ports::host::NodeHost;
use super::ports::links::NodeLinks;
use super::{Agent, AgentSettings, Inner};
use crate::bpf::{cgroup, Datapath};
use crate::discovery::Discovery;
use crate::gossip::GossipHandle;
use crate::host::sysctl;
use crate::identity::NodeId;
use crate::manager::Managers;
use crate::netlink::{links, vxlan};
use crate::network::LocalAttachment;
use crate::reconcile::Reconciler;
use crate::state::Change;
use crate::state_dir::StateDir;

impl Agent {
    /// Sets up the node and starts the reconcile loop.
    pub async fn start(
        mut datapath: Datapath,
        gossip: GossipHandle,
        managers: Managers,
        node_id: NodeId,
        state_dir: Arc<StateDir>,
        advertise: IpAddr,
        settings: AgentSettings,
    ) -> anyhow::Result<Arc<Agent>> {
        let (connection, node, _) = rtnetlink::new_connection()?;
        tokio::spawn(connection);
        let IpAddr::V4(advertise_v4) = advertise else {
            anyhow::bail!(
                "the overlay needs an IPv4 --advertise-addr (IPv6 underlays are not supported yet)"
            );
        };
        let underlay = vxlan::underlay(&node, advertise)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no interface holds the advertise address {advertise}"))?;
        let mtu = underlay.mtu - vxlan::OVERHEAD;
        // The cluster's data path port (`--data-path-port` of the founder), the same everywhere.
        let data_path_port = gossip.settings().data_path_port;
        let vxlan_ifindex = vxlan::ensure_device(&node, data_path_port).await?;
        datapath.attach_vxlan(vxlan::DEVICE)?;
        let netns_cookie = cgroup::netns_cookie()
            .map_err(|e| anyhow::anyhow!("cannot read the network namespace cookie: {e}"))?;
        datapath.set_config(NodeConfig {
            vxlan_ifindex,
            node_ip: net_order::ipv4(advertise_v4),
            ct_idle_ns: settings.lb_idle_timeout.as_nanos().min(u128::from(u64::MAX)) as u64,
            netns_cookie,
            vxlan_port: net_order::port(data_path_port),
            pad16: 0,
            pad: 0,
        })?;
        // The overlay fast path (docs/overlay.md): written before the underlay program is
        // attached, and written again (on or off) at every start.
        datapath.set_overlay(OverlayConfig {
            flags: if settings.overlay_fast_path { overlay::FAST_PATH } else { 0 },
            underlay_ifindex: underlay.ifindex,
            underlay_mtu: underlay.mtu,
            pad: 0,
        })?;
        // The routing mesh: published ports on the underlay interface, and for the node's own
        // sockets (and the containers' VIPs) at the cgroup v2 root, or `--cgroup-root`.
        datapath.attach_underlay(&underlay.name)?;
        // (`--cgroup-root` was checked when the command line was read.)
        let cgroup = match &settings.cgroup_root {
            Some(dir) => dir.clone(),
            None => cgroup::cgroup2_root()
                .map_err(|e| anyhow::anyhow!("cannot find or mount the cgroup v2 hierarchy: {e}"))?,
        };
        datapath.attach_sockets(&cgroup)?;
        sysctl::enable_forwarding().map_err(|e| anyhow::anyhow!("cannot enable IPv4 forwarding: {e}"))?;

        let mut attachments = Vec::new();
        let mut dropped = Vec::new();
        let (saved, reservations) = load_attachments(&state_dir)?;
        for mut attachment in saved {
            match links::find(&node, &attachment.host_ifname).await? {
                Some(link) => {
                    attachment.host_ifindex = link.header.index;
                    datapath.attach_veth(&attachment.host_ifname)?;
                    attachments.push(attachment);
                }
                None => {
                    tracing::warn!(ifname = %attachment.host_ifname, "attached veth is gone; dropping it");
                    dropped.push(Change::Endpoint { owner: node_id, id: attachment.id, record: None });
                }
            }
        }
        if !dropped.is_empty() {
            gossip
                .write(dropped)
                .await
                .map_err(|e| anyhow::anyhow!("cannot drop vanished endpoints: {e}"))?;
        }
        remove_stray_veths(&node, &attachments).await?;
        tracing::info!(mtu, attachments = attachments.len(), "overlay ready");

        let discovery = Arc::new(Discovery::new(settings.dns));
        discovery.update(&gossip.snapshot());
        for (netns, networks, resolv_conf) in scopes(&attachments) {
            if let Err(error) = discovery.serve(&netns, networks, resolv_conf).await {
                tracing::warn!(%error, netns = %netns.display(), "cannot serve DNS in the namespace");
            }
        }
        save_attachments(&state_dir, &attachments, &reservations);
        let agent = Arc::new(Agent {
            inner: Mutex::new(Inner {
                maps: Box::new(datapath),
                attachments,
                reconciler: Reconciler::default(),
                masqueraded: None,
                routed: Vec::new(),
                node_addrs: Vec::new(),
                reserved_base: sysctl::reserved_ports().unwrap_or_default(),
                reserved: None,
                granted: BTreeSet::new(),
                reservations,
            }),
            dns: Box::new(discovery.clone()),
            discovery,
            links: Box::new(NodeLinks { node: node.clone() }),
            host: Box::new(NodeHost { node }),
            gossip: Box::new(gossip),
            managers: Box::new(managers),
            node_id,
            state_dir,
            timing: Default::default(),
            mtu,
            vxlan_ifindex,
            advertise: advertise_v4,
            underlay_ifname: underlay.name.clone(),
            node_dns: Default::default(),
            socket_lb: settings.socket_lb,
        });
        // Attachments whose namespace went while meshd was away.
        if let Err(error) = agent.reap().await {
            tracing::warn!(%error, "cannot release vanished attachments");
        }
        let looped = agent.clone();
        tokio::spawn(async move { looped.reconcile_loop().await });
        Ok(agent)
    }
}

/// Deletes veths with meshd's names (`mdXXXXXXXX`, and a peer `pmdXXXXXXXX` a runtime moved
/// back to the node) that belong to no attachment: pairs left when meshd lost track of them
/// (a Docker endpoint whose DeleteEndpoint never came while meshd was away).
async fn remove_stray_veths(node: &rtnetlink::Handle, kept: &[LocalAttachment]) -> anyhow::Result<()> {
    for name in links::names(node).await? {
        let host = name.strip_prefix('p').unwrap_or(&name);
        let ours = host.len() == 10
            && host.starts_with("md")
            && host[2..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ours && !kept.iter().any(|a| a.host_ifname == host) {
            tracing::info!(ifname = %name, "removing a stray veth");
            links::delete(node, &name).await?;
        }
    }
    Ok(())
}
