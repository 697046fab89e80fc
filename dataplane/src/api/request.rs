//! Requests of the local API.
//!
//! A request is an object tagged by `op`: `{"op":"node_ls"}`, `{"op":"join_token","rotate":true}`.
//! Unknown ops, unknown fields and wrong types are refused with a `bad_request` that names the
//! problem.

use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorKind};
use crate::monitor::{EventKind, Filter};
use crate::state::{Availability, EndpointMode};

/// Largest request line the server reads; a longer one is refused and the connection closed.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

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
        endpoint_mode: EndpointMode,
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
    /// Drop and flow events as the programs see them. The answer is a stream (see
    /// [`super::reply::StreamLine`]): the recent events that match, then, with `follow`, every
    /// new one until the client goes; without it, an `end` line.
    Monitor {
        /// drop, flow (empty: both).
        #[serde(default)]
        types: Vec<EventKind>,
        #[serde(default)]
        network: Option<String>,
        #[serde(default)]
        service: Option<String>,
        #[serde(default)]
        follow: bool,
    },
}

impl Request {
    /// The monitor's filter, for a [`Request::Monitor`].
    pub fn monitor_filter(&self) -> Option<(Filter, bool)> {
        match self {
            Request::Monitor { types, network, service, follow } => Some((
                Filter { types: types.clone(), network: network.clone(), service: service.clone() },
                *follow,
            )),
            _ => None,
        }
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
        let monitor =
            parse_request(br#"{"op":"monitor","types":["drop"],"network":"front","follow":true}"#).unwrap();
        let (filter, follow) = monitor.monitor_filter().unwrap();
        assert!(follow);
        assert_eq!(filter.types, [EventKind::Drop]);
        assert_eq!(filter.network.as_deref(), Some("front"));
        assert!(parse_request(br#"{"op":"monitor","types":["everything"]}"#).is_err());
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
}
