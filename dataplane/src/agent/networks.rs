//! `network create` and `network rm`: validated against the state, then written through gossip.

use super::{Agent, AgentError};
use crate::network::plan;
use crate::state::Change;

impl Agent {
    pub async fn network_create(&self, name: &str, subnet: &str) -> Result<(), AgentError> {
        let _serial = self.inner.lock().await;
        let record = plan::plan_create(&self.gossip.snapshot().state, name, subnet)?;
        self.gossip
            .write(vec![Change::Network { name: name.to_string(), record: Some(record) }])
            .await
            .map_err(AgentError::Gossip)
    }

    pub async fn network_rm(&self, name: &str) -> Result<(), AgentError> {
        let _serial = self.inner.lock().await;
        plan::plan_remove(&self.gossip.snapshot().state, name)?;
        self.gossip
            .write(vec![Change::Network { name: name.to_string(), record: None }])
            .await
            .map_err(AgentError::Gossip)
    }
}
