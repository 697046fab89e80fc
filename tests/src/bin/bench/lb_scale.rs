//! Load-balancer state at scale, in process against the real kernel: how much of the traffic
//! moves when one of ten backends goes (Maglev vs. the modulo hashing it replaces), and how long
//! meshd takes to program 10,000 services with 100,000 backends into the maps (and to apply one
//! change afterwards).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use meshd::reconcile;
use meshd::service::maglev;

/// Share of the table (= of new flows, which hash uniformly over slots) whose backend changes
/// when backend `gone` of `n` leaves; averaged over every choice of `gone`. Returns (Maglev share,
/// share of those that were not on the removed backend, modulo-hashing share).
fn disruption(n: u32) -> (f64, f64, f64) {
    let backends: Vec<Ipv4Addr> = (1..=n).map(|i| Ipv4Addr::new(10, 0, 0, i as u8)).collect();
    let m = maglev::table_size(backends.len());
    let before = maglev::build(&backends, m);
    let (mut moved, mut collateral, mut modulo) = (0u64, 0u64, 0u64);
    for gone in 0..backends.len() {
        let rest: Vec<Ipv4Addr> =
            backends.iter().enumerate().filter(|(i, _)| *i != gone).map(|(_, b)| *b).collect();
        let after = maglev::build(&rest, maglev::table_size(rest.len()));
        let m_after = after.len() as u64;
        // A flow with hash h used slot h % M before and h % M' after; sample hashes uniformly.
        for h in 0..100_000u64 {
            let hash = h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
            let old = backends[before[(hash % u64::from(m)) as usize] as usize];
            let new = rest[after[(hash % m_after) as usize] as usize];
            if old != new {
                moved += 1;
                if old != backends[gone] {
                    collateral += 1;
                }
            }
            if backends[(hash % u64::from(n)) as usize] != rest[(hash % u64::from(n - 1)) as usize] {
                modulo += 1;
            }
        }
    }
    let total = (100_000 * u64::from(n)) as f64;
    (moved as f64 / total, collateral as f64 / total, modulo as f64 / total)
}

/// A cluster state with `services` vip services of `per_service` tasks each, spread over 20
/// other nodes; returns it as the snapshot meshd reconciles from.
fn big_snapshot(services: u32, per_service: u32) -> meshd::state::Snapshot {
    use meshd::identity::NodeId;
    use meshd::state::{Change, ClusterState, Delta, Version};
    use meshd::state::{EndpointMode, EndpointRecord, Liveness, NetworkRecord, NodeRecord, ServiceRecord};

    let me = NodeId::from_bytes([1; 16]);
    let others: Vec<NodeId> = (2..22u8).map(|n| NodeId::from_bytes([n; 16])).collect();
    let mut state = ClusterState::default();
    let mut lamport = 0;
    let mut apply = |state: &mut ClusterState, writer: NodeId, change| {
        lamport += 1;
        state.apply(Delta { version: Version { lamport, node: writer }, change }, Instant::now()).unwrap();
    };
    let mut liveness = std::collections::BTreeMap::from([(me, Liveness::Alive)]);
    for (i, id) in std::iter::once(&me).chain(&others).enumerate() {
        let record = NodeRecord {
            name: format!("n{}", i + 1),
            gossip_addr: format!("10.77.0.{}:7946", i + 1).parse().unwrap(),
            left: false,
            departed: None,
            cert: Default::default(),
            founder: None,
            keyring: Default::default(),
            wireguard: None,
        };
        apply(&mut state, *id, Change::Node { id: *id, record: Some(record) });
        liveness.insert(*id, Liveness::Alive);
    }
    let network =
        NetworkRecord { subnet: "10.0.0.0/8".parse().unwrap(), vni: 9000, options: Default::default() };
    apply(&mut state, me, Change::Network { name: "big".into(), record: Some(network) });
    let stride = per_service + 1;
    for s in 0..services {
        let base = 0x0a00_0000 + s * stride;
        let record = ServiceRecord {
            network: "big".into(),
            mode: EndpointMode::Vip,
            vip: Some(Ipv4Addr::from(base)),
            ports: Vec::new(),
        };
        apply(&mut state, me, Change::Service { name: format!("svc{s}"), record: Some(record) });
        for t in 1..=per_service {
            let owner = others[((s + t) % others.len() as u32) as usize];
            let endpoint = EndpointRecord {
                network: "big".into(),
                address: Ipv4Addr::from(base + t),
                service: Some(format!("svc{s}")),
                task: Some(format!("svc{s}.{t}")),
                terminating: false,
                aliases: Vec::new(),
                health: Default::default(),
            };
            apply(
                &mut state,
                owner,
                Change::Endpoint { owner, id: format!("e{s}.{t}"), record: Some(endpoint) },
            );
        }
    }
    meshd::state::Snapshot {
        self_id: me,
        cluster: meshd::identity::Fingerprint::from_bytes([0; 16]),
        state,
        liveness,
    }
}

