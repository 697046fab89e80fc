//! The cluster-wide operations behind the API, as the managers decide them: each is checked
//! here for what only this node can tell (the node named exists, is down), proposed, and
//! returns once this node's gossip state shows the result (so the caller's next `ls` does).
//!
//! They are for managers, as in Swarm; a worker gets an error naming the managers. The one
//! thing a worker asks the managers for is an address block ([`Managers::grant_block`]).

use std::time::Duration;

use super::decisions::{Action, Decision};
use super::{ManagerError, Managers};
use crate::identity::{JoinToken, NodeId, Secret};
use crate::state::{Availability, ClusterSecrets, Role, Snapshot};
use crate::trust::ca::JoinRole;

/// How long an operation waits for its result to show in this node's gossip state.
const SETTLE: Duration = Duration::from_secs(5);

impl Managers {
    /// Proposes `action` from a manager (`what` names it for a worker's error), turns a refusal
    /// into an error, and waits until the result shows here.
    pub async fn decide(&self, what: &'static str, action: Action) -> Result<Decision, ManagerError> {
        self.require_manager(what)?;
        let (decision, index) = self.propose(action).await?;
        if let Decision::Refused(reason) = decision {
            return Err(ManagerError::Refused(reason));
        }
        self.settle(index, SETTLE).await;
        Ok(decision)
    }

    /// A new address block of `network` for this node; its index.
    pub async fn grant_block(&self, network: &str) -> Result<u32, ManagerError> {
        let action = Action::GrantBlock { network: network.to_string(), node: self.node_id() };
        match self.propose(action).await? {
            (Decision::Block(index), _) => Ok(index),
            (Decision::Refused(reason), _) => Err(ManagerError::Refused(reason)),
            (other, _) => Err(ManagerError::Internal(format!("an address block request came to {other}"))),
        }
    }

    /// `node update --availability`.
    pub async fn set_availability(&self, query: &str, value: Availability) -> Result<NodeId, ManagerError> {
        self.require_manager("drain or activate a node")?;
        let node = self.resolve_node(query)?;
        self.decide("drain or activate a node", Action::SetAvailability { node, value }).await?;
        Ok(node)
    }

    /// `node promote` / `node demote`.
    pub async fn set_role(&self, query: &str, role: Role) -> Result<NodeId, ManagerError> {
        self.require_manager("promote or demote nodes")?;
        let node = self.resolve_node(query)?;
        self.decide("promote or demote nodes", Action::SetRole { node, role }).await?;
        tracing::info!(%node, %role, "role changed");
        Ok(node)
    }

    /// `node rm`: revoked for good (its certificate refused everywhere, its records gone, its
    /// blocks back in the pool). The caller rotates the gossip key it knew (`key_rotation`).
    pub async fn remove(&self, query: &str, force: bool) -> Result<NodeId, ManagerError> {
        self.require_manager("remove nodes")?;
        let node = self.resolve_node(query)?;
        if node == self.node_id() {
            return Err(ManagerError::Refused(
                "a node cannot remove itself: use `meshctl leave` on it".into(),
            ));
        }
        if self.gossip().snapshot().liveness_of(&node).is_up() && !force {
            return Err(ManagerError::Refused(format!(
                "{node} is alive: stop it (or `meshctl leave` on it) first, or remove it anyway with --force"
            )));
        }
        self.decide("remove nodes", Action::Remove { node }).await?;
        tracing::info!(%node, "node removed: its certificate is revoked cluster-wide");
        Ok(node)
    }

    /// The join token of `role`; `rotate` moves the role to its next secret first (the old
    /// token stops admitting anyone).
    pub async fn join_token(&self, role: JoinRole, rotate: bool) -> Result<JoinToken, ManagerError> {
        self.require_manager("show or rotate join tokens")?;
        if rotate {
            let mut secrets = self.current_secrets()?;
            match role {
                JoinRole::Worker => secrets.join_epochs.worker += 1,
                JoinRole::Manager => secrets.join_epochs.manager += 1,
            }
            self.decide("rotate join tokens", Action::SetSecrets(secrets)).await?;
            tracing::info!(?role, "join token rotated");
        }
        Ok(self.gossip().join_token(role).await?)
    }

    /// One step of a gossip key rotation: the keys, primary first.
    pub async fn set_gossip_keys(&self, keys: Vec<Secret>) -> Result<(), ManagerError> {
        if keys.is_empty() {
            return Err(ManagerError::Refused("the cluster needs at least one gossip key".into()));
        }
        let secrets = ClusterSecrets { gossip_keys: keys, ..self.current_secrets()? };
        self.decide("rotate the gossip key", Action::SetSecrets(secrets)).await?;
        Ok(())
    }

    /// The secrets the group decided (a manager's).
    fn current_secrets(&self) -> Result<ClusterSecrets, ManagerError> {
        match &self.decided().secrets {
            Some(secrets) => Ok(secrets.clone()),
            None => self
                .gossip()
                .snapshot()
                .state
                .secrets
                .get(&())
                .cloned()
                .ok_or_else(|| ManagerError::Internal("the cluster has no secrets yet".into())),
        }
    }

    /// Refuses cluster-wide operations on a worker, naming the managers.
    pub fn require_manager(&self, what: &'static str) -> Result<(), ManagerError> {
        let snapshot = self.gossip().snapshot();
        let state = &snapshot.state;
        if state.role_of(&self.node_id()) == Role::Manager {
            return Ok(());
        }
        Err(ManagerError::NotManager { what, managers: manager_names(&snapshot) })
    }

    fn resolve_node(&self, query: &str) -> Result<NodeId, ManagerError> {
        if query.trim().is_empty() {
            return Err(ManagerError::NotFound("give a node name or ID".into()));
        }
        self.gossip().snapshot().resolve_node(query).map_err(ManagerError::NotFound)
    }
}

/// "n1 (10.0.0.1), n2 (10.0.0.2)": the live managers, for a worker's error.
fn manager_names(snapshot: &Snapshot) -> String {
    let state = &snapshot.state;
    let mut managers: Vec<String> = state
        .nodes
        .live()
        .filter(|(id, n)| !n.left && state.role_of(id) == Role::Manager)
        .map(|(_, n)| format!("{} ({})", n.name, n.gossip_addr.ip()))
        .collect();
    managers.sort();
    managers.join(", ")
}
