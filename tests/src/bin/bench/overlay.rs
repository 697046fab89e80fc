//! Overlay throughput, small-packet rate and latency, side by side in one run, paths taking
//! turns: the plain underlay, a Docker-style kernel overlay (bridge + VXLAN device with static
//! FDB entries, built here), meshd with its fast path (VXLAN encapsulated and decapsulated in tc)
//! and meshd with `--overlay-fast-path off` (through its VXLAN device).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use meshd_tests::command::{run, stdout};
use meshd_tests::{Cluster, Netns};

/// An iperf3 server in a namespace, stopped on drop.
struct Server(Child);

impl Server {
    fn start(ns: &str) -> Server {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "iperf3", "-s", "-p", "5201"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 (apt-get install iperf3)");
        std::thread::sleep(Duration::from_millis(400));
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// TCP throughput in Gbit/s from `client_ns` to `server_ip` (median of `runs` runs of `secs`).
pub fn throughput(client_ns: &str, server_ns: &str, server_ip: &str, runs: usize, secs: u32) -> f64 {
    let _server = Server::start(server_ns);
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let out = Command::new("ip")
                .args(["netns", "exec", client_ns, "iperf3", "-J", "-c", server_ip, "-t", &secs.to_string()])
                .output()
                .expect("iperf3");
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            json["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e9
        })
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[samples.len() / 2]
}

/// The Docker-style overlay: in each node namespace a bridge with a VXLAN port (static FDB
/// flooding entry to the other node, no learning of remote MACs beyond the bridge) and a
/// container namespace on the bridge. Returns the two container namespaces.
pub fn kernel_overlay(cluster: &Cluster) -> (Netns, Netns) {
    let containers =
        [Netns::new(&format!("{}-k1", cluster.prefix())), Netns::new(&format!("{}-k2", cluster.prefix()))];
    for (i, (node, container)) in [cluster.node(1), cluster.node(2)].into_iter().zip(&containers).enumerate()
    {
        let local = node.addr.to_string();
        let remote = cluster.node(2 - i).addr.to_string();
        node.ns.ip(["link", "add", "kbr0", "type", "bridge"]);
        node.ns.ip([
            "link",
            "add",
            "kvx0",
            "type",
            "vxlan",
            "id",
            "42",
            "dstport",
            "4790",
            "local",
            &local,
            "nolearning",
        ]);
        node.ns.ip(["link", "set", "kvx0", "master", "kbr0", "up"]);
        node.ns.ip(["link", "set", "kbr0", "up"]);
        run(
            "bridge",
            ["-n", node.ns.name(), "fdb", "append", "00:00:00:00:00:00", "dev", "kvx0", "dst", &remote],
        );
        node.ns.ip(["link", "add", "kv0", "type", "veth", "peer", "name", "eth0", "netns", container.name()]);
        node.ns.ip(["link", "set", "kv0", "master", "kbr0", "up"]);
        container.ip(["addr", "add", &format!("10.99.0.{}/24", i + 1), "dev", "eth0"]);
        container.ip(["link", "set", "eth0", "mtu", "1450", "up"]);
    }
    let [a, b] = containers;
    (a, b)
}

/// One TCP run of `secs` seconds (after a 1 s warm-up that is not counted), in Gbit/s, against
/// an iperf3 server already running in the server's namespace.
fn tcp_once(client_ns: &str, server_ip: &str, secs: u32) -> f64 {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            client_ns,
            "iperf3",
            "-J",
            "-c",
            server_ip,
            "-O",
            "1",
            "-t",
            &secs.to_string(),
        ])
        .output()
        .expect("iperf3");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    json["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e9
}

