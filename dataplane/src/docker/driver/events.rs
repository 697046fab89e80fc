//! What the driver protocol does not say, from Docker's API: a network's name (the `create`
//! event), a container's name (its task name) and its network aliases (`--network-alias`,
//! compose's service name; the `connect` event, then a look-up of the container), and that a container is being stopped (the `kill` event with a stop signal: its
//! tasks stop getting new flows at once, while the container finishes what it has, which is
//! the graceful half of `docker stop`), and a container's health (its HEALTHCHECK: a task is
//! `starting` from its join until the look-up finds no health check or a passing one, then
//! follows the `health_status` events). One long-lived event stream; on start and after every
//! reconnect the state is compared with Docker's (names, health, endpoints Docker no longer
//! has).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;

use super::endpoints::owner;
use super::DockerDriver;
use crate::docker::client::{DockerApi, DockerApiError};
use crate::state::Health;

/// Signals `docker stop`/`kill` send to end a container: INT, QUIT, KILL, TERM.
const STOP_SIGNALS: [&str; 4] = ["2", "3", "9", "15"];
/// Longest wait between reconnects to Docker's API (short: names are needed within seconds of
/// `docker network create`; a call of Docker's on the plugin socket also cuts the wait).
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a container's `starting` is followed by looking it up (once a second) besides its
/// events: Docker's own start period is rarely longer.
const MAX_STARTING_POLLS: u32 = 600;

