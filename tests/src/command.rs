//! Running commands with readable failures.

use std::ffi::OsStr;
use std::process::{Command, Output};

/// Runs `program args`; panics with the command line and its stderr if it fails.
pub fn run<I, S>(program: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = try_run(program, args);
    if !output.status.success() {
        panic!("{}", describe_failure(program, &output));
    }
    output
}

/// Runs `program args` and returns its output whatever the exit status.
pub fn try_run<I, S>(program: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_os_string()).collect();
    Command::new(program).args(&args).output().unwrap_or_else(|e| {
        panic!("cannot run {program} {args:?}: {e} (is it installed? see scripts/install-deps.sh)")
    })
}

pub fn describe_failure(what: &str, output: &Output) -> String {
    format!(
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
