//! The embedded DNS against unbound and dnsmasq serving the same record, all three queried by
//! dnsperf from the same attached namespace in the same run.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meshd_tests::Cluster;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(ns: &str, args: &[&str]) -> Daemon {
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    std::thread::sleep(Duration::from_millis(500));
    Daemon(child)
}

/// Queries per second of dnsperf (4 clients, `secs`) against `server` from `ns`.
fn dnsperf(ns: &str, server: &str, queries: &std::path::Path, secs: u32) -> f64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "dnsperf", "-s", server, "-c", "4", "-T", "2", "-Q", "500000", "-l"])
        .arg(secs.to_string())
        .arg("-d")
        .arg(queries)
        .output()
        .expect("dnsperf (apt-get install dnsperf)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.trim_start().starts_with("Queries per second:"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub fn run_suite(quick: bool) {
    let secs = if quick { 3 } else { 10 };
    let mut cluster = Cluster::new("bdns", 1);
    cluster.form();
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "bench", "--subnet", "10.62.0.0/24"]);
    let created = n1.meshctl_ok(&["--format", "json", "service", "create", "web", "--network", "bench"]);
    let vip =
        serde_json::from_str::<serde_json::Value>(&created).unwrap()[0]["vip"].as_str().unwrap().to_string();
    let client = cluster.add_namespace("client");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &client, "--network", "bench"]);

    let dir = cluster.work_dir().join("dns-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let queries = dir.join("queries.txt");
    std::fs::write(&queries, "web A\n").unwrap();
    let unbound_conf = dir.join("unbound.conf");
    std::fs::write(
        &unbound_conf,
        format!(
            "server:\n  interface: 127.0.0.13\n  do-daemonize: no\n  chroot: \"\"\n  username: \"\"\n  pidfile: \"\"\n  \
             use-syslog: no\n  num-threads: 2\n  access-control: 127.0.0.0/8 allow\n  local-zone: \"web.\" static\n  \
             local-data: \"web. 5 IN A {vip}\"\n"
        ),
    )
    .unwrap();
    let _unbound = spawn(&client, &["unbound", "-d", "-c", unbound_conf.to_str().unwrap()]);
    let _dnsmasq = spawn(
        &client,
        &[
            "dnsmasq",
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--listen-address=127.0.0.12",
            "--bind-interfaces",
            &format!("--host-record=web,{vip}"),
            "--cache-size=1000",
        ],
    );

    println!("\n## DNS: dnsperf (4 clients, {secs} s) from an attached namespace, one A record\n");
    println!("| server | queries/s | ratio to unbound |");
    println!("|---|---|---|");
    let unbound = dnsperf(&client, "127.0.0.13", &queries, secs);
    for (name, server) in
        [("unbound", "127.0.0.13"), ("dnsmasq", "127.0.0.12"), ("meshd embedded DNS", "127.0.0.11")]
    {
        let qps = if server == "127.0.0.13" { unbound } else { dnsperf(&client, server, &queries, secs) };
        println!("| {name} | {qps:.0} | {:.2} |", qps / unbound.max(1.0));
    }

    // Freshness: how long from a detach until the name's answer changes.
    let task = cluster.add_namespace("task");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &task, "--network", "bench", "--name", "fresh"]);
    let lookup = || {
        let out = Command::new("ip")
            .args(["netns", "exec", &client, "dig", "+short", "+time=1", "+tries=1", "fresh"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    while lookup().is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    cluster.node(1).meshctl_ok(&["detach", "--netns", &task]);
    while !lookup().is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("\nFrom `meshctl detach` starting to the name being gone from answers: {} ms (includes the detach itself).", start.elapsed().as_millis());
}