/// Sum of the kernel memory (memlock) of every BPF map on the machine, from bpftool.
fn bpf_map_memory() -> u64 {
    let out = std::process::Command::new("bpftool").args(["-j", "map", "show"]).output();
    let Ok(out) = out else { return 0 };
    let maps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    maps.as_array().map(|a| a.iter().filter_map(|m| m["bytes_memlock"].as_u64()).sum()).unwrap_or(0)
}

/// What one programming run measured.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    /// From nothing to every map written, and the desired state's share of it (ms).
    first: f64,
    first_desired: f64,
    /// Entries and tables written by the first programming.
    written: usize,
    /// Kernel memory of the maps added by the programming, and of the empty datapath (MiB).
    bpf: f64,
    empty: f64,
    /// The agent's heap for the desired state, its indexes and its record of the maps (MiB).
    heap: f64,
    /// One backend of one service removed, then added back: the whole round (ms), its desired
    /// state's share, and the entries written.
    removed: f64,
    removed_desired: f64,
    removed_written: usize,
    added: f64,
}

/// A copy of `snapshot` with the first endpoint of `service` removed (`record: None`) or put
/// back (`record: Some`).
fn with_endpoint(
    snapshot: &meshd::state::Snapshot,
    key: &(meshd::identity::NodeId, String),
    record: Option<meshd::state::EndpointRecord>,
    lamport: u64,
) -> meshd::state::Snapshot {
    let mut changed = snapshot.clone();
    let version = meshd::state::Version { lamport, node: key.0 };
    let change = meshd::state::Change::Endpoint { owner: key.0, id: key.1.clone(), record };
    changed.state.apply(meshd::state::Delta { version, change }, Instant::now()).unwrap();
    changed
}

