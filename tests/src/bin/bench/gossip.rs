//! Gossip benchmarks with real meshd processes in namespaces.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use meshd_tests::Cluster;

use crate::logs::{self, first_after};

/// Gossip timings compared: meshd's defaults, and memberlist's LAN defaults (probe 1 s,
/// timeout 500 ms, suspicion 4 x max(1, log10 n) probe intervals) applied to the same meshd.
#[derive(Clone, Copy)]
enum Timings {
    Meshd,
    Memberlist,
}

impl Timings {
    fn name(self) -> &'static str {
        match self {
            Timings::Meshd => "meshd defaults",
            Timings::Memberlist => "memberlist LAN timings",
        }
    }

    fn args(self, nodes: usize) -> Vec<String> {
        let mut args = vec!["--log-format".to_string(), "json".to_string()];
        if let Timings::Memberlist = self {
            let suspicion = 4.0 * (nodes as f64).log10().max(1.0);
            args.extend([
                "--gossip-probe-interval".into(),
                "1s".into(),
                "--gossip-probe-timeout".into(),
                "500ms".into(),
                "--gossip-suspect-timeout".into(),
                format!("{}ms", (suspicion * 1000.0) as u64),
            ]);
        }
        args
    }
}

/// Two busy loops: both cores saturated by something that is not meshd.
struct Burners(Vec<Child>);

impl Burners {
    fn start() -> Burners {
        Burners(
            (0..2)
                .map(|_| Command::new("yes").stdout(Stdio::null()).spawn().expect("start a CPU burner (yes)"))
                .collect(),
        )
    }
}

impl Drop for Burners {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn run(quick: bool) {
    let (sizes, trials, quiet) = if quick { (vec![5], 2, 5) } else { (vec![5, 20], 5, 20) };
    println!("\n## Failure detection: kill -9 of one meshd until every other node shows it down");
    println!("(both cores saturated by two busy loops throughout; {trials} kills per row)\n");
    println!("| nodes | timings | median | max | false downs/suspicions in {quiet} s |");
    println!("|---|---|---|---|---|");
    for &nodes in &sizes {
        for timings in [Timings::Meshd, Timings::Memberlist] {
            let (median, max, false_positives) = failure_detection(nodes, timings, trials, quiet);
            println!(
                "| {nodes} | {} | {:.2} s | {:.2} s | {false_positives} |",
                timings.name(),
                median.as_secs_f64(),
                max.as_secs_f64()
            );
        }
    }

    let sizes = if quick { vec![5] } else { vec![5, 20, 50] };
    println!("\n## Convergence: `node update` on one node until every node has logged the change\n");
    println!("| nodes | median | max |");
    println!("|---|---|---|");
    let mut idle = None;
    for &nodes in &sizes {
        let (median, max, cost) = convergence(nodes, trials, nodes == 50);
        println!(
            "| {nodes} | {:.0} ms | {:.0} ms |",
            median.as_secs_f64() * 1000.0,
            max.as_secs_f64() * 1000.0
        );
        idle = idle.or(cost);
    }
    trust_costs(if quick { 2 } else { 5 });

