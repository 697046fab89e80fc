//! What the Docker driver must remember across restarts, in `docker.json` of the state
//! directory: Docker never sends a network's pool or creation again (after a restart of
//! dockerd or of meshd it goes straight to RequestAddress and Join), so the pools, networks,
//! endpoints and reserved addresses it was told about are kept here.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::state_dir::{StateDir, StateDirError};

const FILE: &str = "docker.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverState {
    /// Pool ID -> subnet (RequestPool).
    pub pools: BTreeMap<String, Ipv4Net>,
    /// Docker network ID -> the meshd network behind it.
    pub networks: BTreeMap<String, DockerNetwork>,
    /// Docker endpoint ID -> its container's attachment.
    pub endpoints: BTreeMap<String, DockerEndpoint>,
    /// Addresses handed out by RequestAddress -> the agent's reservation owner.
    pub addresses: BTreeMap<Ipv4Addr, String>,
    /// Pool ID -> its `--ip-range` (RequestPool's SubPool), for the network created on it.
    #[serde(default)]
    pub ranges: BTreeMap<String, Ipv4Net>,
}

/// A Docker network of this driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerNetwork {
    pub subnet: Ipv4Net,
    /// The meshd network: Docker's name for the network (learned from its events), or `-o
    /// meshd.network=NAME`. None until known.
    pub name: Option<String>,
    /// Why the network cannot be used (a meshd network of that name with another subnet).
    #[serde(default)]
    pub problem: Option<String>,
    /// The options the meshd network is created with (`--gateway`, `--ip-range`,
    /// `--aux-address`, `--internal`, `-o com.docker.network.driver.mtu`).
    #[serde(default)]
    pub options: crate::state::network_options::NetworkOptions,
}

/// A Docker endpoint (one container on one network).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerEndpoint {
    pub network_id: String,
    pub address: Ipv4Addr,
    pub mac: Option<[u8; 6]>,
    /// `--driver-opt meshd.service=SVC`.
    pub service: Option<String>,
    /// `--driver-opt meshd.task=NAME`; without it the container's name, once known.
    pub task: Option<String>,
    /// The container, once known from Docker's events.
    #[serde(default)]
    pub container: Option<String>,
}

impl DriverState {
    pub fn load(state_dir: &StateDir) -> Result<DriverState, StateDirError> {
        Ok(state_dir.read_json(FILE)?.unwrap_or_default())
    }

    /// Writes the file (a failure is logged: Docker's calls still succeed, and the next change
    /// writes it again).
    pub fn save(&self, state_dir: &StateDir) {
        if let Err(error) = state_dir.write_json(FILE, self) {
            tracing::warn!(%error, "cannot save the Docker driver's state");
        }
    }

    /// The Docker network on `subnet`, with its ID.
    pub fn network_on(&self, subnet: &Ipv4Net) -> Option<(&String, &DockerNetwork)> {
        self.networks.iter().find(|(_, n)| &n.subnet == subnet)
    }
}
