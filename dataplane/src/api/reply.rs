//! Replies of the local API: `{"ok": <reply>}` or `{"error": {"kind": ..., "message": ...}}`,
//! and the rows they carry (`node ls`, `network ls`, `service ls`, ...).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::identity::NodeId;
use crate::state::{Availability, EndpointMode};

/// Largest response line the client accepts (node tables of thousands of nodes fit easily).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok(Reply),
    Error(ApiError),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Nodes(Vec<NodeInfo>),
    JoinToken {
        token: String,
    },
    NodeUpdated {
        id: NodeId,
    },
    Left {},
    Stats {
        gossip: Vec<Counter>,
        datapath: Vec<DatapathCounter>,
        /// The embedded DNS (forwarded queries, refusals by the per-namespace and node bounds).
        #[serde(default)]
        dns: Vec<Counter>,
    },
    Networks(Vec<NetworkInfo>),
    Removed {},
    Attached {
        address: Ipv4Addr,
        interface: String,
    },
    Detached {
        count: usize,
    },
    Services(Vec<ServiceInfo>),
    Tasks(Vec<TaskInfo>),
    Inspect(ServiceInspect),
}

/// One verdict counter of the eBPF programs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatapathCounter {
    pub interface: String,
    pub direction: String,
    pub verdict: String,
    pub packets: u64,
    pub bytes: u64,
}

/// One named counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    pub name: String,
    pub value: u64,
}

/// One row of `node ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    pub name: String,
    pub address: IpAddr,
    pub status: NodeStatus,
    pub availability: Availability,
    /// True for the node that answered the request.
    #[serde(rename = "self")]
    pub is_self: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Alive,
    Suspect,
    Down,
    Left,
}

/// One row of `service ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    pub network: String,
    pub mode: EndpointMode,
    pub vip: Option<Ipv4Addr>,
    /// Healthy backends (tasks on live, active nodes) / all tasks.
    pub healthy: usize,
    pub tasks: usize,
    /// Published ports, `PUBLISHED:TARGET/PROTO`; a port another service claimed first is
    /// marked and not served.
    #[serde(default)]
    pub ports: Vec<String>,
}

/// One row of `service ps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub task: String,
    pub address: Ipv4Addr,
    pub node: String,
    /// running (receives new flows), or why not: node-down, node-drained.
    pub state: String,
}

/// `service inspect`: one VIP as this node's kernel maps hold it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInspect {
    pub name: String,
    pub vip: Option<Ipv4Addr>,
    /// Maglev table size (0: no healthy backend).
    pub table_size: u32,
    pub backends: Vec<BackendView>,
    /// Published ports as this node's kernel serves them: `ADDRESS:PORT/PROTO -> TARGET`.
    #[serde(default)]
    pub frontends: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendView {
    pub address: Ipv4Addr,
    /// Maglev slots owned, and their share of the table.
    pub slots: u32,
    pub share: f64,
    /// Flows tracked to this backend on this node.
    pub flows: u32,
}

/// One row of `network ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub name: String,
    pub subnet: String,
    pub vni: u32,
    pub gateway: Ipv4Addr,
    pub endpoints: usize,
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeStatus::Alive => "alive",
            NodeStatus::Suspect => "suspect",
            NodeStatus::Down => "down",
            NodeStatus::Left => "left",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::ErrorKind;

    #[test]
    fn responses_have_a_stable_shape() {
        let ok = Response::Ok(Reply::JoinToken { token: "t".into() });
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"ok":{"join_token":{"token":"t"}}}"#);
        let err = Response::Error(ApiError::new(ErrorKind::BadRequest, "nope"));
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"error":{"kind":"bad_request","message":"nope"}}"#
        );
    }
}
