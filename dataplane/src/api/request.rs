//! Requests of the local API.
//!
//! A request is an object tagged by `op`: `{"op":"node_ls"}`, `{"op":"join_token","rotate":true}`.
//! Unknown ops, unknown fields and wrong types are refused with a `bad_request` that names the
//! problem.

use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorKind};
use crate::monitor::{EventKind, Filter};
use crate::service::ports::{PublishSpec, UnpublishSpec};
use crate::state::{Availability, EndpointMode, Health, Role};

/// Largest request line the server reads; a longer one is refused and the connection closed.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
// Struct variants (even empty ones) so `deny_unknown_fields` applies to every request.
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Every node this node knows of.
    NodeLs {},
    /// The token a new node of `role` joins with; `rotate` moves that role to a new secret
    /// first. Managers only.
    JoinToken {
        role: Role,
        #[serde(default)]
        rotate: bool,
    },
    /// Sets a node's availability (replicated); `node` is a name or an ID prefix. Managers only.
    NodeUpdate {
        node: String,
        availability: Availability,
    },
    /// Makes a node a manager. Managers only.
    NodePromote {
        node: String,
    },
    /// Makes a manager a worker. Managers only; never the last manager.
    NodeDemote {
        node: String,
    },
    /// Removes a node: its certificate is revoked cluster-wide and its records leave every
    /// table. Refused while it is alive unless `force`. Managers only.
    NodeRm {
        node: String,
        #[serde(default)]
        force: bool,
    },
    /// Rotates the gossip key: installed everywhere, used, then the old one retired.
    KeyRotate {},
    /// This node leaves the cluster on purpose; meshd exits afterwards.
    Leave {},
    /// Counters of the gossip layer and the datapath.
    Stats {},
    NetworkCreate {
        name: crate::name_rules::NetworkName,
        /// None: the next free subnet of the cluster's default address pools. Checked as it is
        /// decoded (`network::plan::parse_subnet`): host bits or a prefix meshd does not serve
        /// refuse the request with the same words meshctl prints.
        #[serde(default, deserialize_with = "checked_subnet")]
        subnet: Option<ipnet::Ipv4Net>,
        /// `--gateway`, `--ip-range`, `--aux-address`, `--internal`, `--opt mtu`, `--label`,
        /// typed (an address that does not parse is refused with the request).
        #[serde(default)]
        options: crate::state::network_options::NetworkOptions,
    },
    NetworkLs {},
    /// A network's address blocks (which node each was granted to) and endpoints, as this
    /// node's state holds them.
    NetworkInspect {
        name: String,
    },
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
        name: Option<crate::name_rules::TaskName>,
        /// Do not write /etc/netns/NAME/resolv.conf.
        #[serde(default)]
        no_resolv_conf: bool,
        /// The interface's name inside the namespace (default: the first free `ethN`).
        #[serde(default)]
        interface: Option<String>,
        /// Who owns the attachment (a runtime's key, e.g. `cni/NET/CONTAINER/IFNAME`): it is
        /// found, checked and released by this key, also when the namespace is gone. The same
        /// owner attaching the same namespace again gets its attachment back.
        #[serde(default)]
        owner: Option<String>,
        /// More names of the endpoint on the network, resolvable like its task name.
        #[serde(default)]
        aliases: Vec<crate::name_rules::TaskName>,
        /// The task's health from its attach (default healthy).
        #[serde(default)]
        health: Option<Health>,
    },
    /// Sets the health of this node's task `task` (every endpoint of it).
    TaskHealth {
        task: String,
        health: Health,
    },
    ServiceCreate {
        name: crate::name_rules::ServiceName,
        network: String,
        /// Decoded (and so checked) as it enters: `service::ports::PublishSpec`.
        #[serde(default)]
        publish: Vec<PublishSpec>,
        endpoint_mode: EndpointMode,
    },
    /// Changes a service in place (Swarm's `service update`).
    ServiceUpdate {
        name: String,
        #[serde(default)]
        publish_add: Vec<PublishSpec>,
        #[serde(default)]
        publish_rm: Vec<UnpublishSpec>,
        #[serde(default)]
        endpoint_mode: Option<EndpointMode>,
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
    /// This node's attachments, those whose owner starts with `owner_prefix` if given.
    AttachmentLs {
        #[serde(default)]
        owner_prefix: Option<String>,
    },
    /// Checks an owner's attachment against the kernel (veth, namespace, interface, address).
    AttachmentCheck {
        owner: String,
    },
    /// Releases an owner's attachments (none is not an error), after a grace period like
    /// `detach --grace`.
    Release {
        owner: String,
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
    /// `meshctl backup FILE`: this manager writes a consistent backup of the managers' state
    /// and its identity to `path` (absolute; a new file, mode 0600; never overwritten).
    /// Managers only (`manager::backup`).
    Backup {
        path: String,
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

/// Decodes `network_create`'s subnet with meshd's own check, so a bad one is refused where the
/// request enters and names the problem (host bits, prefix) as meshctl would.
fn checked_subnet<'de, D>(decoder: D) -> Result<Option<ipnet::Ipv4Net>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    match Option::<String>::deserialize(decoder)? {
        None => Ok(None),
        Some(text) => crate::network::plan::parse_subnet(&text).map(Some).map_err(serde::de::Error::custom),
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
        assert_eq!(
            parse_request(br#"{"op":"join_token","role":"worker"}"#).unwrap(),
            Request::JoinToken { role: Role::Worker, rotate: false }
        );
        assert_eq!(
            parse_request(br#"{"op":"join_token","role":"manager","rotate":true}"#).unwrap(),
            Request::JoinToken { role: Role::Manager, rotate: true }
        );
        assert_eq!(
            parse_request(br#"{"op":"node_rm","node":"n2"}"#).unwrap(),
            Request::NodeRm { node: "n2".into(), force: false }
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
            (br#"{"op":"join_token","role":"worker","rotate":"yes"}"#, "invalid type"),
            (br#"{"op":"join_token","role":"admin"}"#, "unknown variant `admin`"),
            (br#"{"op":"node_ls","extra":1}"#, "unknown field `extra`"),
            (b"[1,2,3]", "invalid type"),
            (&[0xff, 0xfe, 0x00], "expected value"),
            // Typed where the request enters: the agent never sees an unchecked subnet.
            (br#"{"op":"network_create","name":"a","subnet":"10.0.0.5/24"}"#, "did you mean 10.0.0.0/24"),
            (br#"{"op":"network_create","name":"a","subnet":"10.0.0.0/30"}"#, "between /8 and /28"),
            (br#"{"op":"network_create","name":"a","subnet":"fd00::/64"}"#, "expected an IPv4 CIDR"),
            (br#"{"op":"network_create","name":"a","subnet":7}"#, "invalid type"),
            // New names are checked as they are decoded, by the rules DNS names follow.
            (br#"{"op":"network_create","name":"front.v2"}"#, "invalid network name \"front.v2\""),
            (
                br#"{"op":"service_create","name":"-web","network":"front","endpoint_mode":"vip"}"#,
                "invalid service name",
            ),
            (br#"{"op":"attach","netns":"x","network":"front","name":"tasks.web"}"#, "invalid task name"),
            (
                br#"{"op":"attach","netns":"x","network":"front","aliases":["ok","a b"]}"#,
                "invalid task name \"a b\"",
            ),
            // And a published port: the agent gets a PublishedPort, never text.
            (br#"{"op":"service_create","name":"a","network":"n","endpoint_mode":"vip","publish":["80"]}"#, "PUBLISHED:TARGET"),
            (
                br#"{"op":"service_create","name":"a","network":"n","endpoint_mode":"vip","publish":["1-9:1-5"]}"#,
                "must match",
            ),
            (br#"{"op":"service_update","name":"a","publish_rm":["80/sctp"]}"#, "tcp and udp"),
        ];
        for (line, expected) in cases {
            let err = parse_request(line).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadRequest);
            assert!(err.message.contains(expected), "{:?}: {}", String::from_utf8_lossy(line), err.message);
        }
    }
}
