//! `meshd-cni`: the CNI plugin (type `meshd-cni`, spec 1.1, configurations of 0.4.0 and 1.0.0
//! too) that attaches containers of podman, containerd/nerdctl and Kubernetes through the
//! node's meshd. It is a short-lived process per call: the `CNI_*` environment and the
//! configuration on stdin in, a result or an error object on stdout. It keeps no state of its
//! own: meshd holds every attachment under an owner key (`command::owner`).
//!
//! - [`env`]: the `CNI_*` variables; [`args`]: `CNI_ARGS`; [`config`]: stdin.
//! - [`command`]: ADD, DEL, CHECK, STATUS, GC against meshd; [`result`]: ADD results.
//! - [`version`]: what versions are spoken; [`error`]: error objects and codes.

pub mod args;
pub mod command;
pub mod config;
pub mod env;
pub mod error;
pub mod result;
pub mod version;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

pub use command::Meshd;
pub use error::CniError;

use self::env::Command;
use self::version::CniVersion;
use crate::api::client::{self, ClientError};
use crate::api::reply::Reply;
use crate::api::request::Request;

/// meshd at the configuration's socket.
pub struct SocketMeshd;

impl Meshd for SocketMeshd {
    fn call(&self, socket: &Path, request: &Request, wait: Duration) -> Result<Reply, ClientError> {
        client::call_waiting(socket, request, wait)
    }
}

/// What one invocation prints: the version its output is written in, and the output (None:
/// nothing, as DEL, CHECK, STATUS and GC print on success).
pub struct Outcome {
    pub version: String,
    pub result: Result<Option<Value>, CniError>,
}

/// Runs one invocation: the environment through `var`, the configuration from `stdin`.
pub fn run(var: &dyn Fn(&str) -> Option<String>, stdin: &[u8], meshd: &dyn Meshd) -> Outcome {
    let version = config::version_of(stdin).unwrap_or(CniVersion::LATEST).as_str().to_string();
    let result = dispatch(var, stdin, meshd);
    Outcome { version, result }
}

fn dispatch(
    var: &dyn Fn(&str) -> Option<String>,
    stdin: &[u8],
    meshd: &dyn Meshd,
) -> Result<Option<Value>, CniError> {
    let invocation = env::read(var)?;
    if invocation.command == Command::Version {
        return Ok(Some(version::version_result(&config::asked_version(stdin))));
    }
    let conf = config::parse(stdin)?;
    match invocation.command {
        Command::Add => {
            let args = args::parse(&invocation.args)?;
            command::add(meshd, &invocation, &args, &conf).map(Some)
        }
        Command::Del => {
            // DEL is best effort: arguments that no longer parse must not keep an attachment.
            let args = args::parse(&invocation.args).unwrap_or_default();
            command::del(meshd, &invocation, &args, &conf).map(|()| None)
        }
        Command::Check => command::check(meshd, &invocation, &conf).map(|()| None),
        Command::Status => command::status(meshd, &conf).map(|()| None),
        Command::Gc => command::gc(meshd, &conf).map(|()| None),
        Command::Version => unreachable!("answered above"),
    }
}
