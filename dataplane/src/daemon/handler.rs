//! The API handler: each request carried out by the agent (or the gossip agent), its reply
//! shaped by `api::views`, and each failure given the error kind a script can branch on.

use std::sync::Arc;
use std::time::Duration;

use crate::agent::{Agent, AgentError};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::reply::{Counter, DatapathCounter, Reply, Response};
use crate::api::request::Request;
use crate::api::server::Handler;
use crate::api::views;
use crate::gossip::GossipHandle;
use crate::network::NetworkError;
use crate::service::ServiceError;

/// What the API handler needs of the running node.
pub struct ApiHandler {
    pub gossip: GossipHandle,
    /// Owns the loaded programs and maps for as long as meshd runs.
    pub agent: Arc<Agent>,
}

impl Handler for ApiHandler {
    async fn handle(&self, request: Request) -> Response {
        match self.dispatch(request).await {
            Ok(reply) => Response::Ok(reply),
            Err(error) => Response::Error(error),
        }
    }
}

impl ApiHandler {
    async fn dispatch(&self, request: Request) -> Result<Reply, ApiError> {
        let agent = &self.agent;
        match request {
            Request::NodeLs {} => Ok(Reply::Nodes(views::nodes(&self.gossip.snapshot()))),
            Request::JoinToken { rotate: false } => self
                .gossip
                .snapshot()
                .join_token()
                .map(|token| Reply::JoinToken { token: token.to_string() })
                .ok_or_else(|| internal("the cluster has no join secret")),
            Request::JoinToken { rotate: true } => self
                .gossip
                .rotate_join_token()
                .await
                .map(|token| Reply::JoinToken { token: token.to_string() })
                .map_err(internal),
            Request::NodeUpdate { node, availability } => self
                .gossip
                .set_availability(node, availability)
                .await
                .map(|id| Reply::NodeUpdated { id })
                .map_err(|message| ApiError::new(ErrorKind::NotFound, message)),
            Request::Leave {} => self.gossip.leave().await.map(|()| Reply::Left {}).map_err(internal),
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
            Request::NetworkCreate { name, subnet } => {
                agent.network_create(&name, &subnet).await.map_err(agent_error)?;
                let created =
                    views::networks(&agent.snapshot()).into_iter().filter(|n| n.name == name).collect();
                Ok(Reply::Networks(created))
            }
            Request::NetworkLs {} => Ok(Reply::Networks(views::networks(&agent.snapshot()))),
            Request::NetworkRm { name } => {
                agent.network_rm(&name).await.map(|()| Reply::Removed {}).map_err(agent_error)
            }
            Request::Attach { netns, network, service, name, no_resolv_conf } => agent
                .attach(&netns, &network, service, name, !no_resolv_conf)
                .await
                .map(|(address, interface)| Reply::Attached { address, interface })
                .map_err(agent_error),
            Request::ServiceCreate { name, network, publish, endpoint_mode } => {
                agent.service_create(&name, &network, endpoint_mode, &publish).await.map_err(agent_error)?;
                let created =
                    views::services(&agent.snapshot()).into_iter().filter(|s| s.name == name).collect();
                Ok(Reply::Services(created))
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
            Request::Detach { netns, network, grace_ms } => agent
                .detach(&netns, network.as_deref(), Duration::from_millis(grace_ms))
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
        | AgentError::Exhausted(_) => ErrorKind::Conflict,
        AgentError::Network(_) => ErrorKind::BadRequest,
        AgentError::Service(S::NotFound(_) | S::NoNetwork(_)) => ErrorKind::NotFound,
        AgentError::Service(S::Exists(_) | S::WrongNetwork { .. }) => ErrorKind::Conflict,
        AgentError::Service(_) | AgentError::Name(_) => ErrorKind::BadRequest,
        AgentError::Kernel(_) | AgentError::Gossip(_) => ErrorKind::Internal,
    };
    ApiError::new(kind, error.to_string())
}

fn internal(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Internal, message)
}
