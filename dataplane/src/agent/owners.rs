//! Attachments a runtime owns, by owner key: a CNI runtime's `(container, interface)` or a
//! Docker endpoint. The runtime lists, checks and releases them by that key, which works when
//! the namespace is already gone (ctr's DEL has no namespace, podman's DEL may come late), and
//! repeats safely (a second release finds nothing and is not an error).
//!
//! Addresses may be reserved for an owner before its attachment exists: Docker's IPAM hands out
//! the address first and creates the endpoint afterwards.

use std::net::IpAddr;
use std::time::Duration;

use super::attachments::Reservation;
use super::owner_key::validate;
use super::{netns, Agent, AgentError};
use crate::network::LocalAttachment;
use crate::state::{Change, EndpointRecord};

impl Agent {
    /// Releases the attachments owned by `owner`, after `grace` during which they are
    /// terminating (as `detach --grace`). Returns how many there were: 0 is not an error.
    pub async fn release(&self, owner: &str, grace: Duration) -> Result<usize, AgentError> {
        validate(owner)?;
        let selected = |a: &LocalAttachment| a.owner.as_deref() == Some(owner);
        if !grace.is_zero() && self.mark_terminating(&selected).await? > 0 {
            tracing::info!(owner, grace = ?grace, "tasks terminating");
            tokio::time::sleep(grace).await;
        }
        let gone = self.remove(&selected).await?;
        if !gone.is_empty() {
            tracing::info!(owner, count = gone.len(), "released");
        }
        Ok(gone.len())
    }

    /// Marks the endpoints of `owner` terminating (no new flows, service names stop returning
    /// them); they stay until released. Returns how many were marked.
    pub async fn drain(&self, owner: &str) -> Result<usize, AgentError> {
        self.mark_terminating(&|a: &LocalAttachment| a.owner.as_deref() == Some(owner)).await
    }

    /// The attachments whose owner starts with `prefix` (all with None).
    pub async fn owned(&self, prefix: Option<&str>) -> Vec<LocalAttachment> {
        let inner = self.inner.lock().await;
        inner
            .attachments
            .iter()
            .filter(|a| match (prefix, &a.owner) {
                (None, _) => true,
                (Some(prefix), Some(owner)) => owner.starts_with(prefix),
                (Some(_), None) => false,
            })
            .cloned()
            .collect()
    }

    /// Checks that `owner`'s attachment is whole: its endpoint in the cluster state, its veth on
    /// the node, its namespace there, and (when meshd moved the interface itself) the interface
    /// in the namespace with its address.
    pub async fn check(&self, owner: &str) -> Result<LocalAttachment, AgentError> {
        let attachment = self
            .owned(Some(owner))
            .await
            .into_iter()
            .find(|a| a.owner.as_deref() == Some(owner))
            .ok_or_else(|| AgentError::NotOwned(owner.to_string()))?;
        let problem = |problem: String| AgentError::Check { owner: owner.to_string(), problem };
        if self.gossip.snapshot().state.endpoints.get(&(self.node_id, attachment.id.clone())).is_none() {
            return Err(problem("its endpoint is not in the cluster state".into()));
        }
        if netns::is_gone(&attachment.netns, attachment.netns_id) {
            return Err(problem(format!("network namespace {} is gone", attachment.netns.display())));
        }
        match self.links.ifindex(&attachment.host_ifname).await? {
            Some(index) if index == attachment.host_ifindex => {}
            _ => return Err(problem(format!("the node's veth {} is gone", attachment.host_ifname))),
        }
        let Some(assigned) = self.links.addresses_in(&attachment.netns, &attachment.container_ifname).await?
        else {
            return Err(problem(format!("no interface {} in the namespace", attachment.container_ifname)));
        };
        if !assigned.contains(&IpAddr::V4(attachment.address)) {
            return Err(problem(format!(
                "interface {} does not have its address {}",
                attachment.container_ifname, attachment.address
            )));
        }
        Ok(attachment)
    }

