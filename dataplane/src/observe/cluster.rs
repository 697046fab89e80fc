//! `/api/cluster`: what the web view draws, as JSON: nodes (state, availability, role),
//! networks, services with their tasks and the node each runs on, published ports, health, and
//! counters the page turns into rates between two polls (packets through this node's tasks,
//! drops and new flows seen by this node's monitor).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::SystemTime;

use serde::Serialize;

use super::Sources;
use crate::api::reply::{NetworkInfo, NodeStatus, TaskInfo};
use crate::api::views;
use crate::identity::NodeId;
use crate::monitor::event::rfc3339;
use crate::monitor::EventKind;
use crate::state::Availability;

#[derive(Debug, Serialize)]
pub struct ClusterView {
    /// The node that answered.
    pub node: String,
    pub generated: String,
    pub nodes: Vec<NodeView>,
    pub networks: Vec<NetworkInfo>,
    pub services: Vec<ServiceView>,
}

#[derive(Debug, Serialize)]
pub struct NodeView {
    pub id: NodeId,
    pub name: String,
    pub address: IpAddr,
    pub status: NodeStatus,
    pub availability: Availability,
    /// manager or worker.
    pub role: Option<String>,
    /// A manager's standing in the managers' group: leader, reachable, unreachable.
    pub manager_status: Option<String>,
    #[serde(rename = "self")]
    pub is_self: bool,
}

#[derive(Debug, Serialize)]
pub struct ServiceView {
    pub name: String,
    pub network: String,
    pub mode: String,
    pub vip: Option<std::net::Ipv4Addr>,
    pub ports: Vec<String>,
    pub healthy: usize,
    pub total: usize,
    pub tasks: Vec<TaskInfo>,
    /// Packets and bytes through the veths of this service's tasks on the answering node
    /// (both directions), since they were attached.
    pub local_packets: u64,
    pub local_bytes: u64,
    /// Drop and new-flow events of this service seen by the answering node's monitor.
    pub drops: u64,
    pub flows: u64,
}

impl Sources {
    pub async fn cluster(&self) -> ClusterView {
        let snapshot = self.gossip.snapshot();
        let nodes = views::nodes(&snapshot)
            .into_iter()
            .map(|n| NodeView {
                id: n.id,
                name: n.name,
                address: n.address,
                status: n.status,
                availability: n.availability,
                role: Some(n.role.to_string()),
                manager_status: n.manager_status.map(|s| s.to_string()),
                is_self: n.is_self,
            })
            .collect();
        let node = snapshot.state.nodes.get(&snapshot.self_id).map(|n| n.name.clone()).unwrap_or_default();

        // This node's task interfaces -> their service.
        let service_of: HashMap<std::net::Ipv4Addr, String> = snapshot
            .state
            .endpoints
            .live()
            .filter_map(|(_, e)| e.service.clone().map(|s| (e.address, s)))
            .collect();
        let interfaces: HashMap<String, String> = self
            .agent
            .local_interfaces()
            .await
            .into_iter()
            .filter_map(|(ifname, address)| service_of.get(&address).map(|s| (ifname, s.clone())))
            .collect();
        let mut local: HashMap<String, (u64, u64)> = HashMap::new();
        if let Ok(rows) = self.agent.counters().await {
            for row in rows {
                if let Some(service) = interfaces.get(&row.interface) {
                    let entry = local.entry(service.clone()).or_default();
                    entry.0 += row.packets;
                    entry.1 += row.bytes;
                }
            }
        }
        let mut events: HashMap<(String, EventKind), u64> = HashMap::new();
        for (service, kind, count) in self.monitor.per_service() {
            events.insert((service, kind), count);
        }

        let services = views::services(&snapshot)
            .into_iter()
            .map(|s| {
                let (local_packets, local_bytes) = local.get(&s.name).copied().unwrap_or_default();
                ServiceView {
                    tasks: views::tasks(&snapshot, &s.name).unwrap_or_default(),
                    drops: events.get(&(s.name.clone(), EventKind::Drop)).copied().unwrap_or(0),
                    flows: events.get(&(s.name.clone(), EventKind::Flow)).copied().unwrap_or(0),
                    local_packets,
                    local_bytes,
                    mode: s.mode.to_string(),
                    name: s.name,
                    network: s.network,
                    vip: s.vip,
                    ports: s.ports,
                    healthy: s.healthy,
                    total: s.tasks,
                }
            })
            .collect();
        ClusterView {
            node,
            generated: rfc3339(SystemTime::now()),
            nodes,
            networks: views::networks(&snapshot),
            services,
        }
    }
}
