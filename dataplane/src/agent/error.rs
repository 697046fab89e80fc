//! Why an agent operation failed; the API maps each to an error kind.

use crate::bpf::BpfError;
use crate::netlink::links::LinkError;
use crate::network::NetworkError;
use crate::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Name(#[from] crate::name_rules::NameError),
    #[error("network namespace {0}: {1}")]
    Netns(String, String),
    #[error("{0} is already attached to network {1:?}")]
    AlreadyAttached(String, String),
    #[error("{0} is not attached{1}")]
    NotAttached(String, String),
    #[error("network {0:?} has no free address left on this node or in free blocks")]
    Exhausted(String),
    /// Every other node refuses endpoints of a node beyond this bound (`state::claims`).
    #[error("this node holds {0} endpoints, the most one node may hold")]
    NodeFull(usize),
    #[error("kernel: {0}")]
    Kernel(String),
    #[error(transparent)]
    Gossip(#[from] crate::gossip::GossipError),
    #[error(transparent)]
    Managers(#[from] crate::manager::ManagerError),
    /// A request that makes no sense (a bad interface name, owner key, address).
    #[error("{0}")]
    BadRequest(String),
    #[error("no task {0:?} is attached on this node (set a task's health on its own node)")]
    NoTask(String),
    #[error("no attachment is owned by {0:?}")]
    NotOwned(String),
    /// CHECK found the attachment different from what was made.
    #[error("attachment {owner:?}: {problem}")]
    Check { owner: String, problem: String },
}

impl From<BpfError> for AgentError {
    fn from(e: BpfError) -> Self {
        AgentError::Kernel(e.to_string())
    }
}

impl From<LinkError> for AgentError {
    fn from(e: LinkError) -> Self {
        AgentError::Kernel(e.to_string())
    }
}
