//! Docker networks and the meshd networks behind them. Docker does not tell a driver the
//! network's name; meshd learns it from Docker's events (or from `-o meshd.network=NAME`) and
//! then joins the meshd network of that name, or creates it with the network's subnet. The
//! same `docker network create` on every node thus gives every node the same network (Docker
//! engines are not in swarm mode; their networks are local).

use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use serde_json::{json, Value};

use super::state::DockerNetwork;
use super::DockerDriver;
use crate::docker::error::DriverError;
use crate::docker::protocol::NetworkRequest;
use crate::state::network_options::{self, NetworkOptions};

/// How long a call waits for a network's name (it arrives in Docker's event a few
/// milliseconds after `docker network create` returns).
const NAME_WAIT: Duration = Duration::from_secs(5);

/// The driver options `docker network create -o` takes (besides Docker's MTU option,
/// `com.docker.network.driver.mtu`).
const NETWORK_OPTIONS: [&str; 1] = ["meshd.network"];

/// The meshd network options of a `docker network create`: `--gateway` (None when it is meshd's
/// default, so the network matches one created without it), `--ip-range` (from the pool),
/// `--aux-address`, `--internal` and `-o com.docker.network.driver.mtu`, checked as
/// `meshctl network create` checks them. Docker keeps `--label` to itself: drivers never see it.
fn network_options(
    request: &NetworkRequest,
    ip_range: Option<Ipv4Net>,
) -> Result<NetworkOptions, DriverError> {
    let default = network_options::gateway(&request.subnet, &NetworkOptions::default());
    let mut options = NetworkOptions {
        gateway: request.gateway.filter(|g| *g != default),
        ip_range,
        aux_addresses: request.aux_addresses.clone(),
        internal: request.internal,
        ..Default::default()
    };
    for (key, value) in request.options.iter().filter(|(k, _)| {
        network_options::MTU_OPTIONS.contains(&k.as_str()) || k.as_str() == network_options::ENCRYPTED_OPTION
    }) {
        network_options::apply_opt(&mut options, key, value).map_err(DriverError::bad)?;
    }
    options.check(&request.subnet).map_err(DriverError::bad)?;
    Ok(options)
}

/// How a Docker network's options differ from those of the meshd network it would bind to
/// (None: alike). Labels are left out: Docker keeps them to itself. A Docker network that says
/// `--internal` over a meshd network that is not would give its containers a way out they were
/// promised not to have; every other option would be silently other than what the user asked.
fn option_mismatch(meshd: &NetworkOptions, docker: &NetworkOptions) -> Option<String> {
    fn or<T: std::fmt::Display>(value: Option<T>, unset: &str) -> String {
        value.map_or(unset.to_string(), |v| v.to_string())
    }
    fn aux(options: &NetworkOptions) -> String {
        let all: Vec<String> =
            options.aux_addresses.iter().map(|(name, ip)| format!("{name}={ip}")).collect();
        if all.is_empty() {
            "none".to_string()
        } else {
            all.join(" ")
        }
    }
    let mut differ = Vec::new();
    let mut field = |what: &str, m: String, d: String| {
        if m != d {
            differ.push(format!("{what} (meshd: {m}, Docker: {d})"));
        }
    };
    field("gateway", or(meshd.gateway, "the first address"), or(docker.gateway, "the first address"));
    field("ip-range", or(meshd.ip_range, "the whole subnet"), or(docker.ip_range, "the whole subnet"));
    field("aux-address", aux(meshd), aux(docker));
    field("internal", meshd.internal.to_string(), docker.internal.to_string());
    field("mtu", or(meshd.mtu, "the node's"), or(docker.mtu, "the node's"));
    field("encrypted", meshd.encrypted.to_string(), docker.encrypted.to_string());
    (!differ.is_empty()).then(|| differ.join(", "))
}

