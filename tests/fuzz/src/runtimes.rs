//! What local clients and container runtimes hand meshd: API requests on its Unix socket,
//! meshd-cni's environment and stdin, the bodies of Docker's driver calls, and meshd.toml.

use std::path::Path;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use meshd::api::client::ClientError;
use meshd::api::reply::Reply;
use meshd::api::request::{parse_request, Request};
use meshd::cni::command::Meshd;
use meshd::cni::error::code;
use meshd::daemon::config::DaemonArgs;
use meshd::daemon::config_file::file_args;
use meshd::docker::protocol;

/// One request line on the API socket.
pub fn api(data: &[u8]) {
    if let Ok(request) = parse_request(data) {
        let _ = request.monitor_filter();
    }
}

/// A meshd that is not there: every call fails as a dead socket does.
struct Absent;

impl Meshd for Absent {
    fn call(&self, _socket: &Path, _request: &Request, _wait: Duration) -> Result<Reply, ClientError> {
        Err(ClientError::Protocol("no meshd in the fuzzer".into()))
    }
}

/// One meshd-cni invocation: `NAME=VALUE` lines (the environment) up to an empty line, then
/// stdin. Any input gets a decision of a documented kind, never a panic.
pub fn cni(data: &[u8]) {
    let (env, stdin) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let env = String::from_utf8_lossy(env);
    let vars: Vec<(&str, &str)> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let var = |name: &str| vars.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
    let outcome = meshd::cni::run(&var, stdin, &Absent);
    if let Err(error) = &outcome.result {
        assert!(
            [
                code::INCOMPATIBLE_VERSION,
                code::UNSUPPORTED_FIELD,
                code::INVALID_ENV,
                code::IO_FAILURE,
                code::DECODE_FAILURE,
                code::INVALID_CONFIG,
                code::TRY_AGAIN_LATER,
                code::NOT_AVAILABLE,
            ]
            .contains(&error.code)
                || error.code >= 100,
            "an undocumented CNI error code {}: {error:?}",
            error.code
        );
        let _ = error.to_json(&outcome.version);
    }
}

/// One driver call: the path on the first line, the body after it.
pub fn docker(data: &[u8]) {
    let (path, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let path = String::from_utf8_lossy(path);
    let _ = protocol::parse(&path, body);
}

/// meshd.toml: the file's settings become arguments, which meshd's flags then parse.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let command = DaemonArgs::command();
    let Ok(args) = file_args(Path::new("meshd.toml"), text, &command, &|_| None) else { return };
    let mut argv: Vec<std::ffi::OsString> = vec!["meshd".into()];
    argv.extend(args);
    let _ = DaemonArgs::try_parse_from(argv);
}
