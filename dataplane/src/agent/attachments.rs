//! Attaching a namespace to a network (an address, a veth pair wired into it, the endpoint
//! written to the cluster state, DNS served inside it) and detaching it again, at once or after a
//! grace period during which its tasks finish their open flows. What was attached is kept in
//! `attachments.json`, so an agent restart finds its veths again.
//!
//! An attachment may carry an owner key (a CNI runtime's container and interface, a Docker
//! endpoint): the runtime finds, checks and releases it by that key, also when the namespace is
//! already gone ([`super::owners`]).

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{netns, Agent, AgentError, Inner};
use crate::netlink::links::LinkError;
use crate::netlink::veth::VethSpec;
use crate::network::attachment::DnsPlacement;
use crate::network::{ifname, LocalAttachment};
use crate::service::plan;
use crate::state::{claims, Change, EndpointRecord, Health};
use crate::state_dir::{StateDir, StateDirError};

const ATTACHMENTS_FILE: &str = "attachments.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct AttachmentsFile {
    attachments: Vec<LocalAttachment>,
    /// Addresses held for an owner before its attachment exists (Docker's IPAM asks for the
    /// address before the endpoint is made).
    #[serde(default)]
    reservations: BTreeMap<String, Reservation>,
}

/// An address held for an owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub network: String,
    pub address: Ipv4Addr,
}

