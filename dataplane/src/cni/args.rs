//! `CNI_ARGS` (`K=V;K=V`): the per-container settings meshd-cni understands.
//!
//! - `MESHD_SERVICE`: the service the container is a task of (overrides the config's `service`).
//! - `MESHD_TASK`: its task name (default: `K8S_POD_NAME`, which podman sets to the container's
//!   name, or the first 12 characters of the container ID).
//! - `MESHD_GRACE`: on DEL, how long the task drains before it goes (as `detach --grace`).
//!
//! `IP=` and `MAC=` (podman's `--ip`, `--mac-address`) are refused: meshd assigns addresses from
//! its own IPAM. Any other key is refused unless `IgnoreUnknown=1` is present, as the
//! conventions say; the Kubernetes keys are known and not needed.

use std::time::Duration;

use super::error::{code, CniError};

/// The longest grace a DEL may ask for (the runtime waits for it).
pub const MAX_GRACE: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pub service: Option<String>,
    pub task: Option<String>,
    pub grace: Option<Duration>,
    pub pod_name: Option<String>,
}

/// Keys runtimes send that meshd does not need.
const KNOWN_UNUSED: [&str; 4] =
    ["K8S_POD_NAMESPACE", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID", "IgnoreUnknown"];

pub fn parse(text: &str) -> Result<CniArgs, CniError> {
    let mut pairs = Vec::new();
    for part in text.split(';').filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return Err(unsupported(&format!("CNI_ARGS entry {:?} is not KEY=VALUE", shown(part))));
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(unsupported(&format!("CNI_ARGS key {:?} is not alphanumeric", shown(key))));
        }
        pairs.push((key, value));
    }
    let ignore_unknown =
        pairs.iter().any(|(k, v)| *k == "IgnoreUnknown" && (v.eq_ignore_ascii_case("true") || *v == "1"));
    let mut args = CniArgs::default();
    for (key, value) in pairs {
        match key {
            "MESHD_SERVICE" => args.service = Some(value.to_string()).filter(|v| !v.is_empty()),
            "MESHD_TASK" => args.task = Some(value.to_string()).filter(|v| !v.is_empty()),
            "MESHD_GRACE" => {
                let grace = crate::util::duration::within(Duration::from_millis(1), MAX_GRACE)(value)
                    .map_err(|why| unsupported(&format!("CNI_ARGS MESHD_GRACE={}: {why}", shown(value))))?;
                args.grace = Some(grace);
            }
            "K8S_POD_NAME" => args.pod_name = Some(value.to_string()).filter(|v| !v.is_empty()),
            "IP" | "MAC" => {
                return Err(unsupported(&format!(
                "CNI_ARGS {key}={}: meshd assigns addresses from its own IPAM; a fixed {} is not supported",
                shown(value),
                if key == "IP" { "address" } else { "MAC address" }
            )))
            }
            _ if KNOWN_UNUSED.contains(&key) => {}
            _ if ignore_unknown => {}
            _ => {
                return Err(unsupported(&format!(
                    "CNI_ARGS {key}={} is not a meshd-cni argument (add IgnoreUnknown=1 to ignore it)",
                    shown(value)
                )))
            }
        }
    }
    Ok(args)
}

fn shown(text: &str) -> String {
    text.chars().take(80).collect()
}

fn unsupported(details: &str) -> CniError {
    CniError::new(code::UNSUPPORTED_FIELD, "unsupported field", details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_and_meshd_keys() {
        let args =
            parse("IgnoreUnknown=1;K8S_POD_NAME=pd1;MESHD_SERVICE=web;MESHD_GRACE=2s;FOO=bar").unwrap();
        assert_eq!(args.pod_name.as_deref(), Some("pd1"));
        assert_eq!(args.service.as_deref(), Some("web"));
        assert_eq!(args.grace, Some(Duration::from_secs(2)));
        assert_eq!(parse("").unwrap(), CniArgs::default());
        assert_eq!(parse("MESHD_TASK=api.1").unwrap().task.as_deref(), Some("api.1"));
    }

    #[test]
    fn refusals_name_the_key_and_value() {
        for (text, needle) in [
            ("FOO=bar", "FOO=bar"),
            ("IgnoreUnknown=1;IP=10.99.0.77", "IP=10.99.0.77"),
            ("MAC=02:00:00:00:00:77;IgnoreUnknown=1", "MAC=02:00:00:00:00:77"),
            ("MESHD_GRACE=soon", "MESHD_GRACE=soon"),
            ("MESHD_GRACE=2h", "out of range"),
            ("novalue", "novalue"),
            ("bad key=1", "bad key"),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.code, code::UNSUPPORTED_FIELD);
            assert!(err.details.contains(needle), "{text}: {err}");
        }
    }
}
