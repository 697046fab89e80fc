//! An in-process simulation of a large cluster: 1,000 foca instances with meshd's configuration
//! and state-delta handler, exchanging real encoded messages over a simulated network with
//! virtual time (200 +/- 100 µs one-way latency, no loss). foca has no I/O of its own, so this is
//! the same protocol code meshd runs, minus sockets and encryption; deltas are signed and every
//! node checks them as meshd does (admission: certificate, signature, role).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foca::{AccumulatingRuntime, Foca, Member, OwnedNotification, PostcardCodec, Timer};
use meshd::gossip::admission::Admission;
use meshd::gossip::broadcast::{self, lock, DeltaHandler, Shared, SharedState};
use meshd::gossip::member::MemberId;
use meshd::gossip::stats::Stats;
use meshd::gossip::GossipConfig;
use meshd::identity::NodeId;
use meshd::state::{Availability, Change, Delta, NodeRecord, Signature, SignedDelta, Version};
use meshd::trust::ca::ClusterCa;
use meshd::trust::certs::CaAnchor;
use meshd::trust::keys::NodeKey;
use meshd::trust::record;
use meshd::util::hex::Bytes;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

type Swim = Foca<MemberId, PostcardCodec, StdRng, DeltaHandler>;

fn member(i: usize) -> MemberId {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&(i as u32).to_be_bytes());
    MemberId {
        node: NodeId::from_bytes(bytes),
        addr: SocketAddr::new(Ipv4Addr::from(0x0a00_0000 + i as u32).into(), 7946),
        generation: 1,
    }
}

fn index(m: &MemberId) -> usize {
    u32::from_be_bytes(m.node.as_bytes()[..4].try_into().unwrap()) as usize
}

enum Event {
    Deliver { to: usize, data: Vec<u8> },
    Timer { node: usize, timer: Timer<MemberId> },
}

struct Node {
    foca: Swim,
    shared: SharedState,
    runtime: AccumulatingRuntime<MemberId>,
    alive: bool,
}

struct Sim {
    nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: std::collections::HashMap<u64, Event>,
    now_us: u64,
    seq: u64,
    rng: StdRng,
    /// (observer, subject) pairs of MemberDown notifications.
    downs: HashSet<(usize, usize)>,
    messages: u64,
}

/// The cluster's CA and the manager that writes the simulated change (its node record, with a
/// certificate and the founder grant, is in every node's state from the start).
struct Writer {
    ca: ClusterCa,
    key: NodeKey,
    record: SignedDelta,
}

impl Writer {
    fn new() -> Writer {
        let ca = ClusterCa::create().expect("a CA");
        let key = NodeKey::generate().expect("a key");
        let id = key.node_id();
        let cert = ca.issue(&key.public(), 3600).expect("a certificate");
        let record = NodeRecord {
            name: "manager".into(),
            gossip_addr: "10.255.0.1:7946".parse().unwrap(),
            left: false,
            departed: None,
            cert: Bytes(cert.der),
            founder: Some(Signature(ca.founder_grant(&id))),
            keyring: Default::default(),
            wireguard: None,
        };
        let version = Version { lamport: 1, node: id };
        let record = record::sign(&key, Delta { version, change: Change::Node { id, record: Some(record) } });
        Writer { ca, key, record }
    }
}

impl Sim {
    fn new(size: usize, config: &GossipConfig, writer: &Writer) -> Sim {
        let stats = Arc::new(Stats::default());
        let anchor = CaAnchor::new(writer.ca.cert()).expect("the CA's own certificate");
        let nodes = (0..size)
            .map(|i| {
                let shared: SharedState =
                    Arc::new(Mutex::new(Shared::new(Admission::new(anchor.clone(), writer.key.node_id()))));
                broadcast::merge(&mut lock(&shared), writer.record.clone(), &stats);
                let handler = DeltaHandler { shared: shared.clone(), stats: stats.clone() };
                let foca = Foca::with_custom_broadcast(
                    member(i),
                    config.foca(size as u32),
                    StdRng::seed_from_u64(i as u64),
                    PostcardCodec,
                    handler,
                );
                Node { foca, shared, runtime: AccumulatingRuntime::new(), alive: true }
            })
            .collect();
        let mut sim = Sim {
            nodes,
            queue: BinaryHeap::new(),
            events: Default::default(),
            now_us: 0,
            seq: 0,
            rng: StdRng::seed_from_u64(7),
            downs: HashSet::new(),
            messages: 0,
        };
        // Start converged: everyone knows everyone (what joining leads to).
        for i in 0..size {
            let others = (0..size).filter(|&j| j != i).map(|j| Member::alive(member(j)));
            let node = &mut sim.nodes[i];
            node.foca.apply_many(others, false, &mut node.runtime).expect("bootstrap");
            sim.drain(i);
        }
        sim
    }

    fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.events.insert(self.seq, event);
        self.queue.push(Reverse((at, self.seq)));
    }

    /// Moves what node `i` queued (sends, timers, notifications) into the simulation.
    fn drain(&mut self, i: usize) {
        while let Some((to, data)) = self.nodes[i].runtime.to_send() {
            let latency = 100 + self.rng.random_range(0..200);
            self.messages += 1;
            self.push(self.now_us + latency, Event::Deliver { to: index(&to), data: data.to_vec() });
        }
        while let Some((after, timer)) = self.nodes[i].runtime.to_schedule() {
            self.push(self.now_us + after.as_micros() as u64, Event::Timer { node: i, timer });
        }
        while let Some(notification) = self.nodes[i].runtime.to_notify() {
            if let OwnedNotification::MemberDown(m) = notification {
                self.downs.insert((i, index(&m)));
            }
        }
    }

    /// Runs until `done` holds (checked every millisecond of virtual time) or `limit` passes.
    /// Returns the virtual time it took.
    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> Option<Duration> {
        let start = self.now_us;
        let end = start + limit.as_micros() as u64;
        let mut next_check = start;
        while let Some(Reverse((at, seq))) = self.queue.pop() {
            if at > end {
                self.queue.push(Reverse((at, seq)));
                return None;
            }
            self.now_us = at;
            let event = self.events.remove(&seq).expect("queued event");
            let i = match event {
                Event::Deliver { to, data } => {
                    if !self.nodes[to].alive {
                        continue;
                    }
                    let node = &mut self.nodes[to];
                    let _ = node.foca.handle_data(&data, &mut node.runtime);
                    to
                }
                Event::Timer { node: i, timer } => {
                    if !self.nodes[i].alive {
                        continue;
                    }
                    let node = &mut self.nodes[i];
                    let _ = node.foca.handle_timer(timer, &mut node.runtime);
                    i
                }
            };
            self.drain(i);
            if self.now_us >= next_check {
                next_check = self.now_us + 1_000;
                if done(self) {
                    return Some(Duration::from_micros(self.now_us - start));
                }
            }
        }
        None
    }
}

pub fn run(quick: bool) {
    let size = if quick { 200 } else { 1000 };
    println!("\n## In-process simulation: {size} nodes (foca + meshd's delta handler, virtual time)\n");
    println!("| timings | change reaches every node | kill detected by every node | messages per node per second | wall time |");
    println!("|---|---|---|---|---|");
    let memberlist = GossipConfig {
        probe_interval: Duration::from_secs(1),
        probe_timeout: Duration::from_millis(500),
        suspect_timeout: Duration::from_secs_f64(4.0 * (size as f64).log10()),
        ..GossipConfig::default()
    };
    for (name, config) in
        [("meshd defaults", GossipConfig::default()), ("memberlist LAN timings", memberlist)]
    {
        let wall = Instant::now();
        let writer = Writer::new();
        let mut sim = Sim::new(size, &config, &writer);
        // Let probing settle for a couple of virtual seconds.
        sim.run_until(Duration::from_secs(2), |_| false);
        let messages_before = (sim.messages, sim.now_us);

        // A change on node 0: how long until every node holds it?
        let target = member(size / 2).node;
        let delta = {
            let version = lock(&sim.nodes[0].shared).clock.tick(writer.key.node_id());
            let change = Change::Availability { id: target, value: Some(Availability::Drain) };
            record::sign(&writer.key, Delta { version, change })
        };
        sim.nodes[0].foca.add_broadcast(&broadcast::encode(&delta)).expect("broadcast");
        sim.drain(0);
        let spread = sim.run_until(Duration::from_secs(30), |sim| {
            sim.nodes.iter().all(|n| lock(&n.shared).state.availability.get(&target).is_some())
        });
        let rate = (sim.messages - messages_before.0) as f64
            / size as f64
            / ((sim.now_us - messages_before.1) as f64 / 1e6).max(1e-6);

        // Kill one node: how long until every other node has it down?
        let victim = size / 3;
        sim.nodes[victim].alive = false;
        let alive = size - 1;
        let detect = sim.run_until(Duration::from_secs(60), |sim| {
            sim.downs.iter().filter(|(observer, subject)| *subject == victim && *observer != victim).count()
                >= alive
        });
        let show = |d: Option<Duration>| {
            d.map_or("not within the limit".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
        };
        println!(
            "| {name} | {} | {} | {rate:.0} | {:.1} s |",
            show(spread),
            show(detect),
            wall.elapsed().as_secs_f64()
        );
    }
}
