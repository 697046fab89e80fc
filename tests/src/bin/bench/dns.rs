//! The embedded DNS against unbound and dnsmasq serving the same record, all queried by dnsperf
//! from the same attached namespace in the same run, taking turns over several rounds: peak
//! queries/s (median and min-max), then latency percentiles at half of each server's median
//! peak. unbound runs as many threads as meshd's fast path has workers (one per core). meshd
//! with `--dns-fast-path off` (every query through hickory-server, on a second node asked from
//! a namespace of its own) takes its turn too, as the before of the same run.

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

/// dnsperf's arguments: 4 clients on 2 threads, 100 queries outstanding each.
fn dnsperf_command(ns: &str, server: &str, queries: &std::path::Path, secs: u32, rate: u64) -> Command {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", ns, "dnsperf", "-s", server, "-c", "4", "-T", "2", "-t", "2"])
        .args(["-Q", &rate.to_string(), "-l", &secs.to_string()])
        .arg("-d")
        .arg(queries);
    command
}

/// Queries per second of dnsperf against `server` from `ns`, as fast as it answers.
fn dnsperf(ns: &str, server: &str, queries: &std::path::Path, secs: u32) -> f64 {
    let out = dnsperf_command(ns, server, queries, secs, 10_000_000)
        .output()
        .expect("dnsperf (apt-get install dnsperf)");
    qps(&String::from_utf8_lossy(&out.stdout))
}

