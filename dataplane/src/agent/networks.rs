//! `network create` and `network rm`: validated against the state here, decided by the managers.

use super::{Agent, AgentError};
use crate::manager::Action;
use crate::network::plan;
use crate::state::network_options::NetworkOptions;

impl Agent {
    /// Creates a network. An MTU is checked against this node's overlay MTU (its underlay's
    /// less the VXLAN overhead): the creating node's underlay is the one known here; a node with
    /// a smaller one clamps the MTU when it attaches (`agent::attachments`).
    pub async fn network_create(
        &self,
        name: &str,
        subnet: &str,
        options: NetworkOptions,
    ) -> Result<(), AgentError> {
        self.managers.require_manager("create or remove networks")?;
        let _serial = self.inner.lock().await;
        let record = plan::plan_create(&self.gossip.snapshot().state, name, subnet, options, self.mtu)?;
        self.managers
            .decide("create networks", Action::CreateNetwork { name: name.to_string(), record })
            .await?;
        Ok(())
    }

    pub async fn network_rm(&self, name: &str) -> Result<(), AgentError> {
        self.managers.require_manager("create or remove networks")?;
        let _serial = self.inner.lock().await;
        plan::plan_remove(&self.gossip.snapshot().state, name)?;
        self.managers.decide("remove networks", Action::RemoveNetwork { name: name.to_string() }).await?;
        Ok(())
    }
}
