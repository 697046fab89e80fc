//! The API handler: each request carried out by the agent (or the gossip agent), its reply
//! shaped by `api::views`, and each failure given the error kind a script can branch on.

use std::sync::Arc;
use std::time::Duration;

use crate::agent::attachments::AttachOptions;
use crate::agent::{Agent, AgentError};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::reply::{Counter, DatapathCounter, Reply, Response};
use crate::api::request::Request;
use crate::api::server::Handler;
use crate::api::views;
use crate::gossip::{GossipError, GossipHandle};
use crate::manager::{key_rotation, ManagerError, Managers};
use crate::monitor::{Filter, Monitor, MonitorError, Subscription};
use crate::network::NetworkError;
use crate::service::ServiceError;
use crate::state::Role;
use crate::trust::ca::JoinRole;

/// What the API handler needs of the running node.
pub struct ApiHandler {
    pub gossip: GossipHandle,
    pub managers: Managers,
    /// Owns the loaded programs and maps for as long as meshd runs.
    pub agent: Arc<Agent>,
    pub monitor: Arc<Monitor>,
}

impl Handler for ApiHandler {
    async fn handle(&self, request: Request) -> Response {
        match self.dispatch(request).await {
            Ok(reply) => Response::Ok(reply),
            Err(error) => Response::Error(error),
        }
    }

    fn monitor(&self, filter: Filter) -> Result<Subscription, ApiError> {
        self.monitor.subscribe(filter).map_err(|error| match error {
            MonitorError::TooMany => ApiError::new(ErrorKind::Conflict, error.to_string()),
            MonitorError::Kernel(_) => internal(error.to_string()),
        })
    }
}