    if let Some((rss_kib, cpu)) = idle {
        println!("\n## One idle meshd in a 50-node cluster\n");
        println!("| resident memory | CPU (share of one core, 20 s) |");
        println!("|---|---|");
        println!("| {:.1} MiB | {:.2} % |", rss_kib as f64 / 1024.0, cpu * 100.0);
    }
}

fn failure_detection(
    nodes: usize,
    timings: Timings,
    trials: usize,
    quiet_secs: u64,
) -> (Duration, Duration, usize) {
    let mut cluster = Cluster::new("bfd", nodes);
    let args = timings.args(nodes);
    cluster.form_with(&args);
    let _burners = Burners::start();

    // Quiet period: nobody should be suspected or declared down.
    let quiet_start = SystemTime::now();
    std::thread::sleep(Duration::from_secs(quiet_secs));
    let false_positives: usize = cluster
        .nodes()
        .iter()
        .map(|n| {
            logs::events(n)
                .iter()
                .filter(|e| {
                    e.at >= quiet_start && (e.message == "member down" || e.message == "member suspect")
                })
                .count()
        })
        .sum();

    let mut samples = Vec::new();
    for trial in 0..trials {
        let victim = 2 + trial % (nodes - 1);
        let victim_id = cluster.node(victim).node_id().unwrap();
        let killed_at = SystemTime::now();
        cluster.node_mut(victim).kill();
        let deadline = Instant::now() + Duration::from_secs(60);
        let detected = loop {
            let seen: Vec<Option<SystemTime>> = cluster
                .nodes()
                .iter()
                .filter(|n| n.name != format!("n{victim}"))
                .map(|n| {
                    first_after(n, killed_at, |e| {
                        e.message == "member down" && e.node.as_deref() == Some(victim_id.as_str())
                    })
                })
                .collect();
            if seen.iter().all(Option::is_some) {
                break seen.into_iter().flatten().max().unwrap();
            }
            assert!(Instant::now() < deadline, "n{victim} not detected down within 60 s");
            std::thread::sleep(Duration::from_millis(200));
        };
        samples.push(detected.duration_since(killed_at).unwrap_or_default());
        let mut restart = cluster.node(victim).base_args();
        restart.extend(args.iter().cloned());
        cluster.node_mut(victim).start_with(&restart);
        cluster.wait_for("the victim back", Duration::from_secs(60), |c| {
            c.nodes().iter().all(|n| n.count_status("alive") == nodes)
        });
    }
    samples.sort();
    (samples[samples.len() / 2], *samples.last().unwrap(), false_positives)
}

/// Returns median and max convergence, and (if asked) the idle RSS (KiB) and CPU share of n2.
fn convergence(nodes: usize, trials: usize, measure_idle: bool) -> (Duration, Duration, Option<(u64, f64)>) {
    let mut cluster = Cluster::new("bconv", nodes);
    cluster.form_with(&Timings::Meshd.args(nodes));
    let mut samples = Vec::new();
    for trial in 0..trials {
        // Pairs of trials drain a node and make it active again, so every trial is a change.
        let target = 1 + ((trial / 2) * 7) % nodes;
        let target_id = cluster.node(target).node_id().unwrap();
        let availability = if trial % 2 == 0 { "drain" } else { "active" };
        let origin = 1 + (trial * 3) % nodes;
        let changed_at = SystemTime::now();
        cluster.node(origin).meshctl_ok(&[
            "node",
            "update",
            "--availability",
            availability,
            &format!("n{target}"),
        ]);
        let deadline = Instant::now() + Duration::from_secs(120);
        let done = loop {
            let seen: Vec<Option<SystemTime>> = cluster
                .nodes()
                .iter()
                .map(|n| {
                    first_after(n, changed_at, |e| {
                        e.message == "availability changed"
                            && e.node.as_deref() == Some(target_id.as_str())
                            && e.availability.as_deref() == Some(availability)
                    })
                })
                .collect();
            if seen.iter().all(Option::is_some) {
                break seen.into_iter().flatten().max().unwrap();
            }
            assert!(Instant::now() < deadline, "change not everywhere within 120 s");
            std::thread::sleep(Duration::from_millis(200));
        };
        samples.push(done.duration_since(changed_at).unwrap_or_default());
    }
    samples.sort();
    let idle = measure_idle.then(|| idle_cost(&cluster));
    (samples[samples.len() / 2], *samples.last().unwrap(), idle)
}

/// Resident memory (KiB) and CPU share of one core of n2's meshd over 20 s.
fn idle_cost(cluster: &Cluster) -> (u64, f64) {
    let pid = cluster.node(2).pid().expect("n2 running");
    let ticks = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let hz = 100.0; // USER_HZ on Linux
    let before = ticks();
    let window = Duration::from_secs(20);
    std::thread::sleep(window);
    let cpu = (ticks() - before) as f64 / hz / window.as_secs_f64();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (rss, cpu)
}

/// What signed records and certificates cost: signing a delta, admitting one (signature check
/// against a cached certificate), and joining a node (key proof, certificate, TLS), in turns.
fn trust_costs(rounds: usize) {
    use meshd::gossip::admission::Admission;
    use meshd::state::{Change, ClusterState, Delta, EndpointRecord, NodeRecord, Signature, Version};
    use meshd::trust::{ca::ClusterCa, certs::CaAnchor, keys::NodeKey, record};
    use meshd::util::hex::Bytes;

    let ca = ClusterCa::create().expect("a CA");
    let key = NodeKey::generate().expect("a key");
    let id = key.node_id();
    let mut state = ClusterState::default();
    let node = NodeRecord {
        name: "n1".into(),
        gossip_addr: "10.0.0.1:7946".parse().unwrap(),
        left: false,
        departed: None,
        cert: Bytes(ca.issue(&key.public(), 3600).unwrap().der),
        founder: Some(Signature(ca.founder_grant(&id))),
        keyring: Default::default(),
        wireguard: None,
    };
    let own = record::sign(
        &key,
        Delta { version: Version { lamport: 1, node: id }, change: Change::Node { id, record: Some(node) } },
    );
    // Admitted as on the writer itself: the bench times signatures and merges, not grants.
    let mut admission = Admission::new(CaAnchor::new(ca.cert()).unwrap(), id);
    let now = meshd::state::version::unix_millis();
    admission.admit(&state, &own, now).expect("the node record");
    state.apply_signed(own, std::time::Instant::now()).unwrap();

    let delta = |n: u64| Delta {
        version: Version { lamport: 10 + n, node: id },
        change: Change::Endpoint {
            owner: id,
            id: format!("e{n}"),
            record: Some(EndpointRecord {
                network: "front".into(),
                address: std::net::Ipv4Addr::new(10, 1, (n >> 8) as u8, n as u8),
                service: Some("web".into()),
                task: Some(format!("web.{n}")),
                terminating: false,
                aliases: Vec::new(),
                health: Default::default(),
            }),
        },
    };
    const OPS: u64 = 2000;
    let (mut sign, mut admit) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        let signed: Vec<_> = (0..OPS).map(|n| record::sign(&key, delta(n))).collect();
        sign.push(started.elapsed() / OPS as u32);
        let started = Instant::now();
        for s in &signed {
            admission.admit(&state, s, now).expect("admitted");
        }
        admit.push(started.elapsed() / OPS as u32);
    }
    sign.sort();
    admit.sort();
    let size = postcard::to_allocvec(&record::sign(&key, delta(1))).unwrap().len();
    let unsigned = postcard::to_allocvec(&delta(1)).unwrap().len();

