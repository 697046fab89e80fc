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
    };
    apply(&mut state, Change::Node { id: node, record: Some(record) });
    apply(
        &mut state,
        Change::Network {
            name: "big".into(),
            record: Some(NetworkRecord { subnet: "10.0.0.0/8".parse().unwrap(), vni: 9000 }),
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