/// Loads the datapath in a fresh namespace (its own pin directory), programs `snapshot` as the
/// agent does (`reconcile::Reconciler`, then `sync_forwarding_touched`), then removes one backend
/// and adds it back.
fn programming(snapshot: &Arc<meshd::state::Snapshot>) -> Figures {
    let pins = std::path::PathBuf::from(format!("/sys/fs/bpf/meshd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&pins).expect("a pin directory on bpffs");
    let ns = meshd_tests::Netns::new(&meshd_tests::names::unique_prefix("blbscale"));
    let dir = pins.clone();
    let snapshot = snapshot.clone();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let figures = ns.run_inside(move || {
        let memory_start = bpf_map_memory();
        let mut datapath = meshd::bpf::Datapath::load(&dir).expect("load the datapath");
        let memory_before = bpf_map_memory();
        let heap_before = crate::alloc::live();
        let mut reconciler = reconcile::Reconciler::default();
        let started = Instant::now();
        let round = reconciler.update(&snapshot, &[], &[]);
        let first_desired = started.elapsed();
        let (written, _) =
            datapath.sync_forwarding_touched(reconciler.desired(), &round.touched).expect("program the maps");
        let first = started.elapsed();
        let heap = crate::alloc::live().saturating_sub(heap_before);
        let memory = bpf_map_memory().saturating_sub(memory_before);

        // One change: a task of svc0 leaves (its table is rewritten), then comes back.
        let (key, record) = snapshot
            .state
            .endpoints
            .live()
            .find(|(_, e)| e.service.as_deref() == Some("svc0"))
            .map(|(key, record)| (key.clone(), record.clone()))
            .unwrap();
        let without = Arc::new(with_endpoint(&snapshot, &key, None, u64::MAX / 2));
        let started = Instant::now();
        let round = reconciler.update(&without, &[], &[]);
        let removed_desired = started.elapsed();
        let (removed_written, _) =
            datapath.sync_forwarding_touched(reconciler.desired(), &round.touched).expect("apply one change");
        let removed = started.elapsed();
        let again = Arc::new(with_endpoint(&without, &key, Some(record), u64::MAX / 2 + 1));
        let started = Instant::now();
        let round = reconciler.update(&again, &[], &[]);
        datapath.sync_forwarding_touched(reconciler.desired(), &round.touched).expect("apply one change");
        let added = started.elapsed();
        drop((datapath, reconciler));
        Figures {
            first: ms(first),
            first_desired: ms(first_desired),
            written,
            bpf: mib(memory),
            empty: mib(memory_before.saturating_sub(memory_start)),
            heap: mib(heap as u64),
            removed: ms(removed),
            removed_desired: ms(removed_desired),
            removed_written,
            added: ms(added),
        }
    });
    let _ = std::fs::remove_dir_all(&pins);
    figures
}

/// One row of the baseline's table (a build from before the incremental reconciler, whose bench
/// prints one programming per size): (first ms, desired ms, one change ms).
fn baseline_row(output: &str, services: u32) -> Option<(f64, f64, f64)> {
    let line = output.lines().find(|l| l.starts_with(&format!("| {services} services x")))?;
    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
    let number = |text: &str| text.split_whitespace().next()?.parse::<f64>().ok();
    let first = number(cells.get(2)?)?;
    let desired = number(cells.get(2)?.split("desired state ").nth(1)?)?;
    let change = number(cells.get(5)?)?;
    Some((first, desired, change))
}

/// Median, min and max of `values`, as "median (min-max)".
fn spread(values: &[f64]) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let decimals = if median < 10.0 { 1 } else { 0 };
    format!("{median:.decimals$} ({:.decimals$}-{:.decimals$})", sorted[0], sorted[sorted.len() - 1])
}

pub fn run(quick: bool) {
    println!(
        "\n## Maglev disruption: one of N backends removed (share of new flows whose backend changes)\n"
    );
    println!(
        "| N | Maglev: flows moved | of which not on the removed backend | modulo hashing: flows moved |"
    );
    println!("|---|---|---|---|");
    for n in [10, 100] {
        let (moved, collateral, modulo) = disruption(n);
        println!("| {n} | {:.1} % | {:.1} % | {:.1} % |", moved * 100.0, collateral * 100.0, modulo * 100.0);
    }
    println!("\n(ideal: 1/N moved, none of them from surviving backends; conntrack keeps open flows anyway)");

    // MESHD_BASELINE_BENCH: a bench binary of an earlier build, run in turns with this one.
    let baseline = std::env::var_os("MESHD_BASELINE_BENCH").map(std::path::PathBuf::from);
    let rounds: usize = std::env::var("LB_SCALE_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let sizes: &[u32] = if quick { &[1_000] } else { &[1_000, 10_000] };
    let snapshots: Vec<Arc<meshd::state::Snapshot>> =
        sizes.iter().map(|&s| Arc::new(big_snapshot(s, 10))).collect();
    let mut ours: Vec<Vec<Figures>> = vec![Vec::new(); sizes.len()];
    let mut theirs: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); sizes.len()];
    for round in 0..rounds {
        // Paths take turns: the baseline first in even rounds, this build first in odd ones.
        let run_baseline = |theirs: &mut Vec<Vec<(f64, f64, f64)>>| {
            let Some(bin) = &baseline else { return };
            let mut command = std::process::Command::new(bin);
            if quick {
                command.arg("--quick");
            }
            let out = command.arg("lb-scale").output().expect("run the baseline bench");
            let text = String::from_utf8_lossy(&out.stdout);
            for (i, &size) in sizes.iter().enumerate() {
                match baseline_row(&text, size) {
                    Some(row) => theirs[i].push(row),
                    None => eprintln!("baseline: no row for {size} services in:\n{text}"),
                }
            }
        };
        if round % 2 == 0 {
            run_baseline(&mut theirs);
        }
        for (i, snapshot) in snapshots.iter().enumerate() {
            ours[i].push(programming(snapshot));
        }
        if round % 2 == 1 {
            run_baseline(&mut theirs);
        }
        eprintln!("lb-scale: round {} of {rounds} done", round + 1);
    }

    println!("\n## Programming the load balancer: services x 10 backends into the kernel maps\n");
    println!("{rounds} rounds, median (min-max); times in ms, memory in MiB.\n");
    println!(
        "| size | build | first programming | of it desired state | one backend removed | of it desired state | one backend added |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, size) in sizes.iter().enumerate() {
        let f = &ours[i];
        let col = |get: fn(&Figures) -> f64| spread(&f.iter().map(get).collect::<Vec<_>>());
        println!(
            "| {size} services | this build | {} | {} | {} | {} | {} |",
            col(|f| f.first),
            col(|f| f.first_desired),
            col(|f| f.removed),
            col(|f| f.removed_desired),
            col(|f| f.added),
        );
        let t = &theirs[i];
        if !t.is_empty() {
            let col = |get: fn(&(f64, f64, f64)) -> f64| spread(&t.iter().map(get).collect::<Vec<_>>());
            println!(
                "| {size} services | baseline | {} | {} | {} | - | - |",
                col(|r| r.0),
                col(|r| r.1),
                col(|r| r.2)
            );
        }
    }
    println!("\n| size | entries/tables written first | written for one removal | BPF map memory added | empty datapath | agent heap (desired state, indexes, record of the maps) |");
    println!("|---|---|---|---|---|---|");
    for (i, size) in sizes.iter().enumerate() {
        let f = &ours[i][0];
        let heap = spread(&ours[i].iter().map(|f| f.heap).collect::<Vec<_>>());
        println!(
            "| {size} services x 10 | {} | {} | {:.1} MiB | {:.1} MiB | {heap} MiB |",
            f.written, f.removed_written, f.bpf, f.empty
        );
    }
}