impl DockerDriver {
    pub(super) async fn create_network(&self, request: NetworkRequest) -> Result<Value, DriverError> {
        for key in request.options.keys().filter(|k| k.starts_with("meshd.")) {
            if !NETWORK_OPTIONS.contains(&key.as_str()) {
                return Err(DriverError::bad(format!(
                    "unknown option -o {key} (known: {})",
                    NETWORK_OPTIONS.join(", ")
                )));
            }
        }
        let explicit = request.options.get("meshd.network").cloned();
        {
            let mut state = self.state.lock().await;
            let Some(pool_id) =
                state.pools.iter().find(|(_, s)| **s == request.subnet).map(|(id, _)| id.clone())
            else {
                return Err(DriverError::bad(format!(
                    "subnet {} did not come from meshd's IPAM",
                    request.subnet
                )));
            };
            let options = network_options(&request, state.ranges.get(&pool_id).copied())?;
            let network = DockerNetwork { subnet: request.subnet, name: None, problem: None, options };
            state.networks.insert(request.network_id.clone(), network);
            state.save(&self.state_dir);
        }
        if let Some(name) = explicit {
            self.bind(&request.network_id, &name).await;
            let state = self.state.lock().await;
            if let Some(problem) = state.networks.get(&request.network_id).and_then(|n| n.problem.clone()) {
                drop(state);
                self.delete_network(&request.network_id).await?;
                return Err(DriverError::bad(problem));
            }
        }
        Ok(json!({}))
    }

    pub(super) async fn delete_network(&self, network_id: &str) -> Result<Value, DriverError> {
        let mut state = self.state.lock().await;
        if state.networks.remove(network_id).is_some() {
            state.save(&self.state_dir);
        }
        // The meshd network stays: other nodes may use it (meshctl network rm removes it).
        Ok(json!({}))
    }

    /// Gives Docker network `network_id` its meshd network `name` (created if missing). A
    /// network already named keeps its name. Problems are recorded for the calls that need it.
    pub(super) async fn bind(&self, network_id: &str, name: &str) {
        let (subnet, options) = {
            let state = self.state.lock().await;
            match state.networks.get(network_id) {
                Some(network) if network.name.is_none() => (network.subnet, network.options.clone()),
                _ => return,
            }
        };
        let existing = self
            .agent
            .snapshot()
            .state
            .networks
            .get(&name.to_string())
            .map(|n| (n.subnet, n.options.clone()));
        let problem = match existing {
            Some((s, meshd)) if s == subnet => option_mismatch(&meshd, &options).map(|what| {
                format!(
                    "meshd network {name} differs from this Docker network in {what}: \
                     create the Docker network with the meshd network's options (meshctl network inspect {name})"
                )
            }),
            Some((s, _)) => Some(format!(
                "meshd network {name} has subnet {s}, this Docker network {subnet}: create it with --subnet {s}"
            )),
            None => match self.agent.network_create(name, Some(subnet), options).await {
                Ok(_) => {
                    tracing::info!(name, %subnet, "created the meshd network of a Docker network");
                    None
                }
                Err(error) => Some(format!("cannot create meshd network {name} ({subnet}): {error}")),
            },
        };
        if let Some(problem) = &problem {
            tracing::warn!(network_id, problem, "Docker network unusable");
        }
        let mut state = self.state.lock().await;
        if let Some(network) = state.networks.get_mut(network_id) {
            network.name = Some(name.to_string());
            network.problem = problem;
        }
        state.save(&self.state_dir);
        drop(state);
        self.named.notify_waiters();
    }

    /// The meshd network behind the Docker network on `subnet`, waiting briefly for its name.
    pub(super) async fn bound_network(&self, subnet: &Ipv4Net) -> Result<String, DriverError> {
        let deadline = Instant::now() + NAME_WAIT;
        loop {
            let notified = self.named.notified();
            tokio::pin!(notified);
            // Registered before looking, so a name that arrives in between is not missed.
            notified.as_mut().enable();
            {
                let state = self.state.lock().await;
                match state.network_on(subnet) {
                    Some((_, DockerNetwork { problem: Some(problem), .. })) => {
                        return Err(DriverError::bad(problem.clone()))
                    }
                    Some((_, DockerNetwork { name: Some(name), .. })) => return Ok(name.clone()),
                    _ => {}
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                return Err(DriverError::bad(format!(
                    "the name of the Docker network on {subnet} is not known yet: meshd learns it from Docker's events \
                     at {} (check --docker-host), or create the network with -o meshd.network=NAME",
                    self.docker_host.display()
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_compared_but_for_labels() {
        let meshd = NetworkOptions { internal: true, mtu: Some(1400), ..Default::default() };
        let mut docker = meshd.clone();
        docker.labels.insert("team".into(), "a".into());
        assert_eq!(option_mismatch(&meshd, &docker), None);
        docker.internal = false;
        docker.gateway = Some("10.0.0.254".parse().unwrap());
        assert_eq!(
            option_mismatch(&meshd, &docker).unwrap(),
            "gateway (meshd: the first address, Docker: 10.0.0.254), internal (meshd: true, Docker: false)"
        );
    }
}
