//! Containers on a network: CreateEndpoint records what the container asked for, Join wires a
//! veth pair on the node and hands the peer to Docker (Docker moves it into the container,
//! renames it `ethN`, and sets the address, the default route and our static route), Leave
//! stops new flows to the container, DeleteEndpoint removes it (Docker has moved the peer back
//! by then; deleting the node side deletes both).
//!
//! A container is a task of a service with `--driver-opt meshd.service=SVC` (on `docker network
//! connect`, or `docker run --network name=NET,driver-opt=meshd.service=SVC`); its task name is
//! `meshd.task` or else its container name (from Docker's events).

use std::path::PathBuf;

use serde_json::{json, Value};

use super::state::DockerEndpoint;
use super::DockerDriver;
use crate::agent::handover::Handover;
use crate::docker::error::DriverError;
use crate::docker::protocol::{
    EndpointRef, EndpointRequest, InterfaceName, JoinReply, JoinRequest, StaticRoute,
};
use crate::service::plan;
use crate::state::{Health, Protocol};

/// The driver options `--driver-opt` takes.
const ENDPOINT_OPTIONS: [&str; 2] = ["meshd.service", "meshd.task"];

/// The owner key of a Docker endpoint's attachment.
pub fn owner(endpoint_id: &str) -> String {
    format!("docker/{endpoint_id}")
}

impl DockerDriver {
    pub(super) async fn create_endpoint(&self, request: EndpointRequest) -> Result<Value, DriverError> {
        for key in request.options.keys().filter(|k| k.starts_with("meshd.")) {
            if !ENDPOINT_OPTIONS.contains(&key.as_str()) {
                return Err(DriverError::bad(format!(
                    "unknown driver option {key} (known: {})",
                    ENDPOINT_OPTIONS.join(", ")
                )));
            }
        }
        let subnet = {
            let state = self.state.lock().await;
            let network = state.networks.get(&request.endpoint.network_id).ok_or_else(|| {
                DriverError::bad("unknown network (was it created while meshd's state was lost?)".to_string())
            })?;
            if !state.addresses.contains_key(&request.address) {
                return Err(DriverError::bad(format!(
                    "{} is not an address meshd's IPAM handed out",
                    request.address
                )));
            }
            network.subnet
        };
        let network = self.bound_network(&subnet).await?;
        let service = request.options.get("meshd.service").cloned().filter(|s| !s.is_empty());
        let task = request.options.get("meshd.task").cloned().filter(|s| !s.is_empty());
        if let Some(task) = &task {
            validate_task(task)?;
        }
        let snapshot = self.agent.snapshot();
        if let Some(service) = &service {
            plan::check_task(&snapshot.state, service, &network)
                .map_err(|e| DriverError::bad(e.to_string()))?;
        }
        for map in &request.port_maps {
            let published =
                service.as_ref().and_then(|s| snapshot.state.services.get(s)).is_some_and(|record| {
                    record.ports.iter().any(|p| {
                        let protocol = if map.protocol == "udp" { Protocol::Udp } else { Protocol::Tcp };
                        matches!(map.protocol, "tcp" | "udp")
                            && p.publishes(map.host_port, protocol)
                            && p.target_of(map.host_port) == map.container_port
                    })
                });
            if !published {
                return Err(DriverError::bad(format!(
                    "-p {}:{}/{}: meshd publishes ports per service on every node (meshctl service create SVC \
                     --network {network} --publish {}:{}/{}) and the container must be its task \
                     (--driver-opt meshd.service=SVC)",
                    map.host_port, map.container_port, map.protocol, map.host_port, map.container_port, map.protocol
                )));
            }
        }
        let mut state = self.state.lock().await;
        let endpoint = DockerEndpoint {
            network_id: request.endpoint.network_id.clone(),
            address: request.address,
            mac: request.mac,
            service,
            task,
            container: None,
        };
        state.endpoints.insert(request.endpoint.endpoint_id.clone(), endpoint);
        state.save(&self.state_dir);
        Ok(json!({}))
    }

    pub(super) async fn join(&self, request: JoinRequest) -> Result<Value, DriverError> {
        let (endpoint, subnet) = {
            let state = self.state.lock().await;
            let endpoint = state
                .endpoints
                .get(&request.endpoint.endpoint_id)
                .cloned()
                .ok_or_else(|| DriverError::bad("unknown endpoint".to_string()))?;
            let subnet = state
                .networks
                .get(&endpoint.network_id)
                .map(|n| n.subnet)
                .ok_or_else(|| DriverError::bad("unknown network".to_string()))?;
            (endpoint, subnet)
        };
        let network = self.bound_network(&subnet).await?;
        let sandbox = PathBuf::from(&request.sandbox_key);
        // One route to the DNS address per container: a second network's copy would fail the
        // join (`file exists`).
        let routed = self.agent.owned(Some("docker/")).await.iter().any(|a| a.netns == sandbox);
        let attachment = self
            .agent
            .attach_handover(Handover {
                owner: owner(&request.endpoint.endpoint_id),
                network: network.clone(),
                address: endpoint.address,
                netns: sandbox,
                service: endpoint.service.clone(),
                task: endpoint.task.clone(),
                mac: endpoint.mac,
                // A task takes no flow before the driver has read from Docker whether the
                // container has a health check and passed it (`events`): a container's process
                // starts after the join, so "healthy at join" would send flows to a server that
                // does not listen yet.
                health: if endpoint.service.is_some() { Health::Starting } else { Health::Healthy },
            })
            .await
            .map_err(|e| DriverError::bad(e.to_string()))?;
        let gateway = self
            .agent
            .snapshot()
            .state
            .networks
            .get(&network)
            .map(|n| n.gateway())
            .ok_or_else(|| DriverError::bad(format!("meshd network {network} is gone")))?
            .to_string();
        let static_routes = if routed {
            Vec::new()
        } else {
            vec![StaticRoute {
                destination: format!("{}/32", self.dns),
                route_type: 0,
                next_hop: gateway.clone(),
            }]
        };
        let reply = JoinReply {
            interface_name: InterfaceName { src_name: attachment.container_ifname, dst_prefix: "eth".into() },
            gateway,
            static_routes,
            disable_gateway_service: false,
        };
        Ok(serde_json::to_value(reply).expect("serialisable"))
    }

    /// The container is gone (Docker leaves after it stopped): no new flows; DeleteEndpoint
    /// follows at once and removes it.
    pub(super) async fn leave(&self, endpoint: &EndpointRef) -> Result<Value, DriverError> {
        self.agent.drain(&owner(&endpoint.endpoint_id)).await.map_err(|e| DriverError::bad(e.to_string()))?;
        Ok(json!({}))
    }

    pub(super) async fn delete_endpoint(&self, endpoint: &EndpointRef) -> Result<Value, DriverError> {
        self.agent
            .release(&owner(&endpoint.endpoint_id), std::time::Duration::ZERO)
            .await
            .map_err(|e| DriverError::bad(e.to_string()))?;
        let mut state = self.state.lock().await;
        if state.endpoints.remove(&endpoint.endpoint_id).is_some() {
            state.save(&self.state_dir);
        }
        Ok(json!({}))
    }
}

/// A task name resolvable by DNS: letters, digits, `-`, `_`, `.`.
fn validate_task(task: &str) -> Result<(), DriverError> {
    let ok = (1..=253).contains(&task.len())
        && task.as_bytes()[0].is_ascii_alphanumeric()
        && task.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(DriverError::bad(format!(
            "meshd.task {:?}: use letters, digits, '-', '_' and '.'",
            task.chars().take(80).collect::<String>()
        )))
    }
}
