//! The network configuration on stdin, as the runtime derived it from the plugin's entry in a
//! conflist (spec section 3): `cniVersion` and `name` inserted by the runtime, meshd-cni's own
//! keys, the capabilities it declared in `runtimeConfig`, `prevResult`, and GC's list of valid
//! attachments. Unknown keys are allowed (runtimes pass them through, podman and ctr even pass
//! `capabilities`); a known key of the wrong type is an error naming it.
//!
//! meshd-cni's keys: `network` (the meshd network, required), `service` (a default service for
//! every container of this configuration), `socket` (meshd's API socket).

use std::path::PathBuf;

use serde_json::Value;

use super::error::{code, CniError};
use super::version::CniVersion;
use crate::api::DEFAULT_SOCKET;

/// The largest configuration read from stdin.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    pub version: CniVersion,
    /// The CNI network's name (the conflist's `name`): part of every owner key, so GC of one
    /// configuration never touches another's attachments.
    pub name: String,
    pub network: String,
    pub service: Option<String>,
    pub socket: PathBuf,
    /// `runtimeConfig.aliases[name]`: podman's `--network-alias` (and the short container ID).
    pub aliases: Vec<String>,
    /// `runtimeConfig.portMappings`.
    pub port_mappings: Vec<PortMapping>,
    pub prev_result: Option<Value>,
    /// GC's `cni.dev/valid-attachments` (or the spec tag's `cni.dev/attachments`).
    pub valid_attachments: Option<Vec<(String, String)>>,
}

/// One `-p HOST:CONTAINER/PROTO` of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

/// The `cniVersion` of a VERSION request (lenient: whatever string is there, else the latest).
pub fn asked_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| CniVersion::LATEST.as_str().to_string())
}

/// The `cniVersion` of any input, if it parses (errors are written in it).
pub fn version_of(stdin: &[u8]) -> Option<CniVersion> {
    let value: Value = serde_json::from_slice(stdin).ok()?;
    CniVersion::parse(value.get("cniVersion")?.as_str()?).ok()
}

pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
    let value: Value = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(code::DECODE_FAILURE, "cannot decode the network configuration", format!("stdin: {e}"))
    })?;
    let Value::Object(map) = &value else {
        return Err(invalid("the network configuration is not a JSON object"));
    };
    let string = |key: &str| -> Result<Option<String>, CniError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(&format!("{key:?} must be a string, not {}", kind(other)))),
        }
    };
    let version =
        CniVersion::parse(&string("cniVersion")?.ok_or_else(|| invalid("\"cniVersion\" is missing"))?)?;
    let name = string("name")?.ok_or_else(|| invalid("\"name\" is missing"))?;
    if !valid_name(&name) {
        return Err(invalid(&format!(
            "\"name\" {:?} must start with a letter or digit, then letters, digits, '_', '.' or '-'",
            name.chars().take(80).collect::<String>()
        )));
    }
    let network = string("network")?
        .ok_or_else(|| invalid("\"network\" is missing: set it to the meshd network (meshctl network ls)"))?;
    let service = string("service")?.filter(|s| !s.is_empty());
    let socket = match string("socket")? {
        Some(path) if !path.starts_with('/') => {
            return Err(invalid(&format!("\"socket\" {path:?} must be an absolute path")))
        }
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(DEFAULT_SOCKET),
    };
    let runtime = map.get("runtimeConfig");
    let aliases = match runtime.and_then(|r| r.get("aliases")).and_then(|a| a.get(&name)) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("\"runtimeConfig.aliases\" must hold lists of strings"))?,
        Some(other) => {
            return Err(invalid(&format!("\"runtimeConfig.aliases\" must be lists, not {}", kind(other))))
        }
    };
    let port_mappings = match runtime.and_then(|r| r.get("portMappings")) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(port_mapping).collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(invalid(&format!(
                "\"runtimeConfig.portMappings\" must be a list, not {}",
                kind(other)
            )))
        }
    };
    let prev_result = match map.get("prevResult") {
        None | Some(Value::Null) => None,
        Some(prev @ Value::Object(_)) => Some(prev.clone()),
        Some(other) => {
            return Err(invalid(&format!("\"prevResult\" must be an object, not {}", kind(other))))
        }
    };
    let valid_attachments =
        match map.get("cni.dev/valid-attachments").or_else(|| map.get("cni.dev/attachments")) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(items.iter().map(attachment).collect::<Result<_, _>>()?),
            Some(other) => {
                return Err(invalid(&format!(
                    "\"cni.dev/valid-attachments\" must be a list, not {}",
                    kind(other)
                )))
            }
        };
    Ok(NetConf {
        version,
        name,
        network,
        service,
        socket,
        aliases,
        port_mappings,
        prev_result,
        valid_attachments,
    })
}

