//! `bench scale`: clusters of 10 to 100 nodes on this one machine (a network namespace per node,
//! real meshd, real attached namespaces), each with 10 services and 50 tasks per node (1,000
//! services and 5,000 tasks at 100 nodes). For each size:
//!
//! - how long it took to create the services (one `service create` after the other, each a
//!   decision of the managers' group) and to attach the tasks (one attach stream per node);
//! - the time from the last attach until every node's kernel tables agree with the cluster
//!   (sampled services, as `service inspect` reads them from the maps);
//! - the convergence of one service change (a task attached, then detached): from the command
//!   to every node's maps holding the new backend set;
//! - at rest: meshd's resident memory and CPU per node, and the kernel memory of each node's
//!   pinned BPF maps.
//!
//! Sizes whose estimated memory (from the previous size's figures) does not fit in what the
//! machine has available are skipped and said so. Request loops are bounded: every wait has a
//! deadline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use meshd_tests::binaries::meshctl;
use meshd_tests::cluster::Cluster;

const SERVICES_PER_NODE: usize = 10;
/// Tasks per node unless `SCALE_TASKS_PER_NODE` says otherwise (100 nodes with 50 tasks each do
/// not fit in this machine's 24 GiB: the per-endpoint flow tables).
const TASKS_PER_NODE: usize = 50;

fn tasks_per_node() -> usize {
    std::env::var("SCALE_TASKS_PER_NODE")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(TASKS_PER_NODE)
}
/// Services whose tables every node is checked for (the first, the last and some between).
const SAMPLED: usize = 6;
/// Attach streams at a time. One per node at 50 nodes put 115 runnable threads on 2 cores: the
/// managers' heartbeats starved and attaches that needed an address block were refused.
const STREAMS: usize = 4;
/// Tries of one attach refused for want of a manager majority (counted in the table).
const TRIES: usize = 5;

pub fn run(quick: bool) {
    // SCALE_SIZES=50,100 measures only those sizes.
    let sizes: Vec<usize> = match std::env::var("SCALE_SIZES") {
        Ok(list) => list.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) if quick => vec![3, 6],
        Err(_) => vec![10, 25, 50, 100],
    };
    let per_node = tasks_per_node();
    println!(
        "### Scale: {SERVICES_PER_NODE} services and {per_node} tasks per node (`cargo xtask bench scale`)\n"
    );
    println!("| nodes | services | tasks | create services | attach tasks | then every node's tables agree | one change everywhere (median, max of 4) | meshd RSS per node (median, max) | meshd CPU per node at rest | pinned BPF maps per node |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    // Memory one node and one task took in the last size measured (bytes): meshd's RSS plus the
    // kernel's BPF maps and namespaces, as MemAvailable saw them go.
    let mut per_node_and_task: Option<(u64, u64)> = None;
    for &nodes in &sizes {
        let tasks = nodes * per_node;
        // Before any size was measured: a node's meshd (32-60 MiB) and pinned maps (78 MiB) and
        // a task's namespace and flow table, as the 50-node run of 2026-11-30 measured them.
        let (node_cost, task_cost) = per_node_and_task.unwrap_or((150 << 20, 2 << 20));
        let need = nodes as u64 * node_cost + tasks as u64 * task_cost;
        let available = mem_available();
        if need > available / 10 * 8 {
            println!(
                "| {nodes} | - | - | skipped: needs about {} MiB, {} MiB available | | | | | | |",
                need >> 20,
                available >> 20
            );
            continue;
        }
        let row = measure(nodes, quick);
        per_node_and_task = Some(row.memory_per_node_and_task);
        println!(
            "| {nodes} | {} | {tasks} | {:.1} s | {:.1} s | {:.1} s | {:.0} ms, {:.0} ms | {:.1} MiB, {:.1} MiB | {:.2} % | {:.1} MiB |",
            nodes * SERVICES_PER_NODE,
            row.create_services.as_secs_f64(),
            row.attach_tasks.as_secs_f64(),
            row.agree.as_secs_f64(),
            row.change_median.as_secs_f64() * 1e3,
            row.change_max.as_secs_f64() * 1e3,
            row.rss_median_kib as f64 / 1024.0,
            row.rss_max_kib as f64 / 1024.0,
            row.cpu_per_node * 100.0,
            row.maps_per_node as f64 / 1048576.0,
        );
    }
}

struct Row {
    create_services: Duration,
    attach_tasks: Duration,
    agree: Duration,
    change_median: Duration,
    change_max: Duration,
    rss_median_kib: u64,
    rss_max_kib: u64,
    cpu_per_node: f64,
    maps_per_node: u64,
    memory_per_node_and_task: (u64, u64),
}

