//! `network create` and `network rm`: validated against the state here, decided by the managers.

use super::{Agent, AgentError};
use crate::manager::Action;
use crate::network::plan;

impl Agent {
    pub async fn network_create(&self, name: &str, subnet: &str) -> Result<(), AgentError> {
        self.managers.require_manager("create or remove networks")?;
        let _serial = self.inner.lock().await;
        let record = plan::plan_create(&self.gossip.snapshot().state, name, subnet)?;
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
