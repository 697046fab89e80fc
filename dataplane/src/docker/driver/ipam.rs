//! The IPAM half: pools are meshd networks' subnets, addresses come from meshd's IPAM (the
//! node's blocks), reserved for the container until Docker releases them.
//!
//! `--subnet` picks the meshd network: the one with that subnet, or a new one (named after the
//! Docker network once its name is known). Without `--subnet` a new network gets the next free
//! subnet of the cluster's default address pools (`meshd --default-addr-pool`, as `meshctl
//! network create` without `--subnet` does; `network::pool`), free of every meshd network and
//! of this node's other Docker pools: to use an existing meshd network, pass its subnet
//! (Docker does not tell the IPAM driver the network's name). The pick is this node's; the
//! managers still refuse the meshd network if another node created an overlapping one first.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::{json, Value};

use super::DockerDriver;
use crate::docker::error::DriverError;
use crate::docker::protocol::{AddressRequest, PoolRequest};
use crate::network::pool;
use crate::state::network_options;

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
                let settings = self.agent.cluster_settings();
                let used: Vec<Ipv4Net> =
                    networks.iter().map(|(_, s)| *s).chain(state.pools.values().copied()).collect();
                pool::next_free(settings, &used).ok_or_else(|| {
                    let pools: Vec<String> =
                        settings.default_addr_pools.iter().map(|p| p.to_string()).collect();
                    DriverError::bad(format!(
                        "the default address pools ({}) have no free /{} left: pass --subnet",
                        pools.join(", "),
                        settings.default_addr_pool_mask_length
                    ))
                })?
            }
        };
        if let Some(used) = state.pools.values().find(|s| overlap(s, &subnet)) {
            return Err(DriverError::bad(format!(
                "a Docker network on this node already uses meshd subnet {used} (one Docker network per meshd network)"
            )));
        }
        if let Some(range) = request.sub_pool.filter(|r| !subnet.contains(r) || *r != r.trunc()) {
            return Err(DriverError::bad(format!(
                "--ip-range {range} is not a range inside subnet {subnet}"
            )));
        }
        let pool_id = format!("meshd:{subnet}");
        state.pools.insert(pool_id.clone(), subnet);
        match request.sub_pool {
            Some(range) => state.ranges.insert(pool_id.clone(), range),
            None => state.ranges.remove(&pool_id),
        };
        state.save(&self.state_dir);
        Ok(json!({ "PoolID": pool_id, "Pool": subnet.to_string(), "Data": {} }))
    }

    pub(super) async fn release_pool(&self, pool_id: &str) -> Result<Value, DriverError> {
        let mut state = self.state.lock().await;
        state.ranges.remove(pool_id);
        if state.pools.remove(pool_id).is_some() {
            state.save(&self.state_dir);
        }
        Ok(json!({}))
    }

    pub(super) async fn request_address(&self, request: AddressRequest) -> Result<Value, DriverError> {
        let subnet = self.pool(&request.pool_id).await?;
        let default = network_options::gateway(&subnet, &Default::default());
        if request.gateway {
            // `--gateway`, or meshd's default (the subnet's first address); CreateNetwork
            // brings it back and the whole set of options is checked there.
            let gateway = request.address.unwrap_or(default);
            if !subnet.contains(&gateway) || gateway == subnet.network() || gateway == subnet.broadcast() {
                return Err(DriverError::bad(format!(
                    "--gateway {gateway} is not a host address of subnet {subnet}"
                )));
            }
            return Ok(json!({ "Address": format!("{gateway}/{}", subnet.prefix_len()), "Data": {} }));
        }
        // Docker asks for each `--aux-address` before it creates the network: an address asked
        // for on a pool with no network yet is one, kept out by the network's options.
        let created = self.state.lock().await.network_on(&subnet).is_some();
        if let (Some(asked), false) = (request.address, created) {
            if !subnet.contains(&asked) {
                return Err(DriverError::bad(format!("--aux-address {asked} is outside subnet {subnet}")));
            }
            return Ok(json!({ "Address": format!("{asked}/{}", subnet.prefix_len()), "Data": {} }));
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