/// 64-byte UDP datagrams sent as fast as iperf3 can for `secs` seconds: packets per second the
/// server received.
fn udp_pps_once(client_ns: &str, server_ip: &str, secs: u32) -> f64 {
    let out = Command::new("ip")
        .args(["netns", "exec", client_ns, "iperf3", "-J", "-u", "-l", "64", "-b", "0", "-c", server_ip])
        .args(["-t", &secs.to_string()])
        .output()
        .expect("iperf3");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let sum = &json["end"]["sum"];
    let sent = sum["packets"].as_f64().unwrap_or(0.0);
    let lost = sum["lost_packets"].as_f64().unwrap_or(0.0);
    let seconds = sum["seconds"].as_f64().unwrap_or(f64::from(secs)).max(0.001);
    (sent - lost).max(0.0) / seconds
}

/// Round trips of `count` pings 10 ms apart, in microseconds, sorted.
fn rtts(client_ns: &str, target: &str, count: u32) -> Vec<f64> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            client_ns,
            "ping",
            "-n",
            "-i",
            "0.01",
            "-W",
            "1",
            "-c",
            &count.to_string(),
            target,
        ])
        .output()
        .expect("ping");
    // 64 bytes from 10.60.0.3: icmp_seq=1 ttl=64 time=0.045 ms
    let mut samples: Vec<f64> = stdout(&out)
        .lines()
        .filter_map(|l| l.split("time=").nth(1))
        .filter_map(|v| v.split_whitespace().next())
        .filter_map(|v| v.parse::<f64>().ok())
        .map(|ms| ms * 1000.0)
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples
}

/// The `q` quantile (0..=1) of sorted samples.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Median, min and max.
fn summary(values: &[f64]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
    (median, v[0], v[v.len() - 1])
}

/// GSO on the wire: the outer lengths of the tunnel packets `node_ns` sends on `iface` (its
/// underlay) while one TCP stream runs on `path`: (packets seen, median, max) in bytes.
fn wire_lengths(node_ns: &str, iface: &str, port: &str, path: &Path) -> (usize, f64, f64) {
    let capture = Command::new("ip")
        .args([
            "netns", "exec", node_ns, "timeout", "4", "tcpdump", "-nn", "-q", "-l", "-i", iface, "-c", "400",
        ])
        .args(["-Q", "out", "udp", "dst", "port", port])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump");
    std::thread::sleep(Duration::from_millis(500));
    tcp_once(&path.client, &path.ip, 2);
    let out = capture.wait_with_output().expect("tcpdump");
    // "IP 10.77.0.1.52349 > 10.77.0.2.PORT: UDP, length 64308": the largest length on a line is
    // the outer one.
    let mut lengths: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split("length ")
                .skip(1)
                .filter_map(|v| v.split(|c: char| !c.is_ascii_digit()).next()?.parse::<f64>().ok())
                .reduce(f64::max)
        })
        .collect();
    lengths.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (lengths.len(), quantile(&lengths, 0.5), lengths.last().copied().unwrap_or(f64::NAN))
}

