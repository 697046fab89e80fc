//! `bench soak`: churn under load, bounded (20 minutes; 2 with `--quick`).
//!
//! Five nodes (n1-n3 managers), a service `web` with a VIP and published port 8080, two tasks on
//! each of n2-n5. Two wrk loads run the whole time, in 20 s pieces, keep-alive: a container on
//! n1 through the VIP, and an underlay host through n1's published port. Every 25 s one event hits
//! one of n2-n5, in turn: `kill -9` of its agent and a restart 5 s later; a partition from every
//! other node (its uplink on the underlay bridge down) healed after 8 s; a drain undone after 8 s; a rolling replacement of one
//! of its tasks (the new one attached, the old one detached with a grace period and drained).
//! n1 carries the clients and is never hit.
//!
//! Reported: failed requests per load (and in which pieces, next to the events they overlapped);
//! each agent's memory growth since its last start; and, once the cluster has settled, every
//! entry that does not match the cluster: backends in any node's maps that are not the service's
//! tasks (or tasks missing), and `tasks.web` answers from the DNS that are not the tasks.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use meshd_tests::cluster::{node_underlay_addr, Cluster};
use meshd_tests::http::NamedServer;
use meshd_tests::load::wrk;

const NODES: usize = 5;
const TASKS_PER_NODE: usize = 2;
const EVENT_EVERY: Duration = Duration::from_secs(25);
const PIECE_SECS: u32 = 20;

/// One task: its namespace, address, node and server.
struct Task {
    ns: String,
    address: String,
    node: usize,
    server: NamedServer,
}

#[derive(Clone, Copy, Debug)]
enum Event {
    Kill,
    Partition,
    Drain,
    Replace,
}

/// What one load saw: totals, and the pieces that had errors (when they started, how many).
#[derive(Default)]
struct Load {
    requests: u64,
    errors: u64,
    bad_pieces: Vec<(Duration, u64)>,
}

