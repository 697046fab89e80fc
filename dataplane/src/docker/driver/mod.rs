//! The Docker network and IPAM driver `meshd` (`meshd --docker-plugin`): Docker's calls on the
//! plugin socket (`docker::server`), carried out by the agent, with what Docker does not tell a
//! driver (names, stops) taken from its events.
//!
//! - [`ipam`]: pools (meshd networks' subnets) and addresses (meshd's IPAM).
//! - [`networks`]: Docker networks and the meshd networks behind them.
//! - [`endpoints`]: containers joining and leaving (veth pairs handed over to Docker).
//! - [`events`]: names and stop signals from Docker's API.
//! - [`state`]: what is kept across restarts (Docker never repeats a network's creation).
//! - [`config`]: the flags.
//!
//! DNS: Docker's own resolver owns 127.0.0.11 in its containers and forwards the names it does
//! not know to the container's `--dns` servers, from the container's address. meshd answers at
//! `--docker-dns-addr` on the node, scoped by that address; the container's route to it goes
//! through the meshd network's gateway (Join's static route).

pub mod config;
pub mod endpoints;
pub mod events;
pub mod ipam;
pub mod networks;
pub mod state;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::{Mutex, Notify};

use self::state::DriverState;
use crate::agent::Agent;
use crate::docker::error::DriverError;
use crate::docker::protocol::{Call, ADDRESS_SPACE};
use crate::docker::server::Driver;
use crate::state::Health;
use crate::state_dir::{StateDir, StateDirError};

pub struct DockerDriver {
    agent: Arc<Agent>,
    state: Mutex<DriverState>,
    state_dir: Arc<StateDir>,
    /// Woken whenever a network gets its name.
    named: Notify,
    /// Woken by every call of Docker's: it is up, so the event stream can connect now.
    docker_seen: Notify,
    /// The node's DNS address for containers.
    dns: Ipv4Addr,
    /// Docker's API socket (named in errors).
    docker_host: PathBuf,
}

impl DockerDriver {
    /// The driver with the state it had before a restart.
    pub fn load(
        agent: Arc<Agent>,
        state_dir: Arc<StateDir>,
        dns: Ipv4Addr,
        docker_host: &Path,
    ) -> Result<DockerDriver, StateDirError> {
        let state = DriverState::load(&state_dir)?;
        Ok(DockerDriver {
            agent,
            state: Mutex::new(state),
            state_dir,
            named: Notify::new(),
            docker_seen: Notify::new(),
            dns,
            docker_host: docker_host.to_path_buf(),
        })
    }

    /// The endpoints (IDs) of `container`.
    async fn endpoints_of(&self, container: &str) -> Vec<String> {
        let state = self.state.lock().await;
        state
            .endpoints
            .iter()
            .filter(|(_, e)| e.container.as_deref() == Some(container))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Gives `endpoint`'s task the container's aliases on its network (`--network-alias`,
    /// compose's service name, the short ID), which Docker tells its API and not the driver.
    async fn alias_container(&self, endpoint: &str, aliases: &[String]) {
        if let Err(error) = self.agent.set_aliases(&endpoints::owner(endpoint), aliases).await {
            tracing::warn!(%error, endpoint, "cannot give a container's task its aliases");
        }
    }

    /// Gives `endpoint`'s task the container's health (see `events`).
    async fn set_health(&self, endpoint: &str, health: Health) {
        match self.agent.set_owner_health(&endpoints::owner(endpoint), health).await {
            Ok(n) if n > 0 => tracing::info!(endpoint, %health, "container health"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, endpoint, "cannot give a container's task its health"),
        }
    }

    /// Records that `endpoint` is `container`'s, named `name`; the task takes the container's
    /// name unless `meshd.task` named it.
    async fn name_container(&self, endpoint: &str, container: &str, name: &str) {
        let rename = {
            let mut state = self.state.lock().await;
            let Some(entry) = state.endpoints.get_mut(endpoint) else { return };
            let changed = entry.container.as_deref() != Some(container);
            entry.container = Some(container.to_string());
            let rename = entry.task.is_none() && !name.is_empty();
            if changed {
                state.save(&self.state_dir);
            }
            rename
        };
        if rename {
            if let Err(error) = self.agent.rename_task(&endpoints::owner(endpoint), name).await {
                tracing::warn!(%error, endpoint, "cannot name a container's task");
            }
        }
    }

    /// Forgets the endpoints of network `network_id` that Docker does not list and that have no
    /// live attachment (their container is gone), with their addresses.
    async fn forget_endpoints_except(&self, network_id: &str, listed: &BTreeSet<String>) {
        let attached: BTreeSet<String> =
            self.agent.owned(Some("docker/")).await.into_iter().filter_map(|a| a.owner).collect();
        let gone: Vec<(String, Ipv4Addr)> = {
            let state = self.state.lock().await;
            state
                .endpoints
                .iter()
                .filter(|(id, e)| {
                    e.network_id == network_id
                        && !listed.contains(*id)
                        && !attached.contains(&endpoints::owner(id))
                })
                .map(|(id, e)| (id.clone(), e.address))
                .collect()
        };
        for (id, address) in gone {
            tracing::info!(endpoint = %id, %address, "forgetting an endpoint Docker no longer has");
            let owner = {
                let mut state = self.state.lock().await;
                state.endpoints.remove(&id);
                let owner = state.addresses.remove(&address);
                state.save(&self.state_dir);
                owner
            };
            if let Some(owner) = owner {
                self.agent.unreserve(&owner).await;
            }
        }
    }
}

impl Driver for DockerDriver {
    async fn handle(&self, call: Call) -> Result<Value, DriverError> {
        self.docker_seen.notify_one();
        match call {
            Call::Activate => Ok(json!({ "Implements": ["NetworkDriver", "IpamDriver"] })),
            // Local: each engine keeps its own record of the network (engines are not in swarm
            // mode); meshd makes them one network.
            Call::NetworkCapabilities => Ok(json!({ "Scope": "local", "ConnectivityScope": "local" })),
            Call::IpamCapabilities => {
                Ok(json!({ "RequiresMACAddress": false, "RequiresRequestReplay": false }))
            }
            Call::AddressSpaces => Ok(
                json!({ "LocalDefaultAddressSpace": ADDRESS_SPACE, "GlobalDefaultAddressSpace": ADDRESS_SPACE }),
            ),
            Call::RequestPool(request) => self.request_pool(request).await,
            Call::ReleasePool { pool_id } => self.release_pool(&pool_id).await,
            Call::RequestAddress(request) => self.request_address(request).await,
            Call::ReleaseAddress { pool_id, address } => self.release_address(&pool_id, address).await,
            Call::CreateNetwork(request) => self.create_network(request).await,
            Call::DeleteNetwork { network_id } => self.delete_network(&network_id).await,
            Call::CreateEndpoint(request) => self.create_endpoint(request).await,
            Call::DeleteEndpoint(endpoint) => self.delete_endpoint(&endpoint).await,
            Call::Join(request) => self.join(request).await,
            Call::Leave(endpoint) => self.leave(&endpoint).await,
            Call::EndpointInfo(_) => Ok(json!({ "Value": {} })),
            Call::Nothing => Ok(json!({})),
        }
    }
}
