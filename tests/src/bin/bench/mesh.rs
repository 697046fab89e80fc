//! Service load balancing: wrk against nginx on another node, in one run, with keep-alive and
//! with a new connection per request: (a) from a container straight to a backend, (b) through
//! the service VIP balanced at connect() (socket LB, n1), (a') and (b') the same from a
//! container on n3, which runs with `--socket-lb off` (every packet translated at its veth),
//! (c) from an underlay client through a published port of a node without a task (meshd's
//! routing mesh), and (d) the same through a Swarm-style routing mesh built here with nftables
//! DNAT + SNAT on a kernel bridge + VXLAN overlay (IPVS is not in this kernel). The paths take
//! turns; each reports its median and the range of its rounds.

use std::process::{Command, Stdio};
use std::time::Duration;

use meshd_tests::nginx::Nginx;
use meshd_tests::{Cluster, Netns};

/// Requests per second from wrk in `ns` against `url` (one thread, 32 connections, `secs`).
fn wrk(ns: &str, url: &str, secs: u32, close: bool) -> f64 {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "wrk", "-t1", "-c32", &format!("-d{secs}s")]);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    let out = cmd.arg(url).output().expect("wrk (apt-get install wrk)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The Swarm-style routing mesh on n1: a published port DNATed to the backend on the kernel
/// overlay and SNATed to n1's own address on it (what ingress-sbox does with IPVS), so replies
/// come back through n1. Uses port 9090 so meshd's published port is not in the way.
fn swarm_style_mesh(cluster: &Cluster) -> (Netns, Netns) {
    let (ka, kb) = super::overlay::kernel_overlay(cluster);
    let n1 = &cluster.node(1).ns;
    n1.ip(["addr", "add", "10.99.0.254/24", "dev", "kbr0"]);
    let rules = "table ip swarmmesh {\n\
                   chain pre { type nat hook prerouting priority dstnat; tcp dport 9090 dnat to 10.99.0.2:80; }\n\
                   chain post { type nat hook postrouting priority srcnat; ip daddr 10.99.0.0/24 oifname \"kbr0\" masquerade; }\n\
                 }\n";
    let mut child = Command::new("ip")
        .args(["netns", "exec", n1.name(), "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("nft (apt-get install nftables)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "nft rules for the Swarm-style mesh");
    (ka, kb)
}

pub fn run_suite(quick: bool) {
    let (secs, rounds) = if quick { (2, 1) } else { (5, 5) };
    let mut cluster = Cluster::new("bmesh", 3);
    // n3 balances every packet at the veth: the per-packet path, side by side with n1's.
    cluster.form_per_node(|i| if i == 3 { vec!["--socket-lb".into(), "off".into()] } else { Vec::new() });
    cluster.node(1).meshctl_ok(&["network", "create", "bench", "--subnet", "10.61.0.0/24"]);
    cluster.wait_for("the network on n2", Duration::from_secs(10), |c| {
        c.node(2).meshctl_ok(&["network", "ls"]).contains("bench")
    });
    let created = cluster.node(1).meshctl_ok(&[
        "--format",
        "json",
        "service",
        "create",
        "web",
        "--network",
        "bench",
        "--publish",
        "8080:80",
    ]);
    let vip =
        serde_json::from_str::<serde_json::Value>(&created).unwrap()[0]["vip"].as_str().unwrap().to_string();
    cluster.wait_for("the service on n2", Duration::from_secs(10), |c| {
        c.node(2).meshctl_ok(&["service", "ls"]).contains("web")
    });
    let backend = cluster.add_namespace("backend");
    let backend_ip = cluster
        .node(2)
        .meshctl_ok(&["attach", "--netns", &backend, "--network", "bench", "--service", "web"])
        .trim()
        .to_string();
    let client = cluster.add_namespace("client");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &client, "--network", "bench"]);
    let per_packet = cluster.add_namespace("client3");
    cluster.node(3).meshctl_ok(&["attach", "--netns", &per_packet, "--network", "bench"]);
    let _nginx = Nginx::start(&backend, cluster.work_dir().join("nginx"), false);
    // The underlay client of (c) and (d): a host on the underlay that is not a node.
    let outside = cluster.add_underlay_client();
    let outside = cluster.clients()[outside].ns.name().to_string();
    let (_ka, kb) = swarm_style_mesh(&cluster);
    let _nginx_kernel = Nginx::start(kb.name(), cluster.work_dir().join("nginx-kernel"), false);
    let n1 = cluster.node(1).addr;
    let published = format!("http://{n1}:8080/");
    let swarm = format!("http://{n1}:9090/");
    for (what, ns, url) in [
        ("the VIP answers", client.as_str(), format!("http://{vip}/")),
        ("the VIP answers on n3", per_packet.as_str(), format!("http://{vip}/")),
        ("the published port answers", outside.as_str(), published.clone()),
        ("the Swarm-style mesh answers", outside.as_str(), swarm.clone()),
    ] {
        cluster.wait_for(what, Duration::from_secs(15), |_| {
            Command::new("ip")
                .args(["netns", "exec", ns, "curl", "-s", "--max-time", "2", &url])
                .output()
                .is_ok_and(|o| o.status.success())
        });
    }

    println!(
        "\n## Service load balancing: wrk (1 thread, 32 connections, {secs} s, median (min-max) of {rounds} rounds) against nginx on another node\n"
    );
    println!("| path | keep-alive req/s | ratio | new connection per request req/s | ratio |");
    println!("|---|---|---|---|---|");
    // The paths take turns, `rounds` times, and each reports its median: a single run per path
    // let the machine's drift (other namespaces, timers, caches) show as a difference of paths.
    let paths = [
        (client.clone(), format!("http://{backend_ip}/")),
        (client.clone(), format!("http://{vip}/")),
        (per_packet.clone(), format!("http://{backend_ip}/")),
        (per_packet.clone(), format!("http://{vip}/")),
        (outside.clone(), published.clone()),
        (outside.clone(), swarm.clone()),
    ];
    let mut samples: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); paths.len()];
    for _ in 0..rounds {
        for (i, (ns, url)) in paths.iter().enumerate() {
            samples[i].0.push(wrk(ns, url, secs, false));
            samples[i].1.push(wrk(ns, url, secs, true));
        }
    }
    let summary = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let results: Vec<_> = samples
        .iter()
        .map(|(keep, close)| (summary(&mut keep.clone()), summary(&mut close.clone())))
        .collect();
    let names = [
        "(a) container on n1 to backend directly",
        "(b) n1 container through the service VIP (socket LB: balanced at connect())",
        "(a') container on n3 to backend directly",
        "(b') n3 container through the VIP, --socket-lb off (eBPF Maglev + conntrack per packet)",
        "(c) underlay client -> published port of a node without a task (meshd mesh)",
        "(d) underlay client -> Swarm-style mesh (nftables DNAT+SNAT, kernel bridge+vxlan)",
    ];
    // Each VIP path against the direct path of its own client; the rest against n1's.
    let baseline = [0, 0, 2, 2, 0, 0];
    for (i, (name, (keep, close))) in names.iter().zip(&results).enumerate() {
        let (base_keep, base_close) = (results[baseline[i]].0 .0, results[baseline[i]].1 .0);
        println!(
            "| {name} | {:.0} ({:.0}-{:.0}) | {:.2} | {:.0} ({:.0}-{:.0}) | {:.2} |",
            keep.0,
            keep.1,
            keep.2,
            keep.0 / base_keep,
            close.0,
            close.1,
            close.2,
            close.0 / base_close
        );
    }
    // Round by round (the two ran seconds apart): each VIP path over its own direct path.
    let pairs = |vip: usize, direct: usize, close: bool| -> String {
        let pick = |i: usize| if close { &samples[i].1 } else { &samples[i].0 };
        let mut ratios: Vec<f64> = pick(vip).iter().zip(pick(direct)).map(|(v, d)| v / d).collect();
        ratios.sort_by(f64::total_cmp);
        format!("{:.2} ({:.2}-{:.2})", ratios[ratios.len() / 2], ratios[0], ratios[ratios.len() - 1])
    };
    println!("\nRound by round, VIP over direct: median (min-max)\n");
    println!("| path | keep-alive | new connection per request |");
    println!("|---|---|---|");
    println!("| (b)/(a) socket LB | {} | {} |", pairs(1, 0, false), pairs(1, 0, true));
    println!("| (b')/(a') per packet | {} | {} |", pairs(3, 2, false), pairs(3, 2, true));
    println!(
        "\n(c) keeps the client's address (the backend sees the underlay client); (d) hides it behind SNAT."
    );
}
