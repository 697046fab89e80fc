//! Driving the `meshd-cni` plugin by hand, as the spec's section 2 says a runtime does: the
//! `CNI_*` environment, the configuration on stdin, the result or error object on stdout.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::binaries;

/// One call's environment.
#[derive(Debug, Clone, Default)]
pub struct CniCall {
    pub command: String,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: String,
}

/// What the plugin did.
#[derive(Debug)]
pub struct CniOutcome {
    pub success: bool,
    /// stdout parsed (Null when empty).
    pub output: Value,
    pub stderr: String,
    pub elapsed: std::time::Duration,
}

impl CniOutcome {
    /// The error object's code (panics if the call succeeded).
    pub fn code(&self) -> u64 {
        assert!(!self.success, "expected an error, got {}", self.output);
        self.output["code"].as_u64().unwrap_or_else(|| panic!("no error code in {}", self.output))
    }

    /// `msg: details` as libcni shows it.
    pub fn message(&self) -> String {
        format!(
            "{}: {}",
            self.output["msg"].as_str().unwrap_or(""),
            self.output["details"].as_str().unwrap_or("")
        )
    }

    /// The result (panics with the error if the call failed).
    pub fn ok(self) -> Value {
        assert!(self.success, "meshd-cni failed: {} (stderr: {})", self.output, self.stderr);
        self.output
    }
}

impl CniCall {
    pub fn new(command: &str, container_id: &str, netns: &str, ifname: &str) -> CniCall {
        CniCall {
            command: command.into(),
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: ifname.into(),
            args: String::new(),
        }
    }

    pub fn args(mut self, args: &str) -> CniCall {
        self.args = args.into();
        self
    }

    /// Runs meshd-cni with `config` on stdin (CNI_PATH points at the binary's directory).
    pub fn run(&self, config: &str) -> CniOutcome {
        let start = std::time::Instant::now();
        let mut child = Command::new(binaries::meshd_cni())
            .env_clear()
            .env("CNI_COMMAND", &self.command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_ARGS", &self.args)
            .env("CNI_PATH", binaries::bin_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run meshd-cni");
        child.stdin.take().expect("stdin").write_all(config.as_bytes()).expect("write config");
        let out = child.wait_with_output().expect("meshd-cni output");
        let text = String::from_utf8_lossy(&out.stdout);
        let output = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("meshd-cni printed no JSON ({e}): {text}"))
        };
        CniOutcome {
            success: out.status.success(),
            output,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: start.elapsed(),
        }
    }
}

/// A meshd-cni entry of a conflist, as the runtime hands it to the plugin: `name` and
/// `cniVersion` inserted, plus any `extra` keys (`prevResult`, `runtimeConfig`, ...).
pub fn plugin_config(
    version: &str,
    name: &str,
    network: &str,
    socket: &std::path::Path,
    extra: Value,
) -> String {
    let mut config = serde_json::json!({
        "cniVersion": version,
        "name": name,
        "type": "meshd-cni",
        "network": network,
        "socket": socket.display().to_string(),
    });
    if let (Value::Object(map), Value::Object(more)) = (&mut config, extra) {
        map.extend(more);
    }
    config.to_string()
}
