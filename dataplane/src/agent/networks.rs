//! `network create` and `network rm`: validated against the state here, decided by the managers.

use super::{Agent, AgentError};
use ipnet::Ipv4Net;

use crate::manager::{Action, Decision, ManagerError};
use crate::network::plan;
use crate::state::network_options::NetworkOptions;

impl Agent {
    /// Creates a network on `subnet`, or (None) on the next free subnet of the cluster's
    /// default address pools, which the managers pick. Returns the subnet. An MTU is checked
    /// against this node's overlay MTU (its underlay's less the VXLAN overhead): the creating
    /// node's underlay is the one known here; a node with a smaller one clamps the MTU when it
    /// attaches (`agent::attachments`).
    pub async fn network_create(
        &self,
        name: &str,
        subnet: Option<Ipv4Net>,
        options: NetworkOptions,
    ) -> Result<Ipv4Net, AgentError> {
        self.managers.require_manager("create or remove networks")?;
        let _serial = self.inner.lock().await;
        let state = &self.gossip.snapshot().state;
        let Some(subnet) = subnet else {
            let record = plan::plan_create_from_pool(state, name, options, self.mtu)?;
            let action = Action::CreateNetworkFromPool { name: name.to_string(), record };
            return match self.managers.decide("create networks", action).await? {
                Decision::Subnet(subnet) => Ok(subnet),
                other => Err(AgentError::Managers(ManagerError::Internal(format!(
                    "a network from the pools came to {other}"
                )))),
            };
        };
        let record = plan::plan_create(state, name, subnet, options, self.mtu)?;
        let subnet = record.subnet;
        self.managers
            .decide("create networks", Action::CreateNetwork { name: name.to_string(), record })
            .await?;
        Ok(subnet)
    }

    pub async fn network_rm(&self, name: &str) -> Result<(), AgentError> {
        self.managers.require_manager("create or remove networks")?;
        let _serial = self.inner.lock().await;
        plan::plan_remove(&self.gossip.snapshot().state, name)?;
        self.managers.decide("remove networks", Action::RemoveNetwork { name: name.to_string() }).await?;
        Ok(())
    }
}
