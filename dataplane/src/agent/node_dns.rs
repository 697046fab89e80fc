//! The node's DNS address for handed-over attachments (Docker containers): a /32 on loopback,
//! one listener, and the scope of every asker kept equal to the attachments (see
//! `discovery::node`).

use std::net::Ipv4Addr;

use super::{Agent, AgentError};
use crate::discovery::node::NodeDns;
use crate::network::attachment::DnsPlacement;

impl Agent {
    /// Puts `address` on the node and serves DNS there for handed-over attachments.
    pub async fn enable_node_dns(&self, address: Ipv4Addr) -> Result<(), AgentError> {
        self.host.ensure_on_loopback(address).await?;
        let dns = NodeDns::serve(&self.discovery, address)
            .map_err(|e| AgentError::Kernel(format!("cannot serve DNS on {address}:53: {e}")))?;
        if self.node_dns.set(dns).is_err() {
            tracing::warn!("node DNS enabled twice; keeping the first");
        }
        self.refresh_node_dns().await;
        tracing::info!(%address, "DNS for Docker containers");
        Ok(())
    }

    /// Who may ask the node's DNS, and with which networks: every handed-over attachment's
    /// address, scoped to the networks of its namespace.
    pub(super) async fn refresh_node_dns(&self) {
        let Some(dns) = self.node_dns.get() else { return };
        let inner = self.inner.lock().await;
        let node_placed: Vec<_> = inner.attachments.iter().filter(|a| a.dns == DnsPlacement::Node).collect();
        let scopes = node_placed
            .iter()
            .map(|a| {
                let networks = node_placed
                    .iter()
                    .filter(|b| b.netns == a.netns || (a.netns_id.is_some() && b.netns_id == a.netns_id))
                    .map(|b| b.network.clone())
                    .collect();
                (a.address, networks)
            })
            .collect();
        dns.set_scopes(scopes);
    }
}