impl ApiHandler {
    async fn dispatch(&self, request: Request) -> Result<Reply, ApiError> {
        let agent = &self.agent;
        match request {
            Request::NodeLs {} => Ok(Reply::Nodes(views::nodes(&self.gossip.snapshot()))),
            Request::JoinToken { role, rotate } => {
                let role = match role {
                    Role::Worker => JoinRole::Worker,
                    Role::Manager => JoinRole::Manager,
                };
                let token = self.managers.join_token(role, rotate).await.map_err(manager_error)?;
                Ok(Reply::JoinToken { token: token.to_string() })
            }
            Request::NodeUpdate { node, availability } => {
                let id = self.managers.set_availability(&node, availability).await.map_err(manager_error)?;
                Ok(Reply::NodeUpdated { id })
            }
            Request::NodePromote { node } => {
                let id = self.managers.set_role(&node, Role::Manager).await.map_err(manager_error)?;
                Ok(Reply::NodeUpdated { id })
            }
            Request::NodeDemote { node } => {
                let id = self.managers.set_role(&node, Role::Worker).await.map_err(manager_error)?;
                Ok(Reply::NodeUpdated { id })
            }
            Request::NodeRm { node, force } => {
                let id = self.managers.remove(&node, force).await.map_err(manager_error)?;
                // The removed node knew the gossip key: replace it, in the background (a node
                // rm answers at once; the rotation takes a few gossip rounds).
                let managers = self.managers.clone();
                tokio::spawn(async move {
                    if let Err(error) =
                        key_rotation::rotate(&managers, |step| tracing::info!(step, "key rotation")).await
                    {
                        tracing::warn!(%error, "the gossip key rotation after a node removal failed");
                    }
                });
                Ok(Reply::NodeUpdated { id })
            }
            Request::KeyRotate {} => {
                key_rotation::rotate(&self.managers, |step| tracing::info!(step, "key rotation"))
                    .await
                    .map_err(manager_error)?;
                Ok(Reply::KeyRotated {})
            }
            Request::Leave {} => self.gossip.leave().await.map(|()| Reply::Left {}).map_err(gossip_error),
            Request::Stats {} => {
                let rows = agent.counters().await.map_err(agent_error)?;
                let gossip = self.gossip.stats().snapshot().rows();
                Ok(Reply::Stats {
                    gossip: gossip
                        .into_iter()
                        .map(|(name, value)| Counter { name: name.to_string(), value })
                        .collect(),
                    datapath: rows
                        .into_iter()
                        .map(|row| DatapathCounter {
                            interface: row.interface,
                            direction: row.direction.to_string(),
                            verdict: row.reason.to_string(),
                            packets: row.packets,
                            bytes: row.bytes,
                        })
                        .collect(),
                    dns: agent
                        .dns_counters()
                        .into_iter()
                        .map(|(name, value)| Counter { name: name.to_string(), value })
                        .collect(),
                })
            }
            Request::NetworkCreate { name, subnet, options } => {
                agent.network_create(&name, subnet, options).await.map_err(agent_error)?;
                let created =
                    views::networks(&agent.snapshot()).into_iter().filter(|n| n.name == name).collect();
                Ok(Reply::Networks(created))
            }
            Request::NetworkLs {} => Ok(Reply::Networks(views::networks(&agent.snapshot()))),
            Request::NetworkInspect { name } => views::network_detail(&agent.snapshot(), &name)
                .map(Reply::NetworkDetail)
                .ok_or_else(|| agent_error(NetworkError::NotFound(name).into())),
            Request::NetworkRm { name } => {
                agent.network_rm(&name).await.map(|()| Reply::Removed {}).map_err(agent_error)
            }
            Request::Attach {
                netns,
                network,
                service,
                name,
                no_resolv_conf,
                interface,
                owner,
                aliases,
                health,
            } => {
                let options = AttachOptions {
                    service,
                    task: name.map(String::from),
                    resolv_conf: !no_resolv_conf,
                    interface,
                    owner,
                    aliases: aliases.into_iter().map(String::from).collect(),
                    health: health.unwrap_or_default(),
                };
                let attached = agent.attach_with(&netns, &network, options).await.map_err(agent_error)?;
                Ok(Reply::Attached {
                    address: attached.address,
                    interface: attached.container_ifname.clone(),
                    attachment: Some(Box::new(views::attachment(&agent.snapshot(), &attached, agent.mtu()))),
                })
            }
            Request::ServiceCreate { name, network, publish, endpoint_mode } => {
                let publish: Vec<_> = publish.into_iter().map(|spec| spec.0).collect();
                agent.service_create(&name, &network, endpoint_mode, &publish).await.map_err(agent_error)?;
                let created =
                    views::services(&agent.snapshot()).into_iter().filter(|s| s.name == name).collect();
                Ok(Reply::Services(created))
            }
            Request::ServiceUpdate { name, publish_add, publish_rm, endpoint_mode } => {
                let publish_add = publish_add.into_iter().map(|spec| spec.0).collect();
                let update = crate::service::plan::Update { publish_add, publish_rm, mode: endpoint_mode };
                agent.service_update(&name, &update).await.map_err(agent_error)?;
                let updated =
                    views::services(&agent.snapshot()).into_iter().filter(|s| s.name == name).collect();
                Ok(Reply::Services(updated))
            }
            Request::ServiceLs {} => Ok(Reply::Services(views::services(&agent.snapshot()))),
            Request::ServiceInspect { name } => {
                let record = agent.snapshot().state.services.get(&name).cloned();
                let record =
                    record.ok_or_else(|| agent_error(ServiceError::NotFound(name.clone()).into()))?;
                let view = match record.vip {
                    Some(vip) => agent.lb_view(vip).await.map_err(agent_error)?,
                    None => Default::default(),
                };
                Ok(Reply::Inspect(views::inspect(&name, record.vip, &view)))
            }
            Request::ServicePs { name } => views::tasks(&agent.snapshot(), &name)
                .map(Reply::Tasks)
                .ok_or_else(|| agent_error(ServiceError::NotFound(name).into())),
            Request::ServiceRm { name } => {
                agent.service_rm(&name).await.map(|()| Reply::Removed {}).map_err(agent_error)
            }
            // Streams are served by `monitor` above; the server never hands one to `handle`.
            Request::Monitor { .. } => Err(ApiError::new(ErrorKind::BadRequest, "monitor is a stream")),
            Request::TaskHealth { task, health } => agent
                .set_task_health(&task, health)
                .await
                .map(|count| Reply::HealthSet { count })
                .map_err(agent_error),
            Request::Detach { netns, network, grace_ms } => agent
                .detach(&netns, network.as_deref(), Duration::from_millis(grace_ms))
                .await
                .map(|count| Reply::Detached { count })
                .map_err(agent_error),
            Request::AttachmentLs { owner_prefix } => {
                let owned = agent.owned(owner_prefix.as_deref()).await;
                let snapshot = agent.snapshot();
                Ok(Reply::Attachments(
                    owned.iter().map(|a| views::attachment(&snapshot, a, agent.mtu())).collect(),
                ))
            }
            Request::AttachmentCheck { owner } => {
                let attachment = agent.check(&owner).await.map_err(agent_error)?;
                Ok(Reply::Attachments(vec![views::attachment(&agent.snapshot(), &attachment, agent.mtu())]))
            }
            Request::Backup { path } => {
                let taken = self.managers.backup().await.map_err(manager_error)?;
                write_new_file(&path, &taken.bytes)
                    .map_err(|e| ApiError::new(ErrorKind::BadRequest, format!("backup {path}: {e}")))?;
                tracing::info!(%path, bytes = taken.bytes.len(), index = taken.index, "backup written");
                Ok(Reply::BackupWritten {
                    path,
                    bytes: taken.bytes.len() as u64,
                    index: taken.index,
                    networks: taken.networks,
                    services: taken.services,
                })
            }
            Request::Release { owner, grace_ms } => agent
                .release(&owner, Duration::from_millis(grace_ms))
                .await
                .map(|count| Reply::Detached { count })
                .map_err(agent_error),
        }
    }
}