fn port_mapping(value: &Value) -> Result<PortMapping, CniError> {
    let port = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                invalid(&format!("\"runtimeConfig.portMappings\": {key:?} must be a port in {value}"))
            })
    };
    let protocol = value.get("protocol").and_then(Value::as_str).unwrap_or("tcp").to_ascii_lowercase();
    if protocol != "tcp" && protocol != "udp" {
        return Err(CniError::new(
            code::UNSUPPORTED_FIELD,
            "unsupported field",
            format!("runtimeConfig.portMappings protocol={protocol:?}: meshd publishes tcp and udp"),
        ));
    }
    Ok(PortMapping { host_port: port("hostPort")?, container_port: port("containerPort")?, protocol })
}

fn attachment(value: &Value) -> Result<(String, String), CniError> {
    let field = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);
    match (field("containerID"), field("ifname")) {
        (Some(id), Some(ifname)) => Ok((id, ifname)),
        _ => Err(invalid(&format!("a valid attachment needs \"containerID\" and \"ifname\": {value}"))),
    }
}

/// The spec's rule for network names (the same as for container IDs).
fn valid_name(name: &str) -> bool {
    name.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn invalid(details: &str) -> CniError {
    CniError::new(code::INVALID_CONFIG, "invalid network configuration", details)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What podman 4.3 sent on ADD (from the runtime research), for a meshd-cni entry.
    const PODMAN_ADD: &str = r#"{"capabilities":{"aliases":true,"portMappings":true},
        "cniVersion":"1.0.0","name":"front","network":"front","service":"web",
        "runtimeConfig":{"aliases":{"front":["2ee2caada94b","api"]},
          "portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]},
        "type":"meshd-cni"}"#;

    #[test]
    fn podman_add() {
        let conf = parse(PODMAN_ADD.as_bytes()).unwrap();
        assert_eq!(conf.version, CniVersion::V1_0_0);
        assert_eq!((conf.name.as_str(), conf.network.as_str()), ("front", "front"));
        assert_eq!(conf.service.as_deref(), Some("web"));
        assert_eq!(conf.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(conf.aliases, ["2ee2caada94b", "api"]);
        assert_eq!(
            conf.port_mappings,
            [PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into() }]
        );
    }

    #[test]
    fn gc_lists_under_either_key() {
        for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
            let text = format!(
                r#"{{"cniVersion":"1.1.0","name":"front","network":"front","{key}":[{{"containerID":"c1","ifname":"eth0"}}]}}"#
            );
            let conf = parse(text.as_bytes()).unwrap();
            assert_eq!(conf.valid_attachments, Some(vec![("c1".to_string(), "eth0".to_string())]));
        }
    }

    #[test]
    fn errors_say_which_key() {
        let cases: &[(&str, u32, &str)] = &[
            ("not json", code::DECODE_FAILURE, "stdin"),
            ("[1]", code::INVALID_CONFIG, "not a JSON object"),
            (r#"{"name":"n","network":"x"}"#, code::INVALID_CONFIG, "cniVersion"),
            (r#"{"cniVersion":"0.3.1","name":"n","network":"x"}"#, code::INCOMPATIBLE_VERSION, "0.3.1"),
            (r#"{"cniVersion":"1.0.0","network":"x"}"#, code::INVALID_CONFIG, "\"name\""),
            (r#"{"cniVersion":"1.0.0","name":"n"}"#, code::INVALID_CONFIG, "\"network\""),
            (
                r#"{"cniVersion":"1.0.0","name":"n","network":7}"#,
                code::INVALID_CONFIG,
                "\"network\" must be a string",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","network":"x","socket":"rel"}"#,
                code::INVALID_CONFIG,
                "absolute",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","network":"x","runtimeConfig":{"portMappings":[{"hostPort":0,"containerPort":80}]}}"#,
                code::INVALID_CONFIG,
                "hostPort",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","network":"x","runtimeConfig":{"portMappings":[{"hostPort":1,"containerPort":80,"protocol":"sctp"}]}}"#,
                code::UNSUPPORTED_FIELD,
                "sctp",
            ),
        ];
        for (text, expected, needle) in cases {
            let err = parse(text.as_bytes()).unwrap_err();
            assert_eq!(err.code, *expected, "{text}: {err}");
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn versions_of_inputs() {
        assert_eq!(asked_version(br#"{"cniVersion":"1.0.0"}"#), "1.0.0");
        assert_eq!(asked_version(b""), "1.1.0");
        assert_eq!(version_of(br#"{"cniVersion":"0.4.0"}"#), Some(CniVersion::V0_4_0));
    }
}
