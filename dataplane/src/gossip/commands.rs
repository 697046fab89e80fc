//! What the gossip agent does when asked through its handle: join tokens, writes (a node's own
//! records; on the managers' leader, what they decided), and leaving. Cluster-wide records are
//! for managers: a worker answers with an error that names the managers, and changes nothing.

use std::net::SocketAddr;

use super::broadcast::lock;
use super::engine::Engine;
use super::handle::{Command, GossipError};
use super::persist;
use super::tcp;
use crate::identity::{JoinToken, NodeId, Secret};
use crate::state::{Change, Role};
use crate::trust::ca::JoinRole;

impl Engine {
    pub(super) fn handle_command(&mut self, command: Command) {
        match command {
            Command::JoinToken { role, reply } => {
                let _ = reply.send(self.join_token(role));
            }
            Command::Write { changes, reply } => {
                let result = changes.iter().try_for_each(|c| self.may_write(c));
                if result.is_ok() {
                    for change in changes {
                        self.local_write(change);
                    }
                    // Publish now, so the caller's next read of the snapshot sees its own write.
                    self.publish_if_changed();
                }
                let _ = reply.send(result);
            }
            Command::Leave { .. } | Command::Stop => unreachable!("handled in run"),
        }
    }

    /// Refuses cluster-wide changes on a worker, naming the managers.
    fn require_manager(&self, what: &'static str) -> Result<(), GossipError> {
        let state = &lock(&self.shared).state;
        if state.role_of(&self.node_id) == Role::Manager {
            return Ok(());
        }
        let mut managers: Vec<String> = state
            .nodes
            .live()
            .filter(|(id, _)| state.role_of(id) == Role::Manager)
            .map(|(_, n)| format!("{} ({})", n.name, n.gossip_addr.ip()))
            .collect();
        managers.sort();
        Err(GossipError::NotManager { what, managers: managers.join(", ") })
    }

    /// Whether this node may write `change` itself: its own records always, cluster-wide ones
    /// on a manager only.
    fn may_write(&self, change: &Change) -> Result<(), GossipError> {
        match change {
            Change::Endpoint { owner, .. } if *owner == self.node_id => Ok(()),
            Change::Node { id, .. } if *id == self.node_id => Ok(()),
            Change::Manager { id, .. } if *id == self.node_id => Ok(()),
            Change::Network { .. } => self.require_manager("create or remove networks"),
            Change::Service { .. } => self.require_manager("create or remove services"),
            _ => self.require_manager("change the cluster"),
        }
    }

    /// The join token of `role`, from the role's current secret.
    fn join_token(&mut self, role: JoinRole) -> Result<JoinToken, GossipError> {
        self.require_manager("show join tokens")?;
        let secrets = lock(&self.shared).state.secrets.get(&()).cloned().ok_or(GossipError::Stopped)?;
        let joins = self.creds.join_secrets(secrets.join_epochs).ok_or_else(|| {
            GossipError::Refused(
                "this manager does not hold the CA key yet (it is being fetched); try again".into(),
            )
        })?;
        let secret = match role {
            JoinRole::Worker => joins.worker,
            JoinRole::Manager => joins.manager,
        };
        Ok(JoinToken::new(self.creds.fingerprint(), Secret::from_bytes(secret)))
    }

    /// Leaves on purpose: tells the cluster (gossip, and a direct push to a few members so the
    /// news does not depend on luck), then forgets the cluster locally.
    pub(super) async fn leave(&mut self) -> Result<(), GossipError> {
        let record = lock(&self.shared).state.nodes.get(&self.node_id).cloned();
        let Some(mut record) = record else {
            return Err(GossipError::Refused("this node has no record in the cluster".into()));
        };
        record.left = true;
        self.local_write(Change::Node { id: self.node_id, record: Some(record) });
        let message = self.push_pull_message();
        let peers: Vec<(NodeId, SocketAddr)> = self
            .active_members()
            .iter()
            .filter(|m| m.node != self.node_id)
            .map(|m| (m.node, m.addr))
            .take(3)
            .collect();
        let tls = self.tls.load_full();
        let pushes = peers.iter().map(|(node, addr)| tcp::exchange(*addr, Some(*node), &tls, &message));
        let results = futures::future::join_all(pushes).await;
        let delivered = results.iter().filter(|r| r.is_ok()).count();
        if let Err(error) = self.foca.leave_cluster(&mut self.runtime) {
            tracing::debug!(%error, "foca leave");
        }
        self.flush().await;
        persist::forget_cluster(&self.state_dir).map_err(|e| GossipError::Refused(e.to_string()))?;
        tracing::info!(told = delivered, "left the cluster");
        Ok(())
    }
}
