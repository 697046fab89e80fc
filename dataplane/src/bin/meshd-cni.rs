//! `meshd-cni`: the CNI plugin of meshd (see `meshd::cni` and docs/runtimes.md). A container
//! runtime runs it with the `CNI_*` environment and the network configuration on stdin.

use std::io::{Read, Write};
use std::process::ExitCode;

use meshd::cni::config::MAX_CONFIG_BYTES;
use meshd::cni::error::{code, CniError};
use meshd::cni::{run, Outcome, SocketMeshd};

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let read = std::io::stdin().lock().take(MAX_CONFIG_BYTES as u64 + 1).read_to_end(&mut stdin);
    let outcome = match read {
        Err(error) => Outcome {
            version: meshd::cni::version::CniVersion::LATEST.as_str().into(),
            result: Err(CniError::new(
                code::IO_FAILURE,
                "cannot read the network configuration",
                format!("stdin: {error}"),
            )),
        },
        Ok(_) if stdin.len() > MAX_CONFIG_BYTES => Outcome {
            version: meshd::cni::version::CniVersion::LATEST.as_str().into(),
            result: Err(CniError::new(
                code::IO_FAILURE,
                "cannot read the network configuration",
                format!("stdin is larger than {MAX_CONFIG_BYTES} bytes"),
            )),
        },
        Ok(_) => run(&|name| std::env::var(name).ok(), &stdin, &SocketMeshd),
    };
    let mut stdout = std::io::stdout().lock();
    match outcome.result {
        Ok(output) => {
            if let Some(value) = output {
                let _ = writeln!(stdout, "{value}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            // libcni reads the error object from stdout; stderr is for people reading logs.
            let _ = writeln!(stdout, "{}", error.to_json(&outcome.version));
            eprintln!("meshd-cni: {error}");
            ExitCode::FAILURE
        }
    }
}