    /// Sets the task name of `owner`'s endpoints (a runtime may learn the container's name
    /// only after it started). Returns how many changed.
    pub async fn rename_task(&self, owner: &str, task: &str) -> Result<usize, AgentError> {
        self.rewrite_endpoints(owner, |record| {
            let changed = record.task.as_deref() != Some(task);
            record.task = Some(task.to_string());
            changed
        })
        .await
    }

    /// Sets the aliases of `owner`'s endpoints (Docker's `--network-alias`, which Docker tells
    /// its API and not the driver): those that are valid names, not the task's own, at most
    /// `MAX_ALIASES`; an invalid one is left out rather than failing the container. Returns
    /// how many endpoints changed.
    pub async fn set_aliases(&self, owner: &str, aliases: &[String]) -> Result<usize, AgentError> {
        self.rewrite_endpoints(owner, |record| {
            let mut kept: Vec<String> = Vec::new();
            for alias in aliases {
                let fresh = record.task.as_ref() != Some(alias) && !kept.contains(alias);
                if fresh && crate::name_rules::check(crate::name_rules::NameKind::Task, alias).is_ok() {
                    kept.push(alias.clone());
                }
            }
            kept.truncate(crate::state::validate::MAX_ALIASES);
            let changed = record.aliases != kept;
            record.aliases = kept;
            changed
        })
        .await
    }

    /// Rewrites the endpoint records of `owner`'s attachments with `change` (which says whether
    /// it changed anything); writes those that changed. Returns how many.
    pub(super) async fn rewrite_endpoints(
        &self,
        owner: &str,
        change: impl Fn(&mut EndpointRecord) -> bool,
    ) -> Result<usize, AgentError> {
        let ids: Vec<String> = {
            let inner = self.inner.lock().await;
            inner
                .attachments
                .iter()
                .filter(|a| a.owner.as_deref() == Some(owner))
                .map(|a| a.id.clone())
                .collect()
        };
        let snapshot = self.gossip.snapshot();
        let changes: Vec<Change> = ids
            .into_iter()
            .filter_map(|id| {
                let mut record = snapshot.state.endpoints.get(&(self.node_id, id.clone()))?.clone();
                change(&mut record).then_some(Change::Endpoint {
                    owner: self.node_id,
                    id,
                    record: Some(record),
                })
            })
            .collect();
        let count = changes.len();
        if count > 0 {
            self.gossip.write(changes).await.map_err(AgentError::Gossip)?;
        }
        Ok(count)
    }

    /// Reserves an address on `network` for `owner` (the same one again if it has one).
    pub async fn reserve(&self, owner: &str, network: &str) -> Result<Reservation, AgentError> {
        validate(owner)?;
        let mut inner = self.inner.lock().await;
        if let Some(existing) = inner.reservations.get(owner) {
            if existing.network == network {
                return Ok(existing.clone());
            }
        }
        let record = self
            .gossip
            .snapshot()
            .state
            .networks
            .get(&network.to_string())
            .cloned()
            .ok_or_else(|| crate::network::NetworkError::NotFound(network.to_string()))?;
        let address = self.allocate(&mut inner, network, &record).await?;
        let reservation = Reservation { network: network.to_string(), address };
        inner.reservations.insert(owner.to_string(), reservation.clone());
        inner.save(&self.state_dir);
        Ok(reservation)
    }

    /// Drops `owner`'s reservation; whether it had one.
    pub async fn unreserve(&self, owner: &str) -> bool {
        let mut inner = self.inner.lock().await;
        let had = inner.reservations.remove(owner).is_some();
        if had {
            inner.save(&self.state_dir);
        }
        had
    }

    /// Every reservation, by owner.
    pub async fn reservations(&self) -> Vec<(String, Reservation)> {
        let inner = self.inner.lock().await;
        inner.reservations.iter().map(|(owner, r)| (owner.clone(), r.clone())).collect()
    }
}
