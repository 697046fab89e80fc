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
    let (secs, rounds) = if quick { (2, 1) } else { (3, 11) };
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
    // Within a round the modes ran back to back: a mode's ratio to "no monitor" in the same
    // round cancels most of the machine's drift between rounds.
    let ratios = |samples: &Vec<Vec<f64>>, i: usize| -> Vec<f64> {
        samples[i].iter().zip(&samples[0]).map(|(x, base)| x / base).collect()
    };
    println!(
        "\n## Monitor events: cost of the stream (iperf3 {secs} s and wrk -c8 {secs} s with a new connection per request through a VIP; {rounds} rounds, modes taking turns; median [min-max]; ratio: median of the per-round ratios to no monitor)\n"
    );
    println!("| mode | overlay throughput | ratio | VIP req/s (new connections) | ratio | flow events |");
    println!("|---|---|---|---|---|---|");
    for (i, (name, _)) in modes.iter().enumerate() {
        let (gr, grmin, grmax) = stats(&mut ratios(&gbps, i));
        let (rr, rrmin, rrmax) = stats(&mut ratios(&rps, i));
        let (g, gmin, gmax) = stats(&mut gbps[i].clone());
        let (r, rmin, rmax) = stats(&mut rps[i].clone());
        println!(
            "| {name} | {g:.2} [{gmin:.2}-{gmax:.2}] Gbit/s | {gr:.3} [{grmin:.2}-{grmax:.2}] | {r:.0} [{rmin:.0}-{rmax:.0}] | {rr:.3} [{rrmin:.2}-{rrmax:.2}] | {:.0} |",
            flow_events[i]
        );
    }
}

/// The cost of `meshd_bpf_map_pressure`: a walk of every map's keys, with the published ports'
/// conntrack full (262,144 entries), in process against the real kernel. (The containers' own
/// flow tables, at most 8,192 entries each, are walked the same way, one per local endpoint.)
pub fn walk_cost() {
    use aya::maps::{HashMap, Map, MapData};
    use meshd_ebpf::lb::{CtKey, CtVal, CT_MAP, CT_MAX};

    let pins = std::path::PathBuf::from(format!("/sys/fs/bpf/meshd-bench-walk-{}", std::process::id()));
    std::fs::create_dir_all(&pins).expect("a pin directory on bpffs");
    let ns = meshd_tests::Netns::new(&meshd_tests::names::unique_prefix("bwalk"));
    let dir = pins.clone();
    let report = ns.run_inside(move || {
        let datapath = meshd::bpf::Datapath::load(&dir).expect("load the datapath");
        let empty = datapath.usage().expect("walk").took;
        let mut ct = Map::LruHashMap(MapData::from_pin(dir.join(CT_MAP)).expect("pinned conntrack"));
        let mut ct: HashMap<&mut MapData, CtKey, CtVal> = HashMap::try_from(&mut ct).expect("conntrack");
        for i in 0..CT_MAX {
            let key = CtKey {
                client_ip: i,
                vip: 0x0a00_0001,
                svc: 1,
                client_port: 1,
                port: 80,
                proto: 6,
                pad: [0; 3],
            };
            ct.insert(key, CtVal { backend_ip: i % 16, flags: 0, last_seen: 0 }, 0).expect("insert");
        }
        let mut full: Vec<std::time::Duration> =
            (0..3).map(|_| datapath.usage().expect("walk").took).collect();
        full.sort();
        let usage = datapath.usage().expect("walk");
        let ct_entries = usage.maps.iter().find(|m| m.name == CT_MAP).map_or(0, |m| m.entries);
        (empty, full, ct_entries)
    });
    let _ = std::fs::remove_dir_all(&pins);
    let (empty, full, ct_entries) = report;
    println!("\n## The map walk behind meshd_bpf_map_pressure (in process, real kernel maps)\n");
    println!("| maps | walk of every map (3 runs: min / median / max) |");
    println!("|---|---|");
    println!("| empty | {:.1} ms |", empty.as_secs_f64() * 1e3);
    println!(
        "| md_ct_v3 full ({ct_entries} entries counted) | {:.0} / {:.0} / {:.0} ms |",
        full[0].as_secs_f64() * 1e3,
        full[1].as_secs_f64() * 1e3,
        full[2].as_secs_f64() * 1e3
    );
}
