//! Load-balancer state at scale, in process against the real kernel: how much of the traffic
//! moves when one of ten backends goes (Maglev vs. the modulo hashing it replaces), and how long
//! meshd takes to program 10,000 services with 100,000 backends into the maps (and to apply one
//! change afterwards).

use std::net::Ipv4Addr;
use std::time::Instant;

use meshd::reconcile;
use meshd::service::{maglev, MaglevCache};

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
        };
        apply(&mut state, *id, Change::Node { id: *id, record: Some(record) });
        liveness.insert(*id, Liveness::Alive);
    }
    let network = NetworkRecord { subnet: "10.0.0.0/8".parse().unwrap(), vni: 9000 };
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

/// Loads the datapath in a fresh namespace (its own pin directory) and programs `services`
/// services of `per_service` backends: prints how long the first programming and one change
/// take, and what the maps cost in kernel memory.
fn programming(services: u32, per_service: u32) {
    let snapshot = big_snapshot(services, per_service);
    let pins = std::path::PathBuf::from(format!("/sys/fs/bpf/meshd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&pins).expect("a pin directory on bpffs");
    let ns = meshd_tests::Netns::new(&meshd_tests::names::unique_prefix("blbscale"));
    let dir = pins.clone();
    let report = ns.run_inside(move || {
        let memory_start = bpf_map_memory();
        let mut datapath = meshd::bpf::Datapath::load(&dir).expect("load the datapath");
        let memory_before = bpf_map_memory();
        let empty = memory_before.saturating_sub(memory_start);
        let mut cache = MaglevCache::default();
        let started = Instant::now();
        let desired = reconcile::desired(&snapshot, &[], &[], &mut cache);
        let computed = started.elapsed();
        let (written, _) = datapath.sync_forwarding(&desired).expect("program the maps");
        let programmed = started.elapsed();
        let memory = bpf_map_memory().saturating_sub(memory_before);
        // One change: a task of one service leaves (its table is rebuilt and swapped).
        let mut changed = snapshot;
        let (owner, id) = changed
            .state
            .endpoints
            .live()
            .find(|(_, e)| e.service.as_deref() == Some("svc0"))
            .map(|(key, _)| key.clone())
            .unwrap();
        let version = meshd::state::Version { lamport: u64::MAX / 2, node: owner };
        changed
            .state
            .apply(
                meshd::state::Delta {
                    version,
                    change: meshd::state::Change::Endpoint { owner, id, record: None },
                },
                Instant::now(),
            )
            .unwrap();
        let started = Instant::now();
        let desired = reconcile::desired(&changed, &[], &[], &mut cache);
        let (rewritten, _) = datapath.sync_forwarding(&desired).expect("apply one change");
        let one_change = started.elapsed();
        (computed, programmed, written, memory, empty, one_change, rewritten)
    });
    let _ = std::fs::remove_dir_all(&pins);
    let (computed, programmed, written, memory, empty, one_change, rewritten) = report;
    println!(
        "| {services} services x {per_service} backends | {} ms (desired state {} ms) | {written} entries/tables | {:.1} MiB (empty datapath: {:.1} MiB) | {} ms ({rewritten} written) |",
        programmed.as_millis(),
        computed.as_millis(),
        memory as f64 / (1024.0 * 1024.0),
        empty as f64 / (1024.0 * 1024.0),
        one_change.as_millis(),
    );
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

    println!("\n## Programming the load balancer: services x backends into the kernel maps\n");
    println!(
        "| size | first programming | written | BPF map memory added | one backend removed afterwards |"
    );
    println!("|---|---|---|---|---|");
    programming(1_000, 10);
    if !quick {
        programming(10_000, 10);
    }
}