/// How a namespace is attached, beyond the network.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// Make the endpoint a task of this service.
    pub service: Option<String>,
    /// The task's name (resolvable by DNS).
    pub task: Option<String>,
    /// Write /etc/netns/NAME/resolv.conf for a named namespace.
    pub resolv_conf: bool,
    /// The interface's name inside the namespace (None: the first free `ethN`).
    pub interface: Option<String>,
    /// Who the attachment belongs to (see [`LocalAttachment::owner`]).
    pub owner: Option<String>,
    /// More names of the endpoint on its network (`--alias`, `--network-alias`).
    pub aliases: Vec<String>,
    /// The task's health from its attach (`--health starting`: no new flows until it is
    /// marked healthy).
    pub health: Health,
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
        let options = AttachOptions { service, task, resolv_conf, ..AttachOptions::default() };
        let attached = self.attach_with(netns, network_name, options).await?;
        Ok((attached.address, attached.container_ifname))
    }

    /// Attaches the namespace at `netns` to `network` as `options` say; returns the attachment.
    /// With an owner that already has an attachment: the same namespace and network get that
    /// attachment back (a repeated ADD), anything else replaces it (a stale one, say of a
    /// container restarted in a new namespace while meshd missed the DEL).
    pub async fn attach_with(
        &self,
        netns: &str,
        network_name: &str,
        options: AttachOptions,
    ) -> Result<LocalAttachment, AgentError> {
        if let Some(task) = &options.task {
            crate::name_rules::check(crate::name_rules::NameKind::Task, task)?;
        }
        for alias in &options.aliases {
            crate::name_rules::check(crate::name_rules::NameKind::Task, alias)?;
        }
        if options.aliases.len() > crate::state::validate::MAX_ALIASES {
            return Err(AgentError::BadRequest(format!(
                "at most {} aliases per endpoint",
                crate::state::validate::MAX_ALIASES
            )));
        }
        let path = netns::resolve(netns)?;
        if let Some(name) = &options.interface {
            ifname::validate(name).map_err(AgentError::BadRequest)?;
        }
        if let Some(owner) = &options.owner {
            super::owner_key::validate(owner)?;
            let existing =
                self.inner.lock().await.attachments.iter().find(|a| a.owner.as_ref() == Some(owner)).cloned();
            if let Some(existing) = existing {
                if netns::same(&existing.netns, &path) && existing.network == network_name {
                    return Ok(existing);
                }
                tracing::info!(owner, netns = %existing.netns.display(), "replacing a stale attachment");
                self.release(owner, Duration::ZERO).await?;
            }
        }
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
        if let Some(service) = &options.service {
            plan::check_task(&snapshot.state, service, network_name)?;
        }
        if claims::live_endpoints_of(&snapshot.state, &self.node_id) >= claims::MAX_ENDPOINTS_PER_NODE {
            return Err(AgentError::NodeFull(claims::MAX_ENDPOINTS_PER_NODE));
        }
        let address = self.choose_address(&mut inner, network_name, &record).await?;

        let id = random_id();
        let spec = VethSpec {
            netns: path.clone(),
            host_ifname: format!("md{}", &id[..8]),
            address,
            prefix_len: record.subnet.prefix_len(),
            gateway: record.gateway(),
            // A network's MTU above this node's overlay MTU (a node with a smaller underlay than
            // the one that created it) is clamped: the packet must fit the node's VXLAN.
            mtu: record.container_mtu(self.mtu),
            container_ifname: options.interface.clone(),
        };
        let attached = self.links.wire(&spec).await.map_err(|error| match error {
            // The runtime's name is taken: not the kernel's fault, and not transient.
            LinkError::Taken { .. } => AgentError::BadRequest(error.to_string()),
            other => other.into(),
        })?;
        let attachment = LocalAttachment {
            id,
            netns: path,
            network: network_name.to_string(),
            address,
            host_ifname: spec.host_ifname.clone(),
            host_ifindex: attached.host_ifindex,
            host_mac: attached.host_mac,
            container_ifname: attached.container_ifname.clone(),
            container_mac: attached.container_mac,
            resolv_conf: options.resolv_conf,
            owner: options.owner,
            netns_id: netns::identify(&spec.netns),
            default_route: attached.default_route,
            dns: DnsPlacement::Namespace,
            netns_cookie: None,
        };
        let endpoint = EndpointRecord {
            network: network_name.to_string(),
            address,
            service: options.service,
            task: options.task,
            terminating: false,
            aliases: options.aliases,
            health: options.health,
        };
        self.commit(inner, attachment.clone(), endpoint).await?;
        tracing::info!(%address, network = network_name, netns, "attached");
        Ok(attachment)
    }

    /// The address a new attachment on `network` gets. A step of its own: how an address is
    /// chosen (a dynamic one from this node's blocks today) is policy apart from the wiring.
    async fn choose_address(
        &self,
        inner: &mut Inner,
        network: &str,
        record: &crate::state::NetworkRecord,
    ) -> Result<Ipv4Addr, AgentError> {
        self.allocate(inner, network, record).await
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
        let selected =
            |a: &LocalAttachment| netns::same(&a.netns, &path) && network.is_none_or(|n| n == a.network);
        if !grace.is_zero() {
            let marked = self.mark_terminating(&selected).await?;
            if marked > 0 {
                tracing::info!(netns, grace = ?grace, "tasks terminating");
                tokio::time::sleep(grace).await;
            }
        }
        let gone = self.remove(&selected).await?;
        if gone.is_empty() {
            let which = network.map(|n| format!(" to network {n:?}")).unwrap_or_default();
            return Err(AgentError::NotAttached(netns.to_string(), which));
        }
        tracing::info!(netns, count = gone.len(), "detached");
        Ok(gone.len())
    }

    /// Removes the attachments `selected` picks (veth, links, endpoint, DNS); returns them.
    pub(super) async fn remove(
        &self,
        selected: &(dyn Fn(&LocalAttachment) -> bool + Sync),
    ) -> Result<Vec<LocalAttachment>, AgentError> {
        let mut inner = self.inner.lock().await;
        let (gone, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut inner.attachments).into_iter().partition(|a| selected(a));
        inner.attachments = kept;
        if gone.is_empty() {
            return Ok(gone);
        }
        let mut changes = Vec::new();
        let mut failed = None;
        for attachment in &gone {
            // Every one is removed from the state even if the kernel refuses one: a stale
            // endpoint would keep receiving flows.
            if let Err(error) = inner.maps.forget_links(&attachment.host_ifname) {
                failed = Some(AgentError::from(error));
            }
            if let Err(error) = self.links.remove(&attachment.host_ifname).await {
                failed = Some(AgentError::from(error));
            }
            changes.push(Change::Endpoint { owner: self.node_id, id: attachment.id.clone(), record: None });
        }
        inner.save(&self.state_dir);
        drop(inner);
        self.gossip.write(changes).await.map_err(AgentError::Gossip)?;
        self.reconcile().await?;
        let mut namespaces: Vec<&Path> = Vec::new();
        for attachment in &gone {
            if !namespaces.contains(&attachment.netns.as_path()) {
                namespaces.push(&attachment.netns);
            }
        }
        for netns in namespaces {
            self.serve_dns(netns).await;
        }
        self.refresh_node_dns().await;
        match failed {
            Some(error) => Err(error),
            None => Ok(gone),
        }
    }

    /// Marks the endpoints of the attachments `selected` picks terminating. Returns how many.
    pub(super) async fn mark_terminating(
        &self,
        selected: &(dyn Fn(&LocalAttachment) -> bool + Sync),
    ) -> Result<usize, AgentError> {
        let ids: Vec<String> = {
            let inner = self.inner.lock().await;
            inner.attachments.iter().filter(|a| selected(a)).map(|a| a.id.clone()).collect()
        };
        let snapshot = self.gossip.snapshot();
        let changes: Vec<Change> = ids
            .into_iter()
            .filter_map(|id| {
                let mut record = snapshot.state.endpoints.get(&(self.node_id, id.clone()))?.clone();
                if record.terminating {
                    return None;
                }
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
    pub(super) async fn serve_dns(&self, netns: &Path) {
        let (networks, resolv_conf) = {
            let inner = self.inner.lock().await;
            let mine: Vec<&LocalAttachment> = inner
                .attachments
                .iter()
                .filter(|a| a.dns == DnsPlacement::Namespace && netns::same(&a.netns, netns))
                .collect();
            (mine.iter().map(|a| a.network.clone()).collect::<Vec<_>>(), mine.iter().all(|a| a.resolv_conf))
        };
        if let Err(error) = self.dns.serve(netns, networks, resolv_conf).await {
            tracing::warn!(%error, netns = %netns.display(), "cannot serve DNS in the namespace");
        }
    }
}

impl Inner {
    /// Addresses handed out on this node that the cluster state may not show yet.
    pub(super) fn pending_addresses(&self) -> HashSet<Ipv4Addr> {
        self.attachments
            .iter()
            .map(|a| a.address)
            .chain(self.reservations.values().map(|r| r.address))
            .collect()
    }

    /// Writes `attachments.json` (a failure is logged: the kernel state is what counts, and
    /// the next change writes the file again).
    pub(super) fn save(&self, state_dir: &StateDir) {
        save_attachments(state_dir, &self.attachments, &self.reservations);
    }
}

/// The attachments and reservations saved before a restart (none on a first start).
pub fn load_attachments(
    state_dir: &StateDir,
) -> Result<(Vec<LocalAttachment>, BTreeMap<String, Reservation>), StateDirError> {
    let saved: AttachmentsFile = state_dir.read_json(ATTACHMENTS_FILE)?.unwrap_or_default();
    Ok((saved.attachments, saved.reservations))
}

pub fn save_attachments(
    state_dir: &StateDir,
    attachments: &[LocalAttachment],
    reservations: &BTreeMap<String, Reservation>,
) {
    let file = AttachmentsFile { attachments: attachments.to_vec(), reservations: reservations.clone() };
    if let Err(error) = state_dir.write_json(ATTACHMENTS_FILE, &file) {
        tracing::warn!(%error, "cannot save attachments");
    }
}

/// Every namespace served at 127.0.0.11 with the networks it is on, and whether it wants a
/// resolv.conf.
pub fn scopes(attachments: &[LocalAttachment]) -> Vec<(PathBuf, Vec<String>, bool)> {
    let mut out: Vec<(PathBuf, Vec<String>, bool)> = Vec::new();
    for a in attachments.iter().filter(|a| a.dns == DnsPlacement::Namespace) {
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

pub(super) fn random_id() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    crate::util::hex::encode(&bytes)
}
