//! Client-side load and sampling for tests: curl a URL repeatedly and count who answered, and
//! run wrk and count its failures. Both run real clients inside a namespace.

use std::collections::BTreeMap;

use crate::command::stdout;
use crate::netns::Netns;

/// `count` curl requests (a new connection each) from `ns` to `url`: how often each answer
/// came back; failures are counted under "FAILED".
pub fn spread(ns: &Netns, url: &str, count: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..count {
        let out = ns.exec("curl", ["-s", "--max-time", "3", url]);
        let body = if out.status.success() { stdout(&out).trim().to_string() } else { "FAILED".to_string() };
        *seen.entry(body).or_insert(0) += 1;
    }
    seen
}

/// What one wrk run did.
pub struct WrkRun {
    pub requests: u64,
    /// Socket errors (connect, read, write, timeout) plus non-2xx/3xx answers.
    pub errors: u64,
    /// wrk's own report, for assertion messages.
    pub report: String,
}

/// wrk (one thread, 8 connections, `secs`) from namespace `ns` against `url`, with keep-alive
/// connections, or with a new connection per request when `close`.
pub fn wrk(ns: &str, url: &str, secs: u32, close: bool) -> WrkRun {
    let mut command = std::process::Command::new("ip");
    command.args(["netns", "exec", ns, "wrk", "-t1", "-c8", &format!("-d{secs}s")]);
    if close {
        command.args(["-H", "Connection: close"]);
    }
    let out = command.arg(url).output().expect("wrk (apt-get install wrk)");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let requests = report
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut errors = 0;
    for line in report.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            errors +=
                rest.split(',').filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok()).sum::<u64>();
        }
        if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += rest.trim().parse::<u64>().unwrap_or(0);
        }
    }
    WrkRun { requests, errors, report }
}
