//! Requests and responses of the local API.
//!
//! A request is an object tagged by `op`: `{"op":"node_ls"}`, `{"op":"join_token","rotate":true}`.
//! A response is `{"ok": <reply>}` or `{"error": {"kind": ..., "message": ...}}`. Unknown ops,
//! unknown fields and wrong types are refused with a `bad_request` that names the problem.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::identity::NodeId;

/// Largest request line the server reads; a longer one is refused and the connection closed.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Largest response line the client accepts (node tables of thousands of nodes fit easily).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Struct variants (even empty ones) so `deny_unknown_fields` applies to every request.
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Every node this node knows of.
    NodeLs {},
    /// The token another node passes to `--token`; `rotate` replaces it first.
    JoinToken {
        #[serde(default)]
        rotate: bool,
    },
    /// Sets a node's availability (replicated); `node` is a name or an ID prefix.
    NodeUpdate {
        node: String,
        availability: Availability,
    },
    /// This node leaves the cluster on purpose; meshd exits afterwards.
    Leave {},
    /// Counters of the gossip layer and the datapath.
    Stats {},
    NetworkCreate {
        name: String,
        subnet: String,
    },
    NetworkLs {},
    NetworkRm {
        name: String,
    },
    /// Attaches a namespace (`NAME` under /run/netns, or a path) to a network.
    Attach {
        netns: String,
        network: String,
        #[serde(default)]
        service: Option<String>,
        #[serde(default)]
        name: Option<String>,
        /// Do not write /etc/netns/NAME/resolv.conf.
        #[serde(default)]
        no_resolv_conf: bool,
    },
    ServiceCreate {
        name: String,
        network: String,
        #[serde(default)]
        publish: Vec<String>,
        endpoint_mode: crate::state::cluster::EndpointMode,
    },
    ServiceLs {},
    ServicePs {
        name: String,
    },
    /// The VIP's load balancing as this node's kernel maps hold it.
    ServiceInspect {
        name: String,
    },
    ServiceRm {
        name: String,
    },
    /// Detaches a namespace from one network, or from all.
    Detach {
        netns: String,
        #[serde(default)]
        network: Option<String>,
        /// Milliseconds the tasks stay terminating before they go (0: at once).
        #[serde(default)]
        grace_ms: u64,
    },
}

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
    JoinToken { token: String },
    NodeUpdated { id: NodeId },
    Left {},
    Stats { gossip: Vec<Counter>, datapath: Vec<DatapathCounter> },
    Networks(Vec<crate::overlay::manager::NetworkInfo>),
    Removed {},
    Attached { address: std::net::Ipv4Addr, interface: String },
    Detached { count: usize },
    Services(Vec<crate::overlay::manager::ServiceInfo>),
    Tasks(Vec<crate::overlay::manager::TaskInfo>),
    Inspect(crate::overlay::manager::ServiceInspect),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Active,
    Drain,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request could not be parsed or is invalid; nothing was changed.
    BadRequest,
    /// The request exceeded [`MAX_REQUEST_BYTES`].
    TooLarge,
    /// The caller is not allowed to use the API.
    Forbidden,
    /// The request names something that does not exist.
    NotFound,
    /// The request conflicts with the current state (exists already, in use, overlaps).
    Conflict,
    /// meshd failed while carrying out a valid request.
    Internal,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError { kind, message: message.into() }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::BadRequest => "bad request",
            ErrorKind::TooLarge => "request too large",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Internal => "internal error",
        })
    }
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

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Availability::Active => "active",
            Availability::Drain => "drain",
        })
    }
}

/// Parses one request line; the error is ready to send back.
pub fn parse_request(line: &[u8]) -> Result<Request, ApiError> {
    serde_json::from_slice(line)
        .map_err(|e| ApiError::new(ErrorKind::BadRequest, format!("malformed request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!(parse_request(br#"{"op":"node_ls"}"#).unwrap(), Request::NodeLs {});
        assert_eq!(parse_request(br#"{"op":"join_token"}"#).unwrap(), Request::JoinToken { rotate: false });
        assert_eq!(
            parse_request(br#"{"op":"join_token","rotate":true}"#).unwrap(),
            Request::JoinToken { rotate: true }
        );
    }

    #[test]
    fn bad_requests_say_why() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "EOF"),
            (b"{not json", "key must be a string"),
            (br#"{"op":"launch_missiles"}"#, "unknown variant `launch_missiles`"),
            (br#"{"rotate":true}"#, "missing field `op`"),
            (br#"{"op":"join_token","rotate":"yes"}"#, "invalid type"),
            (br#"{"op":"node_ls","extra":1}"#, "unknown field `extra`"),
            (b"[1,2,3]", "invalid type"),
            (&[0xff, 0xfe, 0x00], "expected value"),
        ];
        for (line, expected) in cases {
            let err = parse_request(line).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadRequest);
            assert!(err.message.contains(expected), "{:?}: {}", String::from_utf8_lossy(line), err.message);
        }
    }

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