fn measure(nodes: usize, quick: bool) -> Row {
    let before = mem_available();
    let mut cluster = Cluster::new("bscale", nodes);
    // The kernel allows 64 programs per cgroup and hook, and every node attaches its socket
    // programs: past 64 nodes, each node gets a cgroup of its own (`--cgroup-root`; nothing in
    // this suite uses the socket programs).
    let cgroups = NodeCgroups::new(cluster.prefix(), if nodes > 64 { nodes } else { 0 });
    cluster.form_per_node(|i| cgroups.args(i));
    let formed = mem_available();
    cluster.node(1).meshctl_ok(&["network", "create", "big", "--subnet", "10.128.0.0/12"]);
    cluster.wait_listed(&["network", "ls"], "big");

    let services = nodes * SERVICES_PER_NODE;
    let started = Instant::now();
    for s in 0..services {
        cluster.node(1).meshctl_ok(&["service", "create", &format!("s{s}"), "--network", "big"]);
    }
    let create_services = started.elapsed();

    // Every task a namespace of its own, on node (t % nodes) + 1, in service t % services.
    let tasks = nodes * tasks_per_node();
    let namespaces: Vec<String> = (0..tasks).map(|t| cluster.add_namespace(&format!("t{t}"))).collect();
    let sockets: Vec<PathBuf> = cluster.nodes().iter().map(|n| n.socket().to_path_buf()).collect();
    let started = Instant::now();
    let retried = std::sync::atomic::AtomicUsize::new(0);
    for group in (0..nodes).collect::<Vec<_>>().chunks(STREAMS) {
        thread::scope(|scope| {
            for &node in group {
                let (socket, namespaces, retried) = (&sockets[node], &namespaces, &retried);
                scope.spawn(move || {
                    for t in (node..tasks).step_by(nodes) {
                        let service = format!("s{}", t % services);
                        let tries = attach(socket, &namespaces[t], &service, &format!("task{t}"));
                        retried.fetch_add(tries - 1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
    }
    let attach_tasks = started.elapsed();
    let retried = retried.into_inner();
    if retried > 0 {
        println!(
            "({nodes} nodes: {retried} attaches were refused for want of a manager majority and tried again)"
        );
    }

    // Each sampled service has tasks/services backends (5) once every node has programmed them.
    let sampled: Vec<String> =
        (0..SAMPLED).map(|i| format!("s{}", i * (services - 1) / (SAMPLED - 1))).collect();
    let per_service = tasks / services;
    let expected: BTreeMap<String, usize> = sampled.iter().map(|s| (s.clone(), per_service)).collect();
    let agree = everywhere(&sockets, &expected, Duration::from_secs(300), Instant::now());

    // One change, four times: a task joins s0 (on the last node), then leaves it.
    let extra = cluster.add_namespace("extra");
    let mut changes = Vec::new();
    for round in 0..4 {
        let joining = round % 2 == 0;
        let expect = BTreeMap::from([("s0".to_string(), per_service + usize::from(joining))]);
        let started = Instant::now();
        if joining {
            attach(&sockets[nodes - 1], &extra, "s0", "extra");
        } else {
            let out = Command::new(meshctl())
                .arg("--socket")
                .arg(&sockets[nodes - 1])
                .args(["detach", "--netns", &extra, "--network", "big", "--grace", "1ms"])
                .output()
                .expect("run meshctl");
            assert!(out.status.success(), "detach: {}", String::from_utf8_lossy(&out.stderr));
        }
        changes.push(everywhere(&sockets, &expect, Duration::from_secs(120), started));
    }
    changes.sort();
    let loaded = mem_available();

    // At rest: let the reconcilers settle, then 20 s (5 s in a quick run) of CPU.
    thread::sleep(Duration::from_secs(if quick { 2 } else { 10 }));
    let pids: Vec<u32> = cluster.nodes().iter().map(|n| n.pid().expect("meshd running")).collect();
    let window = Duration::from_secs(if quick { 5 } else { 20 });
    let ticks_before: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
    thread::sleep(window);
    let ticks_after: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
    let cpu_per_node = (ticks_after - ticks_before) as f64 / 100.0 / window.as_secs_f64() / nodes as f64;
    let mut rss: Vec<u64> = pids.iter().map(|p| rss_kib(*p)).collect();
    rss.sort();
    let pin_dirs: Vec<PathBuf> = cluster.nodes().iter().filter_map(|n| n.pin_dir()).collect();
    let maps_per_node = pinned_map_bytes(&pin_dirs) / nodes as u64;

    let node_cost = before.saturating_sub(formed) / nodes as u64;
    let task_cost = formed.saturating_sub(loaded) / tasks as u64;
    drop(cluster);
    drop(cgroups);
    Row {
        create_services,
        attach_tasks,
        agree,
        change_median: changes[changes.len() / 2],
        change_max: *changes.last().unwrap(),
        rss_median_kib: rss[rss.len() / 2],
        rss_max_kib: *rss.last().unwrap(),
        cpu_per_node,
        maps_per_node,
        memory_per_node_and_task: (node_cost.max(1 << 20), task_cost.max(64 << 10)),
    }
}

/// Attaches `ns` as `task`; an attach refused for want of a manager majority (the group busy
/// on a saturated machine) is tried again, up to [`TRIES`] times. Returns the tries it took.
fn attach(socket: &Path, ns: &str, service: &str, task: &str) -> usize {
    for tried in 1..=TRIES {
        let out = Command::new(meshctl())
            .arg("--socket")
            .arg(socket)
            .args(["attach", "--netns", ns, "--network", "big", "--service", service, "--name", task])
            .output()
            .expect("run meshctl");
        if out.status.success() {
            return tried;
        }
        let error = String::from_utf8_lossy(&out.stderr);
        assert!(tried < TRIES && error.contains("no manager majority"), "attach {task}: {error}");
        thread::sleep(Duration::from_secs(2));
    }
    unreachable!("the last try returns or fails above")
}

/// Waits until every node's maps hold `expected` backends for each service (one poller per node,
/// each asking its meshd's `service inspect`); returns the time from `since` to the last node.
fn everywhere(
    sockets: &[PathBuf],
    expected: &BTreeMap<String, usize>,
    timeout: Duration,
    since: Instant,
) -> Duration {
    let pollers: Vec<_> = sockets
        .iter()
        .cloned()
        .map(|socket| {
            let expected = expected.clone();
            thread::spawn(move || {
                let deadline = Instant::now() + timeout;
                let mut pending: Vec<(String, usize)> = expected.into_iter().collect();
                loop {
                    pending.retain(|(service, count)| backends(&socket, service) != Some(*count));
                    if pending.is_empty() {
                        return since.elapsed();
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{}: {pending:?} not in the maps within {timeout:?}",
                        socket.display()
                    );
                    thread::sleep(Duration::from_millis(50));
                }
            })
        })
        .collect();
    pollers.into_iter().map(|p| p.join().expect("a poller")).max().unwrap_or_default()
}

/// How many backends this node's kernel maps hold for `service`.
fn backends(socket: &Path, service: &str) -> Option<usize> {
    let out = Command::new(meshctl())
        .arg("--socket")
        .arg(socket)
        .args(["--format", "json", "service", "inspect", service])
        .output()
        .ok()?;
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    inspect["backends"].as_array().map(Vec::len)
}

fn mem_available() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Kernel memory of the BPF maps pinned under these nodes' pin directories (the per-endpoint
/// flow tables inside `md_flows_v1` are not pinned and not counted here).
fn pinned_map_bytes(pin_dirs: &[PathBuf]) -> u64 {
    let Ok(out) = Command::new("bpftool").args(["-j", "-f", "map", "show"]).output() else {
        return 0;
    };
    let maps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    maps.as_array()
        .map(|maps| {
            maps.iter()
                .filter(|m| {
                    m["pinned"].as_array().is_some_and(|paths| {
                        paths
                            .iter()
                            .filter_map(|p| p.as_str())
                            .any(|p| pin_dirs.iter().any(|d| p.starts_with(d.to_str().unwrap_or("-"))))
                    })
                })
                .filter_map(|m| m["bytes_memlock"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

/// One cgroup v2 directory per node (`--cgroup-root`), removed on drop (after the cluster).
struct NodeCgroups(Vec<PathBuf>);

impl NodeCgroups {
    fn new(prefix: &str, nodes: usize) -> NodeCgroups {
        let root = if nodes > 0 {
            meshd::bpf::cgroup::cgroup2_root().expect("the cgroup v2 hierarchy")
        } else {
            PathBuf::new()
        };
        NodeCgroups(
            (1..=nodes)
                .map(|i| {
                    let dir = root.join(format!("{prefix}-n{i}"));
                    std::fs::create_dir_all(&dir).expect("a cgroup per node");
                    dir
                })
                .collect(),
        )
    }

    /// Node `i`'s extra arguments (1-based).
    fn args(&self, i: usize) -> Vec<String> {
        self.0
            .get(i - 1)
            .map(|dir| vec!["--cgroup-root".to_string(), dir.display().to_string()])
            .unwrap_or_default()
    }
}

impl Drop for NodeCgroups {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir(dir);
        }
    }
}
