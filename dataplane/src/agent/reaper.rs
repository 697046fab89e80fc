//! Attachments nobody detached: the namespace is gone (ctr never sends DEL for a container run
//! with `-d`; podman ignores a DEL that failed; Docker skips DeleteEndpoint when its driver is
//! unreachable) or the node-side veth vanished. They are released like a detach, so their
//! endpoints leave the cluster and their addresses are free again. Runs every reconcile tick.

use std::collections::HashSet;

use super::{netns, Agent, AgentError};
use crate::network::LocalAttachment;

impl Agent {
    /// Releases the attachments whose namespace or veth is gone; returns how many.
    pub async fn reap(&self) -> Result<usize, AgentError> {
        let gone: HashSet<String> = {
            // Under the lock: an attachment made meanwhile has a veth the listing would miss.
            let mut inner = self.inner.lock().await;
            if inner.attachments.is_empty() {
                return Ok(0);
            }
            // A namespace that did not exist when it was attached (Docker's) is identified once
            // it does, and from then on watched like the others.
            let mut identified = false;
            for attachment in inner.attachments.iter_mut().filter(|a| a.netns_id.is_none()) {
                attachment.netns_id = netns::identify(&attachment.netns);
                identified |= attachment.netns_id.is_some();
            }
            if identified {
                inner.save(&self.state_dir);
            }
            let names: HashSet<String> = self.links.names().await?.into_iter().collect();
            inner
                .attachments
                .iter()
                .filter(|a| netns::is_gone(&a.netns, a.netns_id) || !names.contains(&a.host_ifname))
                .map(|a| a.id.clone())
                .collect()
        };
        if gone.is_empty() {
            return Ok(0);
        }
        let removed = self.remove(&|a: &LocalAttachment| gone.contains(&a.id)).await?;
        for attachment in &removed {
            tracing::info!(
                address = %attachment.address,
                netns = %attachment.netns.display(),
                owner = attachment.owner.as_deref().unwrap_or("-"),
                "released an attachment whose namespace or veth is gone"
            );
        }
        Ok(removed.len())
    }
}