/// Follows Docker's events until `shutdown`; reconnects with backoff when Docker goes away.
pub async fn watch(driver: Arc<DockerDriver>, api: DockerApi, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(500);
    let mut reported = false;
    loop {
        let session = tokio::select! {
            result = session(&driver, &api, &mut backoff) => result,
            _ = shutdown.changed() => return,
        };
        match session {
            Ok(()) => tracing::info!("Docker's event stream ended (dockerd stopped?); reconnecting"),
            Err(error) if !reported => {
                tracing::warn!(%error, "cannot follow Docker's events; retrying (names and stop events wait)");
                reported = true;
            }
            Err(error) => tracing::debug!(%error, "still cannot follow Docker's events"),
        }
        let jitter = Duration::from_millis(u64::from(rand::random::<u16>() % 250));
        tokio::select! {
            _ = tokio::time::sleep(backoff + jitter) => {}
            _ = driver.docker_seen.notified() => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn session(
    driver: &Arc<DockerDriver>,
    api: &DockerApi,
    backoff: &mut Duration,
) -> Result<(), DockerApiError> {
    // Subscribed before the look-ups: nothing that happens in between is missed.
    let mut events = api.events(&json!({ "type": ["network", "container"] })).await?;
    sync(driver, api).await?;
    tracing::info!(socket = %api.socket().display(), "following Docker's events");
    *backoff = Duration::from_millis(500);
    while let Some(event) = events.next().await? {
        on_event(driver, api, &event).await;
    }
    Ok(())
}

/// Names for networks created while meshd was away, container names, and endpoints Docker no
/// longer has (a container removed while the driver was unreachable: Docker then skips
/// DeleteEndpoint and ReleaseAddress).
async fn sync(driver: &DockerDriver, api: &DockerApi) -> Result<(), DockerApiError> {
    let listed = api.get("/networks").await?;
    let ids: Vec<String> = driver.state.lock().await.networks.keys().cloned().collect();
    for id in &ids {
        let Some(network) =
            listed.as_array().and_then(|all| all.iter().find(|n| n["Id"].as_str() == Some(id.as_str())))
        else {
            continue;
        };
        if let Some(name) = network["Name"].as_str() {
            driver.bind(id, name).await;
        }
        let detail = api.get(&format!("/networks/{id}")).await?;
        let mut docker_endpoints = BTreeSet::new();
        if let Some(containers) = detail["Containers"].as_object() {
            for (container, info) in containers {
                if let Some(endpoint) = info["EndpointID"].as_str() {
                    docker_endpoints.insert(endpoint.to_string());
                    let name = info["Name"].as_str().unwrap_or_default();
                    driver.name_container(endpoint, container, name).await;
                }
            }
            // Health from the container itself: it may have changed while the stream was down.
            for container in containers.keys() {
                name_from_container(driver, api, container).await;
            }
        }
        driver.forget_endpoints_except(id, &docker_endpoints).await;
    }
    Ok(())
}

async fn on_event(driver: &Arc<DockerDriver>, api: &DockerApi, event: &Value) {
    let kind = event["Type"].as_str().unwrap_or_default();
    let action = event["Action"].as_str().unwrap_or_default();
    let actor = event["Actor"]["ID"].as_str().unwrap_or_default();
    let attributes = &event["Actor"]["Attributes"];
    match (kind, action) {
        ("network", "create") => {
            if let Some(name) = attributes["name"].as_str() {
                driver.bind(actor, name).await;
            }
        }
        ("network", "connect") => {
            // Looked up on the side: Docker answers once the container has started, and a
            // stop event behind it must not wait for that.
            if let Some(container) = attributes["container"].as_str() {
                let (driver, api, container) = (driver.clone(), api.clone(), container.to_string());
                tokio::spawn(async move {
                    // Until the container leaves `starting`, looked up again each second: the
                    // `health_status` event of a check that passed while this look-up was on
                    // its way would otherwise be overwritten by the older `starting`.
                    for _ in 0..MAX_STARTING_POLLS {
                        if name_from_container(&driver, &api, &container).await != Some(Health::Starting) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                });
            }
        }
        ("container", action) if action.starts_with("health_status") => {
            // "health_status: healthy" (Docker 20.10 puts the status in the action).
            if let Some(health) =
                health_of(action.trim_start_matches("health_status").trim_start_matches(':').trim())
            {
                for endpoint in driver.endpoints_of(actor).await {
                    driver.set_health(&endpoint, health).await;
                }
            }
        }
        ("container", "kill") => {
            let signal = attributes["signal"].as_str().unwrap_or_default();
            if STOP_SIGNALS.contains(&signal) {
                let mut endpoints = driver.endpoints_of(actor).await;
                if endpoints.is_empty() {
                    name_from_container(driver, api, actor).await;
                    endpoints = driver.endpoints_of(actor).await;
                }
                for endpoint in endpoints {
                    match driver.agent.drain(&owner(&endpoint)).await {
                        Ok(n) if n > 0 => {
                            tracing::info!(container = actor, signal, "container stopping: its tasks drain")
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "cannot drain a stopping container's tasks"),
                    }
                }
            }
        }
        _ => {}
    }
}

/// Looks the container up and gives its endpoints of this driver their names, aliases and
/// health. Returns the health, None when the look-up failed.
async fn name_from_container(driver: &DockerDriver, api: &DockerApi, container: &str) -> Option<Health> {
    if !container.bytes().all(|b| b.is_ascii_alphanumeric()) || container.is_empty() || container.len() > 128
    {
        return None;
    }
    let detail = match api.get(&format!("/containers/{container}/json")).await {
        Ok(detail) => detail,
        Err(error) => {
            tracing::debug!(%error, container, "cannot look up a container");
            return None;
        }
    };
    // No health check: healthy once Docker has started it.
    let health = match detail["State"]["Health"]["Status"].as_str() {
        Some(status) => health_of(status).unwrap_or(Health::Starting),
        None => Health::Healthy,
    };
    let name = detail["Name"].as_str().unwrap_or_default().trim_start_matches('/');
    if let Some(networks) = detail["NetworkSettings"]["Networks"].as_object() {
        for info in networks.values() {
            if let Some(endpoint) = info["EndpointID"].as_str() {
                driver.name_container(endpoint, container, name).await;
                let aliases: Vec<String> = info["Aliases"]
                    .as_array()
                    .map(|all| all.iter().filter_map(|a| a.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                driver.alias_container(endpoint, &aliases).await;
                driver.set_health(endpoint, health).await;
            }
        }
    }
    Some(health)
}

/// Docker's health status, as meshd's (Docker's `none` is a container without a check).
fn health_of(status: &str) -> Option<Health> {
    match status {
        "healthy" | "none" => Some(Health::Healthy),
        "starting" => Some(Health::Starting),
        "unhealthy" => Some(Health::Unhealthy),
        _ => None,
    }
}
