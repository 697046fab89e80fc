//! The steps that make a wired veth pair an attachment, the same for `attach` (meshd wires the
//! namespace) and `attach_handover` (the runtime moves the peer): the veth programs on the node
//! side, the attachment recorded and saved, its endpoint written to the cluster, the maps
//! reconciled, and DNS served where the attachment asks it.

use tokio::sync::MutexGuard;

use super::{Agent, AgentError, Inner};
use crate::network::attachment::DnsPlacement;
use crate::network::LocalAttachment;
use crate::state::{Change, EndpointRecord};

impl Agent {
    /// Commits `attachment` (its pair made) with `endpoint` as its record, under the agent's
    /// lock `inner` (given up before reconciling). If the programs cannot be attached, the pair
    /// is removed and nothing else changed. Once recorded, the attachment stays even if the
    /// write or the reconcile fails: the reaper or a detach releases it like any other.
    pub(super) async fn commit(
        &self,
        mut inner: MutexGuard<'_, Inner>,
        attachment: LocalAttachment,
        endpoint: EndpointRecord,
    ) -> Result<(), AgentError> {
        if let Err(error) = inner.maps.attach_veth(&attachment.host_ifname) {
            let _ = inner.maps.forget_links(&attachment.host_ifname);
            let _ = self.links.remove(&attachment.host_ifname).await;
            return Err(error.into());
        }
        inner.attachments.push(attachment.clone());
        let written = self
            .gossip
            .write(vec![Change::Endpoint {
                owner: self.node_id,
                id: attachment.id.clone(),
                record: Some(endpoint),
            }])
            .await;
        inner.save(&self.state_dir);
        drop(inner);
        written.map_err(AgentError::Gossip)?;
        self.reconcile().await?;
        match attachment.dns {
            DnsPlacement::Namespace => self.serve_dns(&attachment.netns).await,
            DnsPlacement::Node => self.refresh_node_dns().await,
        }
        Ok(())
    }
}