fn qps(output: &str) -> f64 {
    output
        .lines()
        .find(|l| l.trim_start().starts_with("Queries per second:"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// At `rate` queries/s: (p50, p99) latency in microseconds, answered queries/s, lost queries.
fn latency(ns: &str, server: &str, queries: &std::path::Path, secs: u32, rate: u64) -> (f64, f64, f64, u64) {
    let out = dnsperf_command(ns, server, queries, secs, rate).arg("-v").output().expect("dnsperf");
    let text = String::from_utf8_lossy(&out.stdout);
    // `-v`: one line per answer, its latency in seconds last ("> NOERROR web A 0.000071").
    let mut samples: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("> "))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        if samples.is_empty() {
            return f64::NAN;
        }
        samples[((samples.len() - 1) as f64 * q).round() as usize] * 1e6
    };
    let lost = text
        .lines()
        .find(|l| l.trim_start().starts_with("Queries lost:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (at(0.5), at(0.99), qps(&text), lost)
}

/// CPU time (user + system, in clock ticks) of the threads of `pid` whose name starts with
/// `prefix` (all of them for ""): what a server spent, whatever else loads the machine.
fn cpu_ticks(pid: u32, prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            if !comm.starts_with(prefix) {
                return None;
            }
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            // After the command name: state is field 3, utime field 14, stime field 15.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let n = sorted.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn range(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

pub fn run_suite(quick: bool) {
    let secs = if quick { 3 } else { 10 };
    let rounds = if quick { 2 } else { 5 };
    let latency_secs = if quick { 2 } else { 4 };
    // As many threads for unbound as meshd's fast path has workers.
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8);
    let mut cluster = Cluster::new("bdns", 2);
    cluster.form_per_node(|i| if i == 2 { vec!["--dns-fast-path".into(), "off".into()] } else { Vec::new() });
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "bench", "--subnet", "10.62.0.0/24"]);
    let created = n1.meshctl_ok(&["--format", "json", "service", "create", "web", "--network", "bench"]);
    let vip =
        serde_json::from_str::<serde_json::Value>(&created).unwrap()[0]["vip"].as_str().unwrap().to_string();
    let client = cluster.add_namespace("client");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &client, "--network", "bench"]);
    let slow_client = cluster.add_namespace("slowclient");
    cluster.wait_listed(&["service", "ls"], "web");
    cluster.node(2).meshctl_ok(&["attach", "--netns", &slow_client, "--network", "bench"]);

    let dir = cluster.work_dir().join("dns-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let queries = dir.join("queries.txt");
    std::fs::write(&queries, "web A\n").unwrap();
    let unbound_conf = dir.join("unbound.conf");
    std::fs::write(
        &unbound_conf,
        format!(
            "server:\n  interface: 127.0.0.13\n  do-daemonize: no\n  chroot: \"\"\n  username: \"\"\n  pidfile: \"\"\n  \
             use-syslog: no\n  num-threads: {threads}\n  so-reuseport: yes\n  access-control: 127.0.0.0/8 allow\n  \
             local-zone: \"web.\" static\n  local-data: \"web. 5 IN A {vip}\"\n"
        ),
    )
    .unwrap();
    let unbound_daemon = spawn(&client, &["unbound", "-d", "-c", unbound_conf.to_str().unwrap()]);
    let dnsmasq_daemon = spawn(
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
    let servers: [(&str, &str, &str); 4] = [
        ("meshd embedded DNS (fast path)", &client, "127.0.0.11"),
        ("unbound", &client, "127.0.0.13"),
        ("dnsmasq", &client, "127.0.0.12"),
        ("meshd, --dns-fast-path off (hickory-server)", &slow_client, "127.0.0.11"),
    ];
    // Whose CPU each turn is charged to: meshd's fast-path workers (its control plane runs on
    // the same cores but is not the DNS), the hickory-server node's whole process, the others'.
    let cpu_of: [(u32, &str); 4] = [
        (cluster.node(1).pid().expect("meshd runs"), "dns-fast-"),
        (unbound_daemon.0.id(), ""),
        (dnsmasq_daemon.0.id(), ""),
        (cluster.node(2).pid().expect("meshd runs"), ""),
    ];
    for (name, ns, server) in servers {
        let answer = Command::new("ip")
            .args(["netns", "exec", ns, "dig", "+short", "+time=2", &format!("@{server}"), "web"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&answer.stdout).trim(), vip, "{name} answers web");
        dnsperf(ns, server, &queries, 1);
    }

    // Peak rate: the servers take turns, the first one of a round moving on each round.
    let mut peak: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut cpu_per_query: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    // /proc counts CPU time in USER_HZ ticks, 100 per second on Linux whatever the kernel's HZ.
    let tick_us = 1e6 / 100.0;
    for round in 0..rounds {
        for k in 0..servers.len() {
            let i = (k + round) % servers.len();
            let (_, ns, server) = servers[i];
            let (pid, threads) = cpu_of[i];
            let before = cpu_ticks(pid, threads);
            let rate = dnsperf(ns, server, &queries, secs);
            let spent = cpu_ticks(pid, threads).saturating_sub(before) as f64 * tick_us;
            peak[i].push(rate);
            cpu_per_query[i].push(spent / (rate * f64::from(secs)).max(1.0));
        }
    }
    let unbound = median(&peak[1]);
    println!(
        "\n## DNS: dnsperf (4 clients, {secs} s a turn, {rounds} rounds taking turns) from an attached namespace, one A record; \
         unbound with {threads} threads, meshd's fast path with {threads} workers\n"
    );
    println!(
        "| server | queries/s median | min | max | ratio to unbound (median) | ratio per round (min-max) | server CPU µs/query (median, min-max) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, (name, _, _)) in servers.iter().enumerate() {
        let (min, max) = range(&peak[i]);
        let ratios: Vec<f64> = peak[i].iter().zip(&peak[1]).map(|(x, u)| x / u.max(1.0)).collect();
        let (rmin, rmax) = range(&ratios);
        let (cmin, cmax) = range(&cpu_per_query[i]);
        println!(
            "| {name} | {:.0} | {min:.0} | {max:.0} | {:.2} | {rmin:.2}-{rmax:.2} | {:.2} ({cmin:.2}-{cmax:.2}) |",
            median(&peak[i]),
            median(&peak[i]) / unbound.max(1.0),
            median(&cpu_per_query[i])
        );
    }

    // Latency at half of each server's median peak, taking turns again.
    let mut p50: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut p99: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut lost = vec![0u64; servers.len()];
    let latency_rounds = rounds.min(3);
    for round in 0..latency_rounds {
        for k in 0..servers.len() {
            let i = (k + round) % servers.len();
            let (_, ns, server) = servers[i];
            let rate = (median(&peak[i]) / 2.0) as u64;
            let (a, b, _, l) = latency(ns, server, &queries, latency_secs, rate.max(1));
            p50[i].push(a);
            p99[i].push(b);
            lost[i] += l;
        }
    }
    println!(
        "\nLatency at 50 % of each server's median peak (dnsperf -Q, {latency_secs} s a turn, {latency_rounds} rounds taking turns; \
         median of the rounds, min-max in brackets):\n"
    );
    println!("| server | rate (q/s) | p50 (µs) | p99 (µs) | lost |");
    println!("|---|---|---|---|---|");
    for (i, (name, _, _)) in servers.iter().enumerate() {
        let (a0, a1) = range(&p50[i]);
        let (b0, b1) = range(&p99[i]);
        println!(
            "| {name} | {:.0} | {:.0} ({a0:.0}-{a1:.0}) | {:.0} ({b0:.0}-{b1:.0}) | {} |",
            median(&peak[i]) / 2.0,
            median(&p50[i]),
            median(&p99[i]),
            lost[i]
        );
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
    registry_memory();
}

/// Heap taken by the DNS registry for 10,000 services with 3 tasks each (in process: the cluster
/// state is built directly, then the registry from it, as meshd does after every snapshot).
pub fn registry_memory() {
    use meshd::identity::NodeId;
    use meshd::state::Snapshot;
    use meshd::state::{Change, ClusterState, Delta, Version};
    use meshd::state::{EndpointMode, EndpointRecord, Liveness, NetworkRecord, NodeRecord, ServiceRecord};

    let node = NodeId::from_bytes([1; 16]);
    let mut state = ClusterState::default();
    let mut lamport = 0;
    let mut apply = |state: &mut ClusterState, change| {
        lamport += 1;
        state.apply(Delta { version: Version { lamport, node }, change }, std::time::Instant::now()).unwrap();
    };
    let record = NodeRecord {
        name: "n1".into(),
        gossip_addr: "10.77.0.1:7946".parse().unwrap(),
        left: false,
        departed: None,
        cert: Default::default(),
        founder: None,
        keyring: Default::default(),
        wireguard: None,
    };
    apply(&mut state, Change::Node { id: node, record: Some(record) });
    apply(
        &mut state,
        Change::Network {
            name: "big".into(),
            record: Some(NetworkRecord {
                subnet: "10.0.0.0/8".parse().unwrap(),
                vni: 9000,
                options: Default::default(),
            }),
        },
    );
    for s in 0..10_000u32 {
        let vip = std::net::Ipv4Addr::from(0x0a00_0000 + s * 4);
        let record = ServiceRecord {
            network: "big".into(),
            mode: EndpointMode::Vip,
            vip: Some(vip),
            ports: Vec::new(),
        };
        apply(&mut state, Change::Service { name: format!("svc{s}"), record: Some(record) });
        for t in 1..=3u32 {
            let endpoint = EndpointRecord {
                network: "big".into(),
                address: std::net::Ipv4Addr::from(0x0a00_0000 + s * 4 + t),
                service: Some(format!("svc{s}")),
                task: Some(format!("svc{s}.{t}")),
                terminating: false,
                aliases: Vec::new(),
                health: Default::default(),
            };
            apply(
                &mut state,
                Change::Endpoint { owner: node, id: format!("e{s}.{t}"), record: Some(endpoint) },
            );
        }
    }
    let snapshot = Snapshot {
        self_id: node,
        cluster: meshd::identity::Fingerprint::from_bytes([0; 16]),
        state,
        liveness: std::collections::BTreeMap::from([(node, Liveness::Alive)]),
    };
    let before = crate::alloc::live();
    let started = Instant::now();
    let registry = meshd::discovery::names::build(&snapshot);
    let took = started.elapsed();
    let bytes = crate::alloc::live() - before;
    println!(
        "\nRegistry for 10,000 services x 3 tasks (40,000 addresses, 100,000+ names): {:.1} MiB of heap, built in {} ms.",
        bytes as f64 / (1024.0 * 1024.0),
        took.as_millis()
    );
    drop(registry);
}
