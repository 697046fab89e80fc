//! Attaching a namespace to a network (an address, a veth pair wired into it, the endpoint
//! written to the cluster state, DNS served inside it) and detaching it again, at once or after a
//! grace period during which its tasks finish their open flows. What was attached is kept in
//! `attachments.json`, so an agent restart finds its veths again.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{netns, Agent, AgentError};
use crate::netlink::veth::{self, VethSpec};
use crate::network::{ipam, LocalAttachment};
use crate::service::plan;
use crate::state::{Change, EndpointRecord};
use crate::state_dir::{StateDir, StateDirError};

const ATTACHMENTS_FILE: &str = "attachments.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct AttachmentsFile {
    attachments: Vec<LocalAttachment>,
}

impl Agent {
    /// Attaches the namespace at `netns` to `network`; returns its address and interface name.
    pub async fn attach(
        &self,
        netns: &str,
        network_name: &str,
        service: Option<String>,
        task: Option<String>,
        resolv_conf: bool,
    ) -> Result<(Ipv4Addr, String), AgentError> {
        if let Some(task) = &task {
            crate::names::check(crate::names::NameKind::Task, task)?;
        }
        let path = netns::resolve(netns)?;
        let mut inner = self.inner.lock().await;
        if let Some(existing) =
            inner.attachments.iter().find(|a| netns::same(&a.netns, &path) && a.network == network_name)
        {
            return Err(AgentError::AlreadyAttached(netns.to_string(), existing.network.clone()));
        }
        let snapshot = self.gossip.snapshot();
        let record = snapshot
            .state
            .networks
            .get(&network_name.to_string())
            .cloned()
            .ok_or_else(|| crate::network::NetworkError::NotFound(network_name.to_string()))?;
        if let Some(service) = &service {
            plan::check_task(&snapshot.state, service, network_name)?;
        }
        let address = self.allocate(network_name, &record.subnet, &inner.attachments).await?;

        let id = random_id();
        let spec = VethSpec {
            netns: path.clone(),
            host_ifname: format!("md{}", &id[..8]),
            address,
            prefix_len: record.subnet.prefix_len(),
            gateway: ipam::gateway(&record.subnet),
            mtu: self.mtu,
        };
        let attached = veth::wire(&self.node, &spec).await?;
        if let Err(error) = inner.datapath.attach_veth(&spec.host_ifname) {
            let _ = inner.datapath.forget_links(&spec.host_ifname);
            let _ = veth::unwire(&self.node, &spec.host_ifname).await;
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
        save_attachments(&self.state_dir, &inner.attachments);
        drop(inner);
        written.map_err(AgentError::Gossip)?;
        self.reconcile().await?;
        self.serve_dns(&spec.netns).await;
        tracing::info!(%address, network = network_name, netns, "attached");
        Ok((address, attached.container_ifname))
    }

    /// Detaches the namespace from `network`, or from every network. Returns how many. With a
    /// grace period, its tasks are first marked terminating (no new flows, open ones continue,
    /// service names stop returning them) and removed when the grace period ends.
    pub async fn detach(
        &self,
        netns: &str,
        network: Option<&str>,
        grace: Duration,
    ) -> Result<usize, AgentError> {
        let path = netns::resolve(netns)?;
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
            .partition(|a| netns::same(&a.netns, &path) && network.is_none_or(|n| n == a.network));
        inner.attachments = kept;
        if gone.is_empty() {
            let which = network.map(|n| format!(" to network {n:?}")).unwrap_or_default();
            return Err(AgentError::NotAttached(netns.to_string(), which));
        }
        let mut changes = Vec::new();
        for attachment in &gone {
            inner.datapath.forget_links(&attachment.host_ifname)?;
            veth::unwire(&self.node, &attachment.host_ifname).await?;
            changes.push(Change::Endpoint { owner: self.node_id, id: attachment.id.clone(), record: None });
        }
        save_attachments(&self.state_dir, &inner.attachments);
        drop(inner);
        self.gossip.write(changes).await.map_err(AgentError::Gossip)?;
        self.reconcile().await?;
        self.serve_dns(&path).await;
        tracing::info!(netns, count = gone.len(), "detached");
        Ok(gone.len())
    }

    /// Marks the endpoints of `netns` (on `network`, or all) terminating. Returns how many.
    async fn mark_terminating(&self, netns: &Path, network: Option<&str>) -> Result<usize, AgentError> {
        let ids: Vec<String> = {
            let inner = self.inner.lock().await;
            inner
                .attachments
                .iter()
                .filter(|a| netns::same(&a.netns, netns) && network.is_none_or(|n| n == a.network))
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
            self.gossip.write(changes).await.map_err(AgentError::Gossip)?;
            self.reconcile().await?;
        }
        Ok(count)
    }

    /// Serves DNS in `netns` for the networks it is attached to now (none: stops serving).
    async fn serve_dns(&self, netns: &Path) {
        let (networks, resolv_conf) = {
            let inner = self.inner.lock().await;
            let mine: Vec<&LocalAttachment> =
                inner.attachments.iter().filter(|a| netns::same(&a.netns, netns)).collect();
            (mine.iter().map(|a| a.network.clone()).collect::<Vec<_>>(), mine.iter().all(|a| a.resolv_conf))
        };
        if let Err(error) = self.discovery.serve(netns, networks, resolv_conf).await {
            tracing::warn!(%error, netns = %netns.display(), "cannot serve DNS in the namespace");
        }
    }
}

/// The attachments saved before a restart (none on a first start).
pub fn load_attachments(state_dir: &StateDir) -> Result<Vec<LocalAttachment>, StateDirError> {
    let saved: AttachmentsFile = state_dir.read_json(ATTACHMENTS_FILE)?.unwrap_or_default();
    Ok(saved.attachments)
}

pub fn save_attachments(state_dir: &StateDir, attachments: &[LocalAttachment]) {
    let file = AttachmentsFile { attachments: attachments.to_vec() };
    if let Err(error) = state_dir.write_json(ATTACHMENTS_FILE, &file) {
        tracing::warn!(%error, "cannot save attachments");
    }
}

/// Every attached namespace with the networks it is on, and whether it wants a resolv.conf.
pub fn scopes(attachments: &[LocalAttachment]) -> Vec<(PathBuf, Vec<String>, bool)> {
    let mut out: Vec<(PathBuf, Vec<String>, bool)> = Vec::new();
    for a in attachments {
        match out.iter_mut().find(|(ns, _, _)| netns::same(ns, &a.netns)) {
            Some((_, networks, resolv)) => {
                networks.push(a.network.clone());
                *resolv &= a.resolv_conf;
            }
            None => out.push((a.netns.clone(), vec![a.network.clone()], a.resolv_conf)),
        }
    }
    out
}

fn random_id() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    crate::hex::encode(&bytes)
}
