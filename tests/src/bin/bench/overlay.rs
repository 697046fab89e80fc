//! Overlay throughput and latency, side by side in one run on the same two node namespaces:
//! the plain underlay, a Docker-style kernel overlay (bridge + VXLAN device with static FDB
//! entries, built here), and meshd (VXLAN with eBPF forwarding).

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

/// Average round trip in microseconds of 500 pings 2 ms apart.
fn latency(client_ns: &str, target: &str) -> f64 {
    let out = Command::new("ip")
        .args(["netns", "exec", client_ns, "ping", "-q", "-c", "500", "-i", "0.002", target])
        .output()
        .expect("ping");
    // rtt min/avg/max/mdev = 0.030/0.045/0.120/0.010 ms
    stdout(&out)
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| l.split('=').nth(1))
        .and_then(|v| v.trim().split('/').nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|ms| ms * 1000.0)
        .unwrap_or(f64::NAN)
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

pub fn run_suite(quick: bool) {
    let (runs, secs) = if quick { (1, 2) } else { (3, 5) };
    let mut cluster = Cluster::new("boverlay", 2);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "bench", "--subnet", "10.60.0.0/24"]);
    cluster.wait_for("the network on n2", Duration::from_secs(10), |c| {
        c.node(2).meshctl_ok(&["network", "ls"]).contains("bench")
    });
    let a = cluster.add_namespace("ma");
    let b = cluster.add_namespace("mb");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &a, "--network", "bench"]);
    let ip_b =
        cluster.node(2).meshctl_ok(&["attach", "--netns", &b, "--network", "bench"]).trim().to_string();
    let (ka, kb) = kernel_overlay(&cluster);
    cluster.wait_for("meshd overlay up", Duration::from_secs(10), |c| {
        c.namespace(&a).exec("ping", ["-c", "1", "-W", "1", &ip_b]).status.success()
    });
    assert!(ka.exec("ping", ["-c", "2", "-W", "2", "10.99.0.2"]).status.success(), "kernel overlay works");

    let paths: [(&str, String, String, String); 3] = [
        (
            "plain underlay (node to node)",
            cluster.node(1).ns.name().into(),
            cluster.node(2).ns.name().into(),
            "10.77.0.2".into(),
        ),
        (
            "Docker-style kernel overlay (bridge + vxlan)",
            ka.name().into(),
            kb.name().into(),
            "10.99.0.2".into(),
        ),
        ("meshd overlay (eBPF + vxlan)", a.clone(), b.clone(), ip_b.clone()),
    ];
    println!("\n## Overlay: TCP throughput (iperf3, {runs} x {secs} s, median) and latency (500 pings), container to container across nodes\n");
    println!("| path | throughput | ratio to underlay | avg RTT | ");
    println!("|---|---|---|---|");
    let mut underlay = 0.0;
    for (name, client, server, ip) in &paths {
        let gbps = throughput(client, server, ip, runs, secs);
        let rtt = latency(client, ip);
        if underlay == 0.0 {
            underlay = gbps;
        }
        println!("| {name} | {gbps:.2} Gbit/s | {:.2} | {rtt:.0} µs |", gbps / underlay);
    }
    drop((ka, kb));
}