    let mut joins = Vec::new();
    for _ in 0..rounds {
        let mut cluster = Cluster::new("bjoin", 2);
        cluster.node_mut(1).start();
        let token = cluster.node(1).meshctl_ok(&["join-token", "worker"]).trim().to_string();
        let mut args = cluster.node(2).base_args();
        args.extend(cluster.node(2).join_args(&cluster.node(1).addr.to_string(), &token));
        let started = Instant::now();
        cluster.node_mut(2).start_with(&args);
        cluster.wait_for("the joiner alive on n1", Duration::from_secs(30), |c| {
            c.node(1).count_status("alive") == 2
        });
        joins.push(started.elapsed());
    }
    joins.sort();
    println!("\n## Trust: signed records and certificates ({rounds} rounds, median (min-max))\n");
    println!("| what | cost |");
    println!("|---|---|");
    let show = |v: &[Duration]| {
        format!(
            "{:.1} µs ({:.1}-{:.1})",
            v[v.len() / 2].as_secs_f64() * 1e6,
            v[0].as_secs_f64() * 1e6,
            v[v.len() - 1].as_secs_f64() * 1e6
        )
    };
    println!("| sign one delta (Ed25519) | {} |", show(&sign));
    println!("| admit one delta (signature check; writer's certificate cached) | {} |", show(&admit));
    println!("| an endpoint delta on the wire | {size} bytes signed, {unsigned} unsigned |");
    println!(
        "| join: meshd start to alive on the manager (key proof, certificate, TLS push-pull) | {:.0} ms ({:.0}-{:.0}) |",
        joins[joins.len() / 2].as_secs_f64() * 1e3,
        joins[0].as_secs_f64() * 1e3,
        joins[joins.len() - 1].as_secs_f64() * 1e3
    );
}