/// The offload settings that decide whether tunnel packets keep GSO and GRO, from `ethtool -k`.
fn offloads(ns: &str, iface: &str) -> String {
    let out =
        Command::new("ip").args(["netns", "exec", ns, "ethtool", "-k", iface]).output().expect("ethtool");
    stdout(&out)
        .lines()
        .filter(|l| {
            [
                "tcp-segmentation-offload:",
                "generic-segmentation-offload:",
                "generic-receive-offload:",
                "tx-udp_tnl-segmentation:",
                "tx-udp_tnl-csum-segmentation:",
                "rx-udp-gro-forwarding:",
            ]
            .iter()
            .any(|k| l.trim_start().starts_with(k))
        })
        .map(|l| l.trim().replace(": ", " "))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A system-wide profile (`perf record -a -g`) while one TCP stream runs on `path` for `secs`
/// seconds: the top symbols by self time, from `perf report`.
fn profile(path: &Path, secs: u32) -> String {
    let data = std::env::temp_dir().join(format!("meshd-bench-perf-{}.data", std::process::id()));
    let recorder = Command::new("perf")
        .args(["record", "-a", "-g", "-q", "-o"])
        .arg(&data)
        .args(["--", "sleep", &(secs + 1).to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(recorder) = recorder else { return "perf not found (apt-get install linux-perf)".into() };
    tcp_once(&path.client, &path.ip, secs);
    let _ = recorder.wait_with_output();
    let out = Command::new("perf")
        .args(["report", "--stdio", "--no-children", "-g", "none", "--percent-limit", "1.5"])
        // An explicit sort: with --comms and no call graph, perf 6.x prints no rows for its default.
        .args(["--sort", "comm,dso,sym"])
        // The benchmark's own processes and the softirq threads: not the other load on the machine.
        .args(["--comms", "iperf3,ksoftirqd/0,ksoftirqd/1,swapper", "-i"])
        .arg(&data)
        .output();
    let _ = std::fs::remove_file(&data);
    let Ok(out) = out else { return "perf report failed".into() };
    stdout(&out)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .take(25)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One path under test: where the client and the server run.
struct Path {
    name: &'static str,
    client: String,
    server: String,
    ip: String,
}

/// What one round measured on one path.
#[derive(Default, Clone)]
struct Sample {
    gbps: f64,
    pps: f64,
    p50: f64,
    p99: f64,
}

/// A two-node meshd cluster with one network and a namespace attached on each node; returns the
/// cluster, the client namespace on n1 and the server's overlay address on n2.
fn meshd_pair(tag: &str, extra: &[&str]) -> (Cluster, String, String, String) {
    let mut cluster = Cluster::new(tag, 2);
    // One manager: the benchmark needs no Raft majority, and forms faster on a loaded machine.
    cluster.form_roles(1, extra);
    cluster.node(1).meshctl_ok(&["network", "create", "bench", "--subnet", "10.60.0.0/24"]);
    cluster.wait_for("the network on n2", Duration::from_secs(10), |c| {
        c.node(2).meshctl_ok(&["network", "ls"]).contains("bench")
    });
    let a = cluster.add_namespace("ma");
    let b = cluster.add_namespace("mb");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &a, "--network", "bench"]);
    let ip_b =
        cluster.node(2).meshctl_ok(&["attach", "--netns", &b, "--network", "bench"]).trim().to_string();
    cluster.wait_for("meshd overlay up", Duration::from_secs(10), |c| {
        c.namespace(&a).exec("ping", ["-c", "1", "-W", "1", &ip_b]).status.success()
    });
    (cluster, a, b, ip_b)
}

/// The four paths side by side: in every round each path runs once (the order rotates from round
/// to round), TCP throughput, 64-byte UDP packets/s and ping round trips; then the median and
/// min-max over the rounds, and per round the ratio to the underlay and to the kernel overlay.
/// The meshd paths are two clusters of their own (the fast path is a start-up setting); the
/// underlay and kernel overlay are measured in the fast-path cluster's node namespaces.
pub fn run_suite(quick: bool) {
    let (rounds, secs, pings) = if quick { (2, 2, 100) } else { (7, 5, 500) };
    let (fast, a, b, ip_b) = meshd_pair("boverlay", &[]);
    let (slow, sa, sb, sip_b) = meshd_pair("boverlayoff", &["--overlay-fast-path", "off"]);
    let (ka, kb) = kernel_overlay(&fast);
    assert!(ka.exec("ping", ["-c", "2", "-W", "2", "10.99.0.2"]).status.success(), "kernel overlay works");

    let paths = [
        Path {
            name: "plain underlay (node to node)",
            client: fast.node(1).ns.name().into(),
            server: fast.node(2).ns.name().into(),
            ip: fast.node(2).addr.to_string(),
        },
        Path {
            name: "Docker-style kernel overlay (bridge + vxlan)",
            client: ka.name().into(),
            server: kb.name().into(),
            ip: "10.99.0.2".into(),
        },
        Path {
            name: "meshd, fast path (tc encap/decap)",
            client: a.clone(),
            server: b.clone(),
            ip: ip_b.clone(),
        },
        Path {
            name: "meshd, --overlay-fast-path off (vxlan device)",
            client: sa.clone(),
            server: sb.clone(),
            ip: sip_b.clone(),
        },
    ];
    let _servers: Vec<Server> = paths.iter().map(|p| Server::start(&p.server)).collect();

    println!("\n## Overlay: GSO and GRO on the way (one TCP stream for 2 s per path)\n");
    println!("- offloads, n1's underlay eth0: {}", offloads(fast.node(1).ns.name(), "eth0"));
    println!("- offloads, a container's eth0: {}", offloads(&a, "eth0"));
    // The clusters run on the default data path port.
    let vxlan = meshd::identity::settings::DEFAULT_DATA_PATH_PORT.to_string();
    for (path, node_ns, port) in [
        (&paths[2], fast.node(1).ns.name(), vxlan.as_str()),
        (&paths[3], slow.node(1).ns.name(), vxlan.as_str()),
        (&paths[1], fast.node(1).ns.name(), "4790"),
    ] {
        let (n, median, max) = wire_lengths(node_ns, "eth0", port, path);
        println!("- {}: {n} tunnel packets sent on n1's eth0, outer UDP length median {median:.0}, max {max:.0} bytes", path.name);
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); paths.len()];
    for round in 0..rounds {
        for k in 0..paths.len() {
            let i = (round + k) % paths.len();
            let p = &paths[i];
            let gbps = tcp_once(&p.client, &p.ip, secs);
            let pps = udp_pps_once(&p.client, &p.ip, secs);
            let rtt = rtts(&p.client, &p.ip, pings);
            let s = Sample { gbps, pps, p50: quantile(&rtt, 0.5), p99: quantile(&rtt, 0.99) };
            eprintln!(
                "round {round} {}: {:.2} Gbit/s, {:.0} pps, RTT p50 {:.0} µs p99 {:.0} µs",
                p.name, s.gbps, s.pps, s.p50, s.p99
            );
            samples[i].push(s);
        }
    }

    let fmt = |(m, lo, hi): (f64, f64, f64), prec: usize| format!("{m:.prec$} ({lo:.prec$}-{hi:.prec$})");
    println!(
        "\n## Overlay, container to container across nodes: {rounds} rounds, paths taking turns; median (min-max)\n"
    );
    println!("TCP: iperf3 -O 1 -t {secs}, one stream. UDP: iperf3 -u -l 64 -b 0 -t {secs}, packets/s received. RTT: {pings} pings 10 ms apart.\n");
    println!("| path | TCP Gbit/s | TCP / underlay | TCP / kernel overlay | UDP 64 B pps | pps / underlay | RTT p50 µs | RTT p99 µs |");
    println!("|---|---|---|---|---|---|---|---|");
    for (i, p) in paths.iter().enumerate() {
        let per = |f: fn(&Sample) -> f64| samples[i].iter().map(f).collect::<Vec<_>>();
        let ratio = |j: usize, f: fn(&Sample) -> f64| {
            samples[i].iter().zip(&samples[j]).map(|(x, y)| f(x) / f(y)).collect::<Vec<_>>()
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            p.name,
            fmt(summary(&per(|s| s.gbps)), 2),
            fmt(summary(&ratio(0, |s| s.gbps)), 2),
            fmt(summary(&ratio(1, |s| s.gbps)), 2),
            fmt(summary(&per(|s| s.pps)), 0),
            fmt(summary(&ratio(0, |s| s.pps)), 2),
            fmt(summary(&per(|s| s.p50)), 0),
            fmt(summary(&per(|s| s.p99)), 0),
        );
    }
    // `MESHD_BENCH_PROFILE=1`: where the time goes on each path (the underlay too, to compare),
    // after the rounds.
    if std::env::var_os("MESHD_BENCH_PROFILE").is_some() {
        for path in &paths {
            println!("\n### perf, one TCP stream for 5 s: {}\n\n```\n{}\n```", path.name, profile(path, 5));
        }
    }
    drop((ka, kb));
    drop(slow);
    drop(fast);
}
