//! Replies of the local API: `{"ok": <reply>}` or `{"error": {"kind": ..., "message": ...}}`,
//! and the rows they carry (`node ls`, `network ls`, `service ls`, ...).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::identity::NodeId;
use crate::monitor::MonitorEvent;
use crate::state::{Availability, EndpointMode, Role};

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
    NetworkDetail(NetworkDetail),
    Removed {},
    Attached {
        address: Ipv4Addr,
        interface: String,
        /// Everything a runtime reports about the attachment (absent from older meshd; boxed:
        /// the other replies are small).
        #[serde(default)]
        attachment: Option<Box<AttachmentInfo>>,
    },
    Detached {
        count: usize,
    },
    /// `task health`: how many endpoints of the task changed.
    HealthSet {
        count: usize,
    },
    Services(Vec<ServiceInfo>),
    Tasks(Vec<TaskInfo>),
    Inspect(ServiceInspect),
    KeyRotated {},
    Attachments(Vec<AttachmentInfo>),
    /// The first line of a monitor stream: events follow as [`StreamLine`]s.
    Monitoring {},
    /// `backup`: where it was written, its size, the Raft index of its snapshot.
    BackupWritten {
        path: String,
        bytes: u64,
        index: u64,
        networks: usize,
        services: usize,
    },
}

/// One attachment of this node, as a runtime reports it (a CNI result, a Docker join).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentInfo {
    pub owner: Option<String>,
    pub netns: String,
    pub network: String,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mtu: u32,
    /// The interface in the namespace (for a Docker endpoint: the peer's name as handed over).
    pub interface: String,
    /// `aa:bb:cc:dd:ee:ff`
    pub mac: String,
    pub host_interface: String,
    pub host_mac: String,
    /// Whether meshd added the namespace's default route (via the gateway).
    pub default_route: bool,
    pub service: Option<String>,
    pub task: Option<String>,
    /// Draining: no new flows.
    pub terminating: bool,
}

/// A line of a stream (after its first line, a [`Response`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamLine {
    Event(Box<MonitorEvent>),
    /// This many events did not reach this client: it read too slowly and its queue was full.
    Dropped {
        count: u64,
    },
    /// The stream is over (no `follow`, or meshd is stopping).
    End {},
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
    pub role: Role,
    /// A manager's standing in the managers' Raft group, as Swarm shows it (none for a worker).
    pub manager_status: Option<ManagerState>,
    /// Whether the group's leader counts this node as a voter.
    pub voter: bool,
    /// True for the node that answered the request.
    #[serde(rename = "self")]
    pub is_self: bool,
    /// The node's WireGuard engine for encrypted networks ("kernel", "userspace"), as its record
    /// says; None: it has none.
    #[serde(default)]
    pub encryption: Option<String>,
}

/// MANAGER STATUS in `node ls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManagerState {
    /// Leads the group.
    Leader,
    /// A manager this node sees alive.
    Reachable,
    /// A manager this node cannot reach.
    Unreachable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Alive,
    Suspect,
    Down,
    Left,
}

/// `network inspect`: the network, its address blocks and its endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkDetail {
    pub name: String,
    pub subnet: String,
    pub vni: u32,
    pub gateway: Ipv4Addr,
    pub blocks: Vec<BlockInfo>,
    pub endpoints: Vec<EndpointInfo>,
    /// `--ip-range`, `--aux-address`, `--internal`, `--opt mtu`, `--label` (and `--gateway`).
    #[serde(default)]
    pub options: crate::state::network_options::NetworkOptions,
}

/// An address block granted to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    pub index: u32,
    /// The block's addresses, as a CIDR.
    pub range: String,
    pub node: String,
}

/// An endpoint of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInfo {
    pub address: Ipv4Addr,
    pub node: String,
    pub id: String,
    pub service: Option<String>,
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
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
    /// running (receives new flows), or why not: terminating, node-down, node-drained.
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
    #[serde(default)]
    pub options: crate::state::network_options::NetworkOptions,
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

impl fmt::Display for ManagerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ManagerState::Leader => "leader",
            ManagerState::Reachable => "reachable",
            ManagerState::Unreachable => "unreachable",
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
