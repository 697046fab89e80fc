//! What the managers' Raft group costs the operations that go through it: `network create` and
//! `service create` (the command, and until every node has logged the new record), and
//! `attach` on a worker (the first on a network asks the managers for an address block; the
//! next ones use it without asking anyone).
//!
//! Clusters of six nodes with 1, 3 and 5 managers run side by side and take turns, round after
//! round. With `MESHD_BASELINE_BIN_DIR` set to the binaries of a build from before the managers'
//! group (gossip decides everything; its first attach waits a fixed settle time for its block
//! claim), that build runs as a fourth cluster, all six nodes managers, the same way; and a
//! cluster of three made with it is upgraded node by node to this build, with the time the
//! managers' group takes to form and import its state.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use meshd_tests::{Cluster, Node};

const NODES: usize = 6;

struct Case {
    name: String,
    cluster: Cluster,
    samples: Samples,
}

#[derive(Default)]
struct Samples {
    network_cmd: Vec<Duration>,
    network_everywhere: Vec<Duration>,
    service_cmd: Vec<Duration>,
    service_everywhere: Vec<Duration>,
    first_attach: Vec<Duration>,
    next_attach: Vec<Duration>,
}

pub fn run(quick: bool) {
    let rounds = if quick { 2 } else { 7 };
    let mut cases: Vec<Case> = Vec::new();
    if let Some(dir) = std::env::var_os("MESHD_BASELINE_BIN_DIR") {
        let mut cluster = Cluster::new("bmgr0", NODES);
        cluster.use_binaries(&PathBuf::from(dir));
        cluster.form_roles(NODES, &["--log-format", "json"]);
        cases.push(Case { name: "gossip only (before)".into(), cluster, samples: Samples::default() });
    }
    for managers in [1, 3, 5] {
        let mut cluster = Cluster::new(&format!("bmgr{managers}"), NODES);
        cluster.form_roles(managers, &["--log-format", "json"]);
        cases.push(Case { name: format!("{managers} manager(s)"), cluster, samples: Samples::default() });
    }
    for round in 0..rounds {
        for case in &mut cases {
            measure(&case.cluster, round, &mut case.samples);
        }
    }
    let upgrade = std::env::var_os("MESHD_BASELINE_BIN_DIR").map(|dir| upgrade(&PathBuf::from(dir)));

    println!("\n## Managers: cluster-wide changes and attaching ({NODES} nodes; {rounds} rounds, cases taking turns)\n");
    println!("Median (min–max). \"Everywhere\": from the command's start until every node lists it (polled with meshctl, node after node).\n");
    println!("| cluster | network create | network everywhere | service create | service everywhere | first attach on a worker (new block) | next attaches |");
    println!("|---|---|---|---|---|---|---|");
    for case in &mut cases {
        let s = &mut case.samples;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            case.name,
            stat(&mut s.network_cmd),
            stat(&mut s.network_everywhere),
            stat(&mut s.service_cmd),
            stat(&mut s.service_everywhere),
            stat(&mut s.first_attach),
            stat(&mut s.next_attach),
        );
    }
    if let Some((founded, voters)) = upgrade {
        println!("\n## Upgrading a cluster from before the managers' group (3 nodes, one at a time)\n");
        println!("| the founder restarted on this build until the group had imported the state | the last node restarted until all three were voters |");
        println!("|---|---|");
        println!("| {:.0} ms | {:.0} ms |", ms(founded), ms(voters));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A cluster of three made with the baseline build, with a network, a service and a container
/// on each node, restarted node by node on this build: the state must come through whole, every
/// node a voter, nothing held twice, and a new network must be decided by the group.
fn upgrade(baseline: &std::path::Path) -> (Duration, Duration) {
    let mut cluster = Cluster::new("bmgrup", 3);
    cluster.use_binaries(baseline);
    cluster.form_roles(3, &["--log-format", "json"]);
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "front", "--subnet", "10.90.0.0/24"]);
    n1.meshctl_ok(&["service", "create", "web", "--network", "front", "--publish", "8088:80"]);
    cluster.wait_listed(&["service", "ls"], "web");
    let mut addresses = Vec::new();
    for i in 1..=3 {
        let ns = cluster.add_namespace(&format!("u{i}"));
        addresses.push(
            cluster.node(i).meshctl_ok(&["attach", "--netns", &ns, "--network", "front"]).trim().to_string(),
        );
    }
    let before = cluster.node(1).meshctl_ok(&["--format", "json", "network", "ls"]);
    let mut founded = Duration::ZERO;
    for i in 1..=3 {
        let node = cluster.node_mut(i);
        node.stop();
        node.use_binaries(None);
        let started = Instant::now();
        node.start_with(&[node.base_args(), vec!["--log-format".into(), "json".into()]].concat());
        if i == 1 {
            // The founder founds the group and imports before its API answers.
            founded = started.elapsed();
            let status = cluster.node(1).nodes_json();
            assert!(
                status.iter().any(|n| n["name"] == "n1" && n["manager_status"] == "leader"),
                "{status:?}"
            );
        }
        cluster
            .wait_for("every node alive", Duration::from_secs(30), |c| c.node(i).count_status("alive") == 3);
    }
    let started = Instant::now();
    cluster.wait_for("three voters", Duration::from_secs(60), |c| {
        c.node(1).nodes_json().iter().filter(|n| n["voter"] == true).count() == 3
    });
    let voters = started.elapsed();
    let after = cluster.node(1).meshctl_ok(&["--format", "json", "network", "ls"]);
    assert_eq!(before, after, "the networks came through the upgrade unchanged");
    let services = cluster.node(3).meshctl_ok(&["service", "ls"]);
    assert!(services.contains("web") && services.contains("8088:80"), "{services}");
    let inspect = cluster.node(2).meshctl_ok(&["--format", "json", "network", "inspect", "front"]);
    for address in &addresses {
        assert!(inspect.contains(address.as_str()), "{address} kept: {inspect}");
    }
    cluster.node(2).meshctl_ok(&["network", "create", "after", "--subnet", "10.91.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "after");
    let ns = cluster.add_namespace("u4");
    let fresh =
        cluster.node(3).meshctl_ok(&["attach", "--netns", &ns, "--network", "front"]).trim().to_string();
    assert!(!addresses.contains(&fresh), "{fresh} handed out twice");
    (founded, voters)
}

/// One round on one cluster: a network, a service on it, and attaches on the sixth node (a
/// worker in every case but the baseline, where every node is a manager).
fn measure(cluster: &Cluster, round: usize, samples: &mut Samples) {
    let n1 = cluster.node(1);
    let network = format!("net{round}");
    let started = Instant::now();
    n1.meshctl_ok(&["network", "create", &network, "--subnet", &format!("10.{}.0.0/16", 100 + round)]);
    samples.network_cmd.push(started.elapsed());
    samples.network_everywhere.push(everywhere(cluster, started, &["network", "ls"], &format!("{network} ")));

    let service = format!("svc{round}");
    let started = Instant::now();
    n1.meshctl_ok(&["service", "create", &service, "--network", &network]);
    samples.service_cmd.push(started.elapsed());
    samples.service_everywhere.push(everywhere(cluster, started, &["service", "ls"], &format!("{service} ")));

    let worker: &Node = cluster.node(NODES);
    for i in 0..4 {
        let ns = format!("{}-a{round}x{i}", cluster.prefix());
        let _netns = meshd_tests::netns::Netns::new(&ns);
        let started = Instant::now();
        worker.meshctl_ok(&["attach", "--netns", &ns, "--network", &network]);
        let took = started.elapsed();
        if i == 0 {
            samples.first_attach.push(took);
        } else {
            samples.next_attach.push(took);
        }
        worker.meshctl_ok(&["detach", "--netns", &ns]);
    }
}

/// How long after `since` the last node lists `needle` in `meshctl ARGS` (each node polled in
/// turn until it does; the baseline build logs nothing to time by, so every case is polled).
fn everywhere(cluster: &Cluster, since: Instant, args: &[&str], needle: &str) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<Option<Duration>> = vec![None; cluster.nodes().len()];
    while seen.iter().any(Option::is_none) {
        for (node, seen) in cluster.nodes().iter().zip(seen.iter_mut()) {
            if seen.is_none() && node.meshctl_ok(args).contains(needle) {
                *seen = Some(since.elapsed());
            }
        }
        assert!(Instant::now() < deadline, "{needle} not on every node within 60 s");
    }
    seen.into_iter().flatten().max().expect("every node")
}

fn stat(samples: &mut [Duration]) -> String {
    if samples.is_empty() {
        return "–".into();
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "{:.0} ms ({:.0}–{:.0})",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    )
}
