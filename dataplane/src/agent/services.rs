//! `service create` and `service rm` (validated here, the VIP allocated from this manager's
//! blocks, decided by the managers), and a VIP's load balancing as this node's kernel holds it.

use std::net::Ipv4Addr;

use meshd_ebpf::net_order;

use super::{Agent, AgentError};
use crate::bpf::LbView;
use crate::manager::Action;
use crate::service::{plan, ServiceError};
use crate::state::{EndpointMode, ServiceRecord};

impl Agent {
    pub async fn service_create(
        &self,
        name: &str,
        network: &str,
        mode: EndpointMode,
        publish: &[crate::state::PublishedPort],
    ) -> Result<(), AgentError> {
        self.managers.require_manager("create or remove services")?;
        let mut inner = self.inner.lock().await;
        let snapshot = self.gossip.snapshot();
        let data_path_port = self.cluster_settings().data_path_port;
        let ports = plan::plan_create(&snapshot.state, name, network, mode, publish, data_path_port)?;
        let vip = match mode {
            EndpointMode::Dnsrr => None,
            EndpointMode::Vip => {
                let record = snapshot.state.networks.get(&network.to_string()).cloned().expect("checked");
                Some(self.allocate(&mut inner, network, &record).await?)
            }
        };
        let record = ServiceRecord { network: network.to_string(), mode, vip, ports };
        drop(inner);
        self.managers
            .decide("create services", Action::CreateService { name: name.to_string(), record })
            .await?;
        self.reconcile().await
    }

    /// `service update`: ports added and removed, the endpoint mode switched, in place (the
    /// same VIP while the service stays in vip mode, so open connections and the ports that
    /// stay are untouched), decided by the managers. Returns the new record.
    pub async fn service_update(
        &self,
        name: &str,
        update: &plan::Update,
    ) -> Result<ServiceRecord, AgentError> {
        self.managers.require_manager("update services")?;
        let mut inner = self.inner.lock().await;
        let snapshot = self.gossip.snapshot();
        let data_path_port = self.cluster_settings().data_path_port;
        let (mode, ports) = plan::plan_update(&snapshot.state, name, update, data_path_port)?;
        let old = snapshot.state.services.get(&name.to_string()).cloned().expect("checked");
        let vip = match (mode, old.vip) {
            (EndpointMode::Dnsrr, _) => None,
            (EndpointMode::Vip, Some(vip)) => Some(vip),
            (EndpointMode::Vip, None) => {
                let record = snapshot.state.networks.get(&old.network).cloned().expect("a service's network");
                Some(self.allocate(&mut inner, &old.network, &record).await?)
            }
        };
        let record = ServiceRecord { mode, vip, ports, ..old };
        drop(inner);
        self.managers
            .decide(
                "update services",
                Action::UpdateService { name: name.to_string(), record: record.clone() },
            )
            .await?;
        self.reconcile().await?;
        Ok(record)
    }

    pub async fn service_rm(&self, name: &str) -> Result<(), AgentError> {
        self.managers.require_manager("create or remove services")?;
        let _serial = self.inner.lock().await;
        if self.gossip.snapshot().state.services.get(&name.to_string()).is_none() {
            return Err(ServiceError::NotFound(name.to_string()).into());
        }
        self.managers.decide("remove services", Action::RemoveService { name: name.to_string() }).await?;
        Ok(())
    }

    /// What this node's kernel holds for the VIP `vip`.
    pub async fn lb_view(&self, vip: Ipv4Addr) -> Result<LbView, AgentError> {
        Ok(self.inner.lock().await.maps.lb_view(net_order::ipv4(vip))?)
    }
}