pub fn run(quick: bool) {
    // SOAK_MINUTES shortens (or lengthens, up to an hour) the full run.
    let minutes =
        std::env::var("SOAK_MINUTES").ok().and_then(|m| m.parse::<u64>().ok()).map(|m| m.clamp(1, 60));
    let duration = Duration::from_secs(if quick { 120 } else { minutes.unwrap_or(20) * 60 });
    let mut cluster = Cluster::new("bsoak", NODES);
    cluster.form_roles(3, &[] as &[&str]);
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.73.0.0/16"]);
    cluster.wait_listed(&["network", "ls"], "front");
    cluster.node(1).meshctl_ok(&["service", "create", "web", "--network", "front", "--publish", "8080:80"]);
    cluster.wait_listed(&["service", "ls"], "8080:80/tcp");

    let mut tasks: Vec<Task> = Vec::new();
    let mut serial = 0;
    for node in 2..=NODES {
        for _ in 0..TASKS_PER_NODE {
            tasks.push(start_task(&mut cluster, node, &mut serial));
        }
    }
    let client_ns = cluster.add_namespace("client");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &client_ns, "--network", "front"]);
    let outside = cluster.add_underlay_client();
    let outside_ns = cluster.clients()[outside].ns.name().to_string();
    let vip = vip(&cluster);
    settle(&cluster, &tasks);

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<(String, Arc<Mutex<Load>>, thread::JoinHandle<()>)> = [
        ("container -> VIP".to_string(), client_ns.clone(), format!("http://{vip}/")),
        (
            "underlay host -> published port".to_string(),
            outside_ns,
            format!("http://{}:8080/", node_underlay_addr(1)),
        ),
    ]
    .into_iter()
    .map(|(name, ns, url)| {
        let load = Arc::new(Mutex::new(Load::default()));
        let (seen, stop) = (load.clone(), stop.clone());
        let handle = thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let at = started.elapsed();
                let run = wrk(&ns, &url, PIECE_SECS, false);
                let mut seen = seen.lock().unwrap();
                seen.requests += run.requests;
                seen.errors += run.errors;
                if run.errors > 0 || run.requests == 0 {
                    seen.bad_pieces.push((at, run.errors));
                }
            }
        });
        (name, load, handle)
    })
    .collect();

    // Memory since each agent's last start: taken one event after the start (it has settled).
    let mut baseline: Vec<Option<u64>> = (1..=NODES).map(|i| rss_kib(&cluster, i)).collect();
    let mut restarts = [0u32; NODES];
    let mut events: Vec<(Duration, Event, usize)> = Vec::new();
    let kinds = [Event::Kill, Event::Partition, Event::Drain, Event::Replace];
    let mut round = 0usize;
    loop {
        let tick = started + EVENT_EVERY * (round as u32 + 1);
        if tick + EVENT_EVERY > started + duration {
            break;
        }
        thread::sleep(tick.saturating_duration_since(Instant::now()));
        for (i, base) in baseline.iter_mut().enumerate() {
            if base.is_none() {
                *base = rss_kib(&cluster, i + 1);
            }
        }
        let event = kinds[round % kinds.len()];
        // Nodes in turn, shifted every full cycle of kinds so each node meets each event.
        let node = 2 + (round + round / kinds.len()) % (NODES - 1);
        events.push((started.elapsed(), event, node));
        match event {
            Event::Kill => {
                cluster.node_mut(node).kill();
                thread::sleep(Duration::from_secs(5));
                cluster.node_mut(node).start();
                restarts[node - 1] += 1;
                baseline[node - 1] = None;
            }
            Event::Partition => {
                // The node's cable cut (its uplink on the underlay bridge down): gossip and the
                // overlay alike. nftables in the node's namespace would cut only gossip: the
                // overlay's packets go from tc to tc and never meet its input or output hooks.
                let uplink = format!("u{node}");
                cluster.underlay().ip(["link", "set", &uplink, "down"]);
                thread::sleep(Duration::from_secs(8));
                cluster.underlay().ip(["link", "set", &uplink, "up"]);
            }
            Event::Drain => {
                let name = format!("n{node}");
                cluster.node(1).meshctl_ok(&["node", "update", "--availability", "drain", &name]);
                thread::sleep(Duration::from_secs(8));
                cluster.node(1).meshctl_ok(&["node", "update", "--availability", "active", &name]);
            }
            Event::Replace => {
                let old = tasks.iter().position(|t| t.node == node).expect("a task on the node");
                let new = start_task(&mut cluster, node, &mut serial);
                let old = tasks.swap_remove(old);
                tasks.push(new);
                let socket = cluster.node(node).socket().to_path_buf();
                let detach = thread::spawn({
                    let ns = old.ns.clone();
                    move || {
                        std::process::Command::new(meshd_tests::binaries::meshctl())
                            .arg("--socket")
                            .arg(socket)
                            .args(["detach", "--netns", &ns, "--grace", "3s"])
                            .output()
                            .expect("run meshctl")
                    }
                });
                thread::sleep(Duration::from_millis(500));
                old.server.drain();
                let out = detach.join().unwrap();
                assert!(out.status.success(), "detach: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        round += 1;
    }
    thread::sleep((started + duration).saturating_duration_since(Instant::now()));
    stop.store(true, Ordering::Relaxed);
    let loads: Vec<(String, Load)> = loads
        .into_iter()
        .map(|(name, load, handle)| {
            handle.join().expect("a load");
            let load = Arc::try_unwrap(load).ok().expect("the load's last owner").into_inner().unwrap();
            (name, load)
        })
        .collect();
    let ran = started.elapsed();

    // Settle, then compare every table with the cluster.
    let settled_in = settle_within(&cluster, &tasks, Duration::from_secs(60));
    let stale = mismatches(&cluster, &tasks, &client_ns);

    println!("### Soak: {} min, {} events (`cargo xtask bench soak`)\n", ran.as_secs() / 60, events.len());
    println!("| load | requests | failed | pieces with failures (start: failures, events then) |");
    println!("|---|---|---|---|");
    for (name, load) in &loads {
        let pieces: Vec<String> = load
            .bad_pieces
            .iter()
            .map(|(at, errors)| {
                let during: Vec<String> = events
                    .iter()
                    .filter(|(e, _, _)| {
                        *e + Duration::from_secs(15) >= *at
                            && *e <= *at + Duration::from_secs(u64::from(PIECE_SECS))
                    })
                    .map(|(_, kind, node)| format!("{kind:?} n{node}"))
                    .collect();
                format!("{}s: {errors} ({})", at.as_secs(), during.join(", "))
            })
            .collect();
        println!("| {name} | {} | {} | {} |", load.requests, load.errors, pieces.join("; "));
    }
    println!("\n| node | restarts | RSS since its last start (KiB) | growth |");
    println!("|---|---|---|---|");
    for i in 1..=NODES {
        let now = rss_kib(&cluster, i).unwrap_or(0);
        let base = baseline[i - 1].unwrap_or(now);
        println!(
            "| n{i} | {} | {base} -> {now} | {:+.2} MiB |",
            restarts[i - 1],
            (now as f64 - base as f64) / 1024.0
        );
    }
    println!(
        "\nEvents: {}",
        events
            .iter()
            .map(|(at, e, n)| format!("{}s {e:?} n{n}", at.as_secs()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    match settled_in {
        Some(took) => println!("Settled {:.1} s after the last event.", took.as_secs_f64()),
        None => println!("Not settled within 60 s after the last event."),
    }
    for i in 1..=NODES {
        let flows_only = flow_only_backends(&cluster, i);
        if !flows_only.is_empty() {
            println!("n{i} still tracks flows to backends without slots: {}", flows_only.join(", "));
        }
    }
    println!("Entries that do not match the cluster once settled: {}", stale.len());
    for line in stale {
        println!("- {line}");
    }
}

fn start_task(cluster: &mut Cluster, node: usize, serial: &mut usize) -> Task {
    *serial += 1;
    let name = format!("web.{serial}");
    let (ns, address) = cluster.attach_task(node, &format!("w{serial}"), "front", "web", &name);
    let server = NamedServer::start(cluster.namespace(&ns), 80, &name);
    Task { ns, address: address.to_string(), node, server }
}

fn vip(cluster: &Cluster) -> String {
    let inspect = cluster.node(1).meshctl_ok(&["--format", "json", "service", "inspect", "web"]);
    let value: serde_json::Value = serde_json::from_str(&inspect).expect("service inspect as JSON");
    value["vip"].as_str().expect("web has a VIP").to_string()
}

fn settle(cluster: &Cluster, tasks: &[Task]) {
    assert!(settle_within(cluster, tasks, Duration::from_secs(30)).is_some(), "the cluster did not settle");
}

fn settle_within(cluster: &Cluster, tasks: &[Task], timeout: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if (1..=NODES).all(|i| kernel_backends(cluster, i) == task_addresses(tasks)) {
            return Some(started.elapsed());
        }
        thread::sleep(Duration::from_millis(250));
    }
    None
}

fn task_addresses(tasks: &[Task]) -> BTreeSet<String> {
    tasks.iter().map(|t| t.address.clone()).collect()
}

/// The backends of `web` as node `i`'s kernel maps hold them (`service inspect`).
fn inspect_backends(cluster: &Cluster, i: usize) -> Vec<serde_json::Value> {
    let out = cluster.node(i).meshctl(&["--format", "json", "service", "inspect", "web"]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    value["backends"].as_array().cloned().unwrap_or_default()
}

/// The backends of `web` that own Maglev slots on node `i`. (`service inspect` also lists a
/// backend that owns none while flows to it are still tracked: a drained or replaced task's
/// connections, which end on their own.)
fn kernel_backends(cluster: &Cluster, i: usize) -> BTreeSet<String> {
    inspect_backends(cluster, i)
        .iter()
        .filter(|b| b["slots"].as_u64() > Some(0))
        .filter_map(|b| b["address"].as_str().map(str::to_string))
        .collect()
}

/// Backends node `i` lists without slots (tracked flows only), with their flow counts.
fn flow_only_backends(cluster: &Cluster, i: usize) -> Vec<String> {
    inspect_backends(cluster, i)
        .iter()
        .filter(|b| b["slots"].as_u64() == Some(0))
        .map(|b| format!("{} ({} flows)", b["address"].as_str().unwrap_or("?"), b["flows"]))
        .collect()
}

/// Every entry in a node's maps or the DNS that is not the cluster's: one line each.
fn mismatches(cluster: &Cluster, tasks: &[Task], client_ns: &str) -> Vec<String> {
    let expected = task_addresses(tasks);
    let mut lines = Vec::new();
    for i in 1..=NODES {
        let held = kernel_backends(cluster, i);
        for extra in held.difference(&expected) {
            lines.push(format!("n{i}'s maps: backend {extra} is not a task of web"));
        }
        for missing in expected.difference(&held) {
            lines.push(format!("n{i}'s maps: task {missing} missing"));
        }
    }
    let dig = cluster.namespace(client_ns).exec("dig", ["+short", "+time=2", "@127.0.0.11", "tasks.web"]);
    let answers: BTreeSet<String> = String::from_utf8_lossy(&dig.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    for extra in answers.difference(&expected) {
        lines.push(format!("DNS on n1: tasks.web answers {extra}, not a task"));
    }
    for missing in expected.difference(&answers) {
        lines.push(format!("DNS on n1: tasks.web lacks {missing}"));
    }
    lines
}

fn rss_kib(cluster: &Cluster, i: usize) -> Option<u64> {
    let pid = cluster.node(i).pid()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}
