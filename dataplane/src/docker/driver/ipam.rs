//! The IPAM half: pools are meshd networks' subnets, addresses come from meshd's IPAM (the
//! node's blocks), reserved for the container until Docker releases them.
//!
//! `--subnet` picks the meshd network: the one with that subnet, or a new one (named after the
//! Docker network once its name is known). Without `--subnet` a free /24 of
//! [`DEFAULT_POOL`] is chosen for a new network: to use an existing meshd network, pass its
//! subnet (Docker does not tell the IPAM driver the network's name).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{json, Value};

use super::DockerDriver;
use crate::docker::error::DriverError;
use crate::docker::protocol::{AddressRequest, PoolRequest};
use crate::network::ipam;

/// Where new networks created without `--subnet` get their /24.
pub const DEFAULT_POOL: &str = "10.231.0.0/16";

impl DockerDriver {
    pub(super) async fn request_pool(&self, request: PoolRequest) -> Result<Value, DriverError> {
        let mut state = self.state.lock().await;
        let snapshot = self.agent.snapshot();
        let networks: Vec<(String, Ipv4Net)> =
            snapshot.state.networks.live().map(|(name, n)| (name.clone(), n.subnet)).collect();
        let subnet = match request.pool {
            Some(subnet) => {
                if let Some((name, other)) =
                    networks.iter().find(|(_, s)| *s != subnet && overlap(s, &subnet))
                {
                    return Err(DriverError::bad(format!(
                        "--subnet {subnet} overlaps meshd network {name} ({other})"
                    )));
                }
                subnet
            }
            None => {
                let default: Ipv4Net = DEFAULT_POOL.parse().expect("a subnet");
                default
                    .subnets(24)
                    .expect("a /16 has /24s")
                    .find(|candidate| {
                        !networks.iter().any(|(_, s)| overlap(s, candidate))
                            && !state.pools.values().any(|s| overlap(s, candidate))
                    })
                    .ok_or_else(|| {
                        DriverError::bad(format!("no free /24 left in {DEFAULT_POOL}: pass --subnet"))
                    })?
            }
        };
        if let Some(used) = state.pools.values().find(|s| overlap(s, &subnet)) {
            return Err(DriverError::bad(format!(
                "a Docker network on this node already uses meshd subnet {used} (one Docker network per meshd network)"
            )));
        }
        let pool_id = format!("meshd:{subnet}");
        state.pools.insert(pool_id.clone(), subnet);
        state.save(&self.state_dir);
        Ok(json!({ "PoolID": pool_id, "Pool": subnet.to_string(), "Data": {} }))
    }

    pub(super) async fn release_pool(&self, pool_id: &str) -> Result<Value, DriverError> {
        let mut state = self.state.lock().await;
        if state.pools.remove(pool_id).is_some() {
            state.save(&self.state_dir);
        }
        Ok(json!({}))
    }

    pub(super) async fn request_address(&self, request: AddressRequest) -> Result<Value, DriverError> {
        let subnet = self.pool(&request.pool_id).await?;
        let gateway = ipam::gateway(&subnet);
        if request.gateway {
            if let Some(asked) = request.address.filter(|a| *a != gateway) {
                return Err(DriverError::bad(format!(
                    "--gateway {asked}: a meshd network's gateway is its first address, {gateway}"
                )));
            }
            return Ok(json!({ "Address": format!("{gateway}/{}", subnet.prefix_len()), "Data": {} }));
        }
        if let Some(asked) = request.address {
            return Err(DriverError::bad(format!(
                "--ip {asked}: meshd assigns addresses itself (fixed ones are not supported)"
            )));
        }
        let network = self.bound_network(&subnet).await?;
        let owner = format!("docker-ip/{}", random_hex());
        let reservation =
            self.agent.reserve(&owner, &network).await.map_err(|e| DriverError::bad(e.to_string()))?;
        let mut state = self.state.lock().await;
        state.addresses.insert(reservation.address, owner);
        state.save(&self.state_dir);
        Ok(json!({ "Address": format!("{}/{}", reservation.address, subnet.prefix_len()), "Data": {} }))
    }

    pub(super) async fn release_address(
        &self,
        pool_id: &str,
        address: Ipv4Addr,
    ) -> Result<Value, DriverError> {
        let owner = {
            let mut state = self.state.lock().await;
            let owner = state.addresses.remove(&address);
            if owner.is_some() {
                state.save(&self.state_dir);
            }
            owner
        };
        match owner {
            Some(owner) => {
                self.agent.unreserve(&owner).await;
            }
            None => {
                tracing::debug!(pool_id, %address, "released an address meshd did not hold (the gateway, or twice)")
            }
        }
        Ok(json!({}))
    }

    async fn pool(&self, pool_id: &str) -> Result<Ipv4Net, DriverError> {
        self.state.lock().await.pools.get(pool_id).copied().ok_or_else(|| {
            DriverError::bad(format!(
                "unknown pool {pool_id:?} (was the network created with --ipam-driver meshd?)"
            ))
        })
    }
}

fn overlap(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    crate::util::hex::encode(&bytes)
}
