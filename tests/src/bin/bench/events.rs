//! The cost of the monitor's event stream: overlay throughput (iperf3, container to container
//! across nodes) and VIP request rate (wrk, a new connection per request, so every request is a
//! new balanced flow) with no monitor, with `meshctl monitor --type drop --follow` running, and
//! with `meshctl monitor --type all --follow` (every flow event: meshd runs with a rate limit of
//! 10,000,000 events per second per CPU, so none is suppressed). The three modes take turns in
//! every round; each reports its median and range.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use meshd_tests::binaries;
use meshd_tests::load::wrk;
use meshd_tests::nginx::Nginx;
use meshd_tests::{Cluster, Node};

use crate::overlay::throughput;

const METRICS: &str = "127.0.0.1:9646";

/// `meshctl monitor --follow` with its output thrown away (it still reads every event).
struct Follower(Child);

impl Follower {
    fn start(node: &Node, kind: &str) -> Follower {
        let child = Command::new(binaries::meshctl())
            .arg("--socket")
            .arg(node.socket())
            .args(["monitor", "--follow", "--format", "json", "--type", kind])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("meshctl monitor");
        Follower(child)
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn metric(node: &Node, name: &str) -> f64 {
    let out = node.ns.exec("curl", ["-s", "--max-time", "5", &format!("http://{METRICS}/metrics")]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

pub fn run_suite(quick: bool) {
    let (secs, rounds) = if quick { (2, 1) } else { (5, 5) };
    let mut cluster = Cluster::new("bevents", 2);
    cluster.form_with(&["--metrics-addr", METRICS, "--monitor-rate", "10000000"]);
    cluster.node(1).meshctl_ok(&["network", "create", "bench", "--subnet", "10.62.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "bench");
    let created =
        cluster.node(1).meshctl_ok(&["--format", "json", "service", "create", "web", "--network", "bench"]);
    let vip =
        serde_json::from_str::<serde_json::Value>(&created).unwrap()[0]["vip"].as_str().unwrap().to_string();
    cluster.wait_listed(&["service", "ls"], "web");
    let backend = cluster.add_namespace("backend");
    let backend_ip = cluster
        .node(2)
        .meshctl_ok(&["attach", "--netns", &backend, "--network", "bench", "--service", "web"])
        .trim()
        .to_string();
    let client = cluster.add_namespace("client");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &client, "--network", "bench"]);
    let _nginx = Nginx::start(&backend, cluster.work_dir().join("nginx"), false);
    let url = format!("http://{vip}/");
    cluster.wait_for("the VIP answers", Duration::from_secs(15), |c| {
        c.namespace(&client).exec("curl", ["-s", "--max-time", "2", &url]).status.success()
    });

    let modes = [
        ("no monitor", None),
        ("monitor --type drop", Some("drop")),
        ("monitor --type all (every flow event)", Some("all")),
    ];
    let mut gbps: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut flow_events = vec![0.0; modes.len()];
    for _ in 0..rounds {
        for (i, (_, kind)) in modes.iter().enumerate() {
            let follower = kind.map(|k| Follower::start(cluster.node(1), k));
            let want = if follower.is_some() { 1.0 } else { 0.0 };
            cluster.wait_for("the monitor (un)subscribed", Duration::from_secs(10), |c| {
                metric(c.node(1), "meshd_monitor_subscribers ") == want
            });
            let before =
                metric(cluster.node(1), "meshd_monitor_events_total{type=\"flow\",outcome=\"emitted\"}");
            gbps[i].push(throughput(&client, &backend, &backend_ip, 1, secs));
            let run = wrk(&client, &url, secs, true);
            rps[i].push(run.requests as f64 / f64::from(secs));
            flow_events[i] +=
                metric(cluster.node(1), "meshd_monitor_events_total{type=\"flow\",outcome=\"emitted\"}")
                    - before;
            drop(follower);
        }
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    println!(
        "\n## Monitor events: cost of the stream (iperf3 {secs} s and wrk -c8 {secs} s with a new connection per request through a VIP; {rounds} rounds, modes taking turns; median [min-max])\n"
    );
    println!("| mode | overlay throughput | ratio | VIP req/s (new connections) | ratio | flow events |");
    println!("|---|---|---|---|---|---|");
    let (base_gbps, _, _) = stats(&mut gbps[0].clone());
    let (base_rps, _, _) = stats(&mut rps[0].clone());
    for (i, (name, _)) in modes.iter().enumerate() {
        let (g, gmin, gmax) = stats(&mut gbps[i]);
        let (r, rmin, rmax) = stats(&mut rps[i]);
        println!(
            "| {name} | {g:.2} [{gmin:.2}-{gmax:.2}] Gbit/s | {:.3} | {r:.0} [{rmin:.0}-{rmax:.0}] | {:.3} | {:.0} |",
            g / base_gbps,
            r / base_rps,
            flow_events[i]
        );
    }
}
