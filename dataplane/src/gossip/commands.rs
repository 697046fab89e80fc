//! What the gossip agent does when asked through its handle: join tokens, availability, roles,
//! removals, gossip keys, the agent's own writes, and leaving. Cluster-wide changes are for
//! managers: a worker answers with an error that names the managers, and changes nothing.

use std::net::SocketAddr;

use super::agent::Agent;
use super::broadcast::lock;
use super::handle::{Command, GossipError};
use super::persist;
use super::tcp;
use crate::identity::{JoinToken, NodeId, Secret};
use crate::state::{Change, ClusterSecrets, Revocation, Role, RoleRecord};
use crate::trust::ca::JoinRole;

impl Agent {
    pub(super) fn handle_command(&mut self, command: Command) {
        match command {
            Command::JoinToken { role, rotate, reply } => {
                let _ = reply.send(self.join_token(role, rotate));
            }
            Command::SetAvailability { node, availability, reply } => {
                let result =
                    self.require_manager("drain or activate a node").and_then(|()| self.resolve_node(&node));
                let result = result.inspect(|&id| {
                    self.local_write(Change::Availability { id, value: Some(availability) });
                });
                let _ = reply.send(result);
            }
            Command::SetRole { node, role, reply } => {
                let _ = reply.send(self.set_role(&node, role));
            }
            Command::Remove { node, force, reply } => {
                let _ = reply.send(self.remove(&node, force));
            }
            Command::SetGossipKeys { keys, reply } => {
                let _ = reply.send(self.set_gossip_keys(keys));
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
            Change::Block { claim: Some(claim), .. } if claim.owner == self.node_id => Ok(()),
            Change::Node { id, .. } if *id == self.node_id => Ok(()),
            Change::Network { .. } => self.require_manager("create or remove networks"),
            Change::Service { .. } => self.require_manager("create or remove services"),
            _ => self.require_manager("change the cluster"),
        }
    }

    fn resolve_node(&self, query: &str) -> Result<NodeId, GossipError> {
        if query.trim().is_empty() {
            return Err(GossipError::NotFound("give a node name or ID".into()));
        }
        self.snapshot_tx.borrow().resolve_node(query).map_err(GossipError::NotFound)
    }

    /// The join token of `role`, moved to the role's next secret first with `rotate`.
    fn join_token(&mut self, role: JoinRole, rotate: bool) -> Result<JoinToken, GossipError> {
        self.require_manager("show or rotate join tokens")?;
        let mut secrets = lock(&self.shared).state.secrets.get(&()).cloned().ok_or(GossipError::Stopped)?;
        if rotate {
            match role {
                JoinRole::Worker => secrets.join_epochs.worker += 1,
                JoinRole::Manager => secrets.join_epochs.manager += 1,
            }
            self.local_write(Change::Secrets { value: Some(secrets.clone()) });
            tracing::info!(?role, "join token rotated");
        }
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

    /// `node promote` / `node demote`.
    fn set_role(&mut self, query: &str, role: Role) -> Result<NodeId, GossipError> {
        self.require_manager("promote or demote nodes")?;
        let id = self.resolve_node(query)?;
        let state = lock(&self.shared).state.clone();
        let current = state.role_of(&id);
        if current == role {
            return Ok(id);
        }
        if role == Role::Worker && managers(&state).len() <= 1 {
            return Err(GossipError::Refused("it is the last manager: promote another node first".into()));
        }
        let record = RoleRecord { role, previously_manager: current == Role::Manager };
        self.local_write(Change::Role { id, record: Some(record) });
        tracing::info!(node = %id, %role, "role changed");
        Ok(id)
    }

    /// `node rm`: everything cluster-wide the node was the last to write is written again by
    /// this manager (so it outlives the node), then its removal is recorded: every node drops
    /// what it owned and refuses what it signs, TLS refuses its certificate. The gossip key it
    /// knew is rotated by the caller (`key_rotation`).
    fn remove(&mut self, query: &str, force: bool) -> Result<NodeId, GossipError> {
        self.require_manager("remove nodes")?;
        let id = self.resolve_node(query)?;
        if id == self.node_id {
            return Err(GossipError::Refused(
                "a node cannot remove itself: use `meshctl leave` on it".into(),
            ));
        }
        let snapshot = self.snapshot_tx.borrow().clone();
        if snapshot.liveness_of(&id).is_up() && !force {
            return Err(GossipError::Refused(format!(
                "{id} is alive: stop it (or `meshctl leave` on it) first, or remove it anyway with --force"
            )));
        }
        let state = snapshot.state.clone();
        if state.role_of(&id) == Role::Manager && managers(&state).len() <= 1 {
            return Err(GossipError::Refused("it is the last manager: promote another node first".into()));
        }
        for signed in state.dump_signed() {
            let delta = signed.delta;
            let cluster_wide = matches!(
                delta.change,
                Change::Network { .. }
                    | Change::Service { .. }
                    | Change::Availability { .. }
                    | Change::Secrets { .. }
                    | Change::Role { .. }
                    | Change::Revocation { .. }
            );
            let about_it = matches!(&delta.change, Change::Availability { id: of, .. } | Change::Role { id: of, .. } if *of == id);
            if delta.version.node == id && cluster_wide && !about_it {
                self.local_write(delta.change);
            }
        }
        self.local_write(Change::Revocation { id, record: Some(Revocation { by: self.node_id }) });
        tracing::info!(node = %id, "node removed: its certificate is revoked cluster-wide");
        Ok(id)
    }

    /// One step of a key rotation: the gossip keys, primary first.
    fn set_gossip_keys(&mut self, keys: Vec<Secret>) -> Result<(), GossipError> {
        self.require_manager("rotate the gossip key")?;
        let current = lock(&self.shared).state.secrets.get(&()).cloned().ok_or(GossipError::Stopped)?;
        if keys.is_empty() {
            return Err(GossipError::Refused("the cluster needs at least one gossip key".into()));
        }
        self.local_write(Change::Secrets { value: Some(ClusterSecrets { gossip_keys: keys, ..current }) });
        Ok(())
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

/// The live managers of `state`.
fn managers(state: &crate::state::ClusterState) -> Vec<NodeId> {
    state
        .nodes
        .live()
        .filter(|(id, n)| !n.left && state.role_of(id) == Role::Manager)
        .map(|(id, _)| *id)
        .collect()
}