fn agent_error(error: AgentError) -> ApiError {
    use NetworkError as N;
    use ServiceError as S;
    let kind = match &error {
        AgentError::Network(N::NotFound(_)) | AgentError::NotAttached(..) | AgentError::Netns(..) => {
            ErrorKind::NotFound
        }
        AgentError::Network(N::Exists(_) | N::Overlap { .. } | N::VniCollision { .. } | N::InUse { .. })
        | AgentError::AlreadyAttached(..)
        | AgentError::Exhausted(_)
        | AgentError::NodeFull(_) => ErrorKind::Conflict,
        AgentError::Network(_) => ErrorKind::BadRequest,
        AgentError::Service(S::NotFound(_) | S::NoNetwork(_)) => ErrorKind::NotFound,
        AgentError::Service(S::Exists(_) | S::WrongNetwork { .. }) => ErrorKind::Conflict,
        AgentError::Service(_) | AgentError::Name(_) => ErrorKind::BadRequest,
        AgentError::Gossip(error) => return gossip_error(error.clone()),
        AgentError::Managers(error) => return manager_error(error.clone()),
        AgentError::Kernel(_) => ErrorKind::Internal,
        AgentError::BadRequest(_) => ErrorKind::BadRequest,
        AgentError::NotOwned(_) | AgentError::NoTask(_) => ErrorKind::NotFound,
        AgentError::Check { .. } => ErrorKind::Conflict,
    };
    ApiError::new(kind, error.to_string())
}

/// Writes a new file (never an existing one: a backup does not replace another by mistake),
/// mode 0600, synced; an absolute path only.
fn write_new_file(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if !std::path::Path::new(path).is_absolute() {
        return Err(std::io::Error::other("the path must be absolute"));
    }
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn manager_error(error: ManagerError) -> ApiError {
    let kind = match &error {
        ManagerError::NoMajority { .. } => ErrorKind::Unavailable,
        ManagerError::Refused(_) => ErrorKind::Conflict,
        ManagerError::NotManager { .. } => ErrorKind::Forbidden,
        ManagerError::NotFound(_) => ErrorKind::NotFound,
        ManagerError::Internal(_) => ErrorKind::Internal,
        ManagerError::Gossip(error) => return gossip_error(error.clone()),
    };
    ApiError::new(kind, error.to_string())
}

fn gossip_error(error: GossipError) -> ApiError {
    let kind = match &error {
        GossipError::NotManager { .. } => ErrorKind::Forbidden,
        GossipError::NotFound(_) => ErrorKind::NotFound,
        GossipError::Refused(_) => ErrorKind::Conflict,
        GossipError::Stopped => ErrorKind::Internal,
    };
    ApiError::new(kind, error.to_string())
}

fn internal(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Internal, message)
}
