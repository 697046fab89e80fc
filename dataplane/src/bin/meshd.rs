//! `meshd`: the node agent. See `meshd --help` and the README.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use meshd::daemon::config::{refuse_token_arg, Config, DaemonArgs};
use meshd::daemon::config_file::with_config_file;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Err(error) = refuse_token_arg(&argv) {
        eprintln!("meshd: error: {error}");
        return ExitCode::from(2);
    }
    // /etc/meshd/meshd.toml (or --config) stands in for flags; the real ones override it.
    let argv = match with_config_file(argv, &DaemonArgs::command(), &|name| std::env::var_os(name)) {
        Ok(argv) => argv,
        Err(error) => {
            eprintln!("meshd: error: {error}");
            return ExitCode::from(2);
        }
    };
    let args = DaemonArgs::parse_from(argv);
    let config = match Config::from_args(args) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("meshd: error: {error}");
            return ExitCode::from(2);
        }
    };
    meshd::daemon::logging::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("meshd: error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(meshd::daemon::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("meshd: error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text the message before it
/// already includes (our error types print their source inline).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}
