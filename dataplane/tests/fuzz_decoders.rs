//! Property tests over every decoder of untrusted bytes and over the state merge. They run in CI
//! with the normal test suite (proptest, not a separate fuzzing harness); each property runs a few
//! thousand cases.
//!
//! - Garbage never panics a decoder, and never opens as a sealed frame.
//! - Any well-formed message round-trips.
//! - meshd's receive path for gossiped deltas (decode, merge, count) changes nothing on
//!   garbage, and merges a real delta exactly as the state's own rules say.
//! - The state merge converges: any order, any duplication of the same deltas, same state.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use meshd::api::request::parse_request;
use meshd::gossip::admission::Admission;
use meshd::gossip::crypto::{Keyring, Purpose};
use meshd::gossip::member::MemberId;
use meshd::gossip::wire::{self, TcpMessage};
use meshd::identity::NodeId;
use meshd::identity::{JoinToken, Secret};
use meshd::state::{
    Availability, Change, ClusterState, Delta, EndpointRecord, NetworkRecord, NodeRecord, Signature,
    SignedDelta, Version,
};
use meshd::trust::ca::ClusterCa;
use meshd::trust::certs::CaAnchor;
use meshd::trust::keys::NodeKey;
use meshd::trust::record;
use meshd::util::hex::Bytes;
use std::sync::{Arc, Mutex};

use foca::BroadcastHandler;
use meshd::gossip::broadcast::{self, lock, DeltaHandler, Shared};
use meshd::gossip::stats::Stats;
use proptest::prelude::*;

#[path = "../../tests/src/depth.rs"]
mod depth;

fn secret(n: u8) -> Secret {
    serde_json::from_str(&format!("\"{}\"", format!("{n:02x}").repeat(32))).unwrap()
}

fn node(n: u8) -> NodeId {
    NodeId::from_bytes([n; 16])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(depth::cases(2000)))]

    #[test]
    fn tcp_messages_never_panic_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = wire::decode(&bytes);
    }


    #[test]
    fn garbage_never_opens(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let ring = Keyring::new(Purpose::Gossip, &[secret(1), secret(2)]);
        prop_assert!(ring.open(&bytes).is_err());
    }

    #[test]
    fn corrupted_frames_never_open(payload in proptest::collection::vec(any::<u8>(), 0..512), at in any::<usize>(), bit in 0u8..8) {
        let ring = Keyring::new(Purpose::Gossip, &[secret(1)]);
        let mut frame = ring.seal(&payload, 42);
        let at = at % frame.len();
        frame[at] ^= 1 << bit;
        prop_assert!(ring.open(&frame).is_err());
    }

    #[test]
    fn api_requests_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_request(&bytes);
    }

    #[test]
    fn tokens_and_ids_never_panic(text in ".{0,200}") {
        let _ = text.parse::<JoinToken>();
        let _ = text.parse::<NodeId>();
    }

    #[test]
    fn push_pull_round_trips(lamport in any::<u64>(), generation in any::<u64>(), n in any::<u8>(), port in 1u16..) {
        let member = MemberId { node: node(n), addr: SocketAddr::new(Ipv4Addr::new(10, 0, 0, n).into(), port), generation };
        let delta = Delta { version: Version { lamport, node: node(n) }, change: Change::Availability { id: node(n), value: Some(Availability::Drain) } };
        let signed = SignedDelta { delta, signature: Signature([n; 64]) };
        let message = TcpMessage::PushPull { from: member.clone(), state: vec![signed], members: vec![foca::Member::alive(member)] };
        prop_assert_eq!(wire::decode(&wire::encode(&message)).unwrap(), message);
    }
}

/// A small universe of deltas, so that sequences collide on keys and versions often. As in a
/// real cluster, one version of one key always carries one value (a writer never reuses a
/// version), so the value is derived from the version here.
fn arb_delta() -> impl Strategy<Value = Delta> {
    let owner = 1u8..4;
    let lamport = 1u64..6;
    prop_oneof![
        (owner.clone(), lamport.clone()).prop_map(|(n, l)| (n, l, l % 4 == 0)).prop_map(|(n, l, left)| {
            Delta {
                version: Version { lamport: l, node: node(n) },
                change: Change::Node {
                    id: node(n),
                    record: Some(NodeRecord {
                        name: format!("n{n}"),
                        gossip_addr: "10.0.0.1:7946".parse().unwrap(),
                        left,
                        // Departures happen at lamport 4; later records carry that forward.
                        departed: (l > 4).then_some(Version { lamport: 4, node: node(n) }),
                        cert: Default::default(),
                        founder: None,
                        keyring: Default::default(),
                        wireguard: None,
                    }),
                },
            }
        }),
        (owner.clone(), owner.clone(), lamport.clone())
            .prop_map(|(target, writer, l)| (target, writer, l, (l + u64::from(writer)) % 2 == 0))
            .prop_map(|(target, writer, l, drain)| Delta {
                version: Version { lamport: l, node: node(writer) },
                change: Change::Availability {
                    id: node(target),
                    value: Some(if drain { Availability::Drain } else { Availability::Active }),
                },
            }),
        (owner, 0u8..3, lamport).prop_map(|(n, e, l)| (n, e, l, l % 3 != 0)).prop_map(
            |(n, e, l, present)| Delta {
                version: Version { lamport: l, node: node(n) },
                change: Change::Endpoint {
                    owner: node(n),
                    id: format!("e{e}"),
                    record: present.then(|| EndpointRecord {
                        network: "net".into(),
                        address: Ipv4Addr::new(10, 1, n, e),
                        service: None,
                        task: None,
                        terminating: false,
                        aliases: Vec::new(),
                        health: Default::default(),
                    }),
                },
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(depth::cases(1000)))]

    #[test]
    fn merge_converges_whatever_the_order_and_duplicates(
        deltas in proptest::collection::vec(arb_delta(), 0..24),
        seed in any::<u64>(),
    ) {
        let now = Instant::now();
        let mut forward = ClusterState::default();
        for d in deltas.iter().cloned() {
            let _ = forward.apply(d, now);
        }
        // A shuffled copy with every delta twice.
        let mut shuffled: Vec<Delta> = deltas.iter().cloned().chain(deltas.iter().cloned()).collect();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut other = ClusterState::default();
        for d in shuffled {
            let _ = other.apply(d, now);
        }
        // Leaving removes endpoints at once, so the endpoint sets may differ only in entries
        // the departure removed; nodes and availability must agree exactly.
        prop_assert_eq!(forward.nodes.entries().collect::<Vec<_>>(), other.nodes.entries().collect::<Vec<_>>());
        prop_assert_eq!(
            forward.availability.entries().collect::<Vec<_>>(),
            other.availability.entries().collect::<Vec<_>>()
        );
        let live = |s: &ClusterState| -> Vec<_> {
            s.endpoints.live().filter(|((o, _), _)| !s.has_left(o)).map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        prop_assert_eq!(live(&forward), live(&other));

        // A full exchange of one state into an empty one reproduces it.
        let mut copy = ClusterState::default();
        for d in forward.dump() {
            let _ = copy.apply(d, now);
        }
        prop_assert_eq!(copy.nodes.entries().collect::<Vec<_>>(), forward.nodes.entries().collect::<Vec<_>>());
    }
}

/// A small cluster with real keys: a CA, node 1 its founder (a manager), nodes 2 and 3 workers,
/// each with a certified key and a signed node record.
struct Universe {
    anchor: CaAnchor,
    keys: Vec<NodeKey>,
    records: Vec<SignedDelta>,
}

fn universe() -> &'static Universe {
    static UNIVERSE: std::sync::OnceLock<Universe> = std::sync::OnceLock::new();
    UNIVERSE.get_or_init(|| {
        let ca = ClusterCa::create().unwrap();
        let keys: Vec<NodeKey> = (0..3).map(|_| NodeKey::generate().unwrap()).collect();
        let records = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let id = key.node_id();
                let record = NodeRecord {
                    name: format!("n{}", i + 1),
                    gossip_addr: SocketAddr::new(Ipv4Addr::new(10, 0, 0, i as u8 + 1).into(), 7946),
                    left: false,
                    departed: None,
                    cert: Bytes(ca.issue(&key.public(), 3600).unwrap().der),
                    founder: (i == 0).then(|| Signature(ca.founder_grant(&id))),
                    keyring: Default::default(),
                    wireguard: None,
                };
                record::sign(
                    key,
                    Delta {
                        version: Version { lamport: 1, node: id },
                        change: Change::Node { id, record: Some(record) },
                    },
                )
            })
            .collect();
        Universe { anchor: CaAnchor::new(ca.cert()).unwrap(), keys, records }
    })
}

/// The gossip agent's broadcast handler, on a fourth node, over a state that knows the
/// universe's nodes, network "front" (10.1.0.0/16) and the block each node's endpoints use
/// (10.1.N.0/28 for node N), granted by the founder.
fn handler() -> DeltaHandler {
    let u = universe();
    let me = NodeId::from_bytes([0xee; 16]);
    let shared = Arc::new(Mutex::new(Shared::new(Admission::new(u.anchor.clone(), me))));
    let stats = Arc::new(Stats::default());
    for record in &u.records {
        assert!(broadcast::merge(&mut lock(&shared), record.clone(), &stats));
    }
    let founder = &u.keys[0];
    let version = |lamport| Version { lamport, node: founder.node_id() };
    let network = NetworkRecord {
        subnet: "10.1.0.0/16".parse().unwrap(),
        vni: meshd::state::validate::vni_for("front"),
        options: Default::default(),
    };
    let change = Change::Network { name: "front".into(), record: Some(network) };
    assert!(broadcast::merge(
        &mut lock(&shared),
        record::sign(founder, Delta { version: version(1), change }),
        &stats
    ));
    for (n, key) in u.keys.iter().enumerate() {
        let claim = Some(meshd::state::BlockClaim { owner: key.node_id() });
        let change = Change::Block { network: "front".into(), index: n as u32 * 16, claim };
        let signed = record::sign(founder, Delta { version: version(2 + n as u64), change });
        assert!(broadcast::merge(&mut lock(&shared), signed, &stats));
    }
    DeltaHandler { shared, stats }
}

/// A delta someone of the universe writes and signs: its own endpoint, someone else's (a
/// forgery), an availability (a manager's business), a network; sometimes with its signature
/// flipped.
#[derive(Debug, Clone)]
struct Written {
    signed: SignedDelta,
    /// Whether admission must refuse it.
    forbidden: bool,
}

fn arb_written() -> impl Strategy<Value = Written> {
    // A writer never reuses a version for another value: what it writes is a function of the
    // version (and of what it writes about), as in a real cluster.
    (0usize..3, 0usize..3, 0u8..4, 2u64..8, 0u8..8).prop_map(|(writer, other, kind, lamport, flip)| {
        let u = universe();
        let (key, me, them) = (&u.keys[writer], u.keys[writer].node_id(), u.keys[other].node_id());
        let endpoint = |n: u8| EndpointRecord {
            network: "front".into(),
            address: Ipv4Addr::new(10, 1, n, 2),
            service: None,
            task: None,
            terminating: false,
            aliases: Vec::new(),
            health: Default::default(),
        };
        let (change, forbidden) = match kind {
            0 => {
                (Change::Endpoint { owner: me, id: "e".into(), record: Some(endpoint(writer as u8)) }, false)
            }
            1 => (
                Change::Endpoint { owner: them, id: "e".into(), record: Some(endpoint(other as u8)) },
                them != me,
            ),
            2 => {
                let value = Some(if lamport % 2 == 0 { Availability::Drain } else { Availability::Active });
                (Change::Availability { id: them, value }, writer != 0)
            }
            _ => {
                let record = NetworkRecord {
                    subnet: "10.1.0.0/16".parse().unwrap(),
                    vni: meshd::state::validate::vni_for("front"),
                    options: Default::default(),
                };
                (Change::Network { name: "front".into(), record: Some(record) }, writer != 0)
            }
        };
        // One version per (writer, kind, subject): distinct writes never share a version.
        let lamport = 1_000 + lamport * 100 + u64::from(kind) * 10 + other as u64;
        let mut signed = record::sign(key, Delta { version: Version { lamport, node: me }, change });
        let tampered = flip == 0;
        if tampered {
            signed.signature.0[7] ^= 1;
        }
        Written { signed, forbidden: forbidden || tampered }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(depth::cases(300)))]

    #[test]
    fn a_gossiped_item_that_is_not_a_delta_changes_nothing_and_is_counted(
        seed in proptest::collection::vec(arb_written(), 0..6),
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut handler = handler();
        for written in seed {
            let _ = handler.receive_item(&broadcast::encode(&written.signed), None);
        }
        let before = lock(&handler.shared).state.dump();
        let counted = handler.stats.snapshot();
        match handler.receive_item(&bytes, None) {
            // The bytes happened to decode: admission decided, as for any delta.
            Ok(_) => {}
            Err(_) => {
                prop_assert_eq!(lock(&handler.shared).state.dump(), before);
                prop_assert_eq!(handler.stats.snapshot().dropped_malformed, counted.dropped_malformed + 1);
            }
        }
    }

    #[test]
    fn forged_tampered_and_unauthorised_deltas_change_nothing_and_are_counted(
        earlier in proptest::collection::vec(arb_written(), 0..10),
        written in arb_written(),
    ) {
        let mut handler = handler();
        for w in earlier {
            let _ = handler.receive_item(&broadcast::encode(&w.signed), None);
        }
        let before = lock(&handler.shared).state.dump();
        let delta = &written.signed.delta;
        // A delta no newer than what is held is not even checked: it could change nothing.
        let not_newer = lock(&handler.shared).state.version_of(&delta.key()).is_some_and(|v| v >= delta.version);
        let rejected = handler.stats.deltas_rejected();
        let spread = handler.receive_item(&broadcast::encode(&written.signed), None).expect("a real delta decodes");
        if written.forbidden {
            prop_assert!(spread.is_none(), "a refused delta is not spread on");
            prop_assert_eq!(lock(&handler.shared).state.dump(), before, "and changes nothing");
            if !not_newer {
                prop_assert_eq!(handler.stats.deltas_rejected(), rejected + 1, "and is counted");
            }
        }
    }

    #[test]
    fn admitted_deltas_converge_whatever_the_order_and_duplicates(
        deltas in proptest::collection::vec(arb_written(), 0..16),
        seed in any::<u64>(),
    ) {
        let mut forward = handler();
        for w in &deltas {
            let _ = forward.receive_item(&broadcast::encode(&w.signed), None);
        }
        let mut shuffled: Vec<Written> = deltas.iter().cloned().chain(deltas.iter().cloned()).collect();
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut other = handler();
        for w in &shuffled {
            let _ = other.receive_item(&broadcast::encode(&w.signed), None);
        }
        prop_assert_eq!(lock(&forward.shared).state.dump(), lock(&other.shared).state.dump());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(depth::cases(3000)))]

    /// Names come from the API and, merged, from other nodes: any text gets a decision, and what
    /// is accepted keeps the naming rules' promises (one label for networks and services; no
    /// task name that hides a public one).
    #[test]
    fn any_name_gets_a_decision_that_keeps_the_rules(name in "[a-zA-Z0-9._ -]{0,80}|.{0,300}") {
        use meshd::name_rules::{check, NameKind};
        for kind in [NameKind::Network, NameKind::Service] {
            if check(kind, &name).is_ok() {
                prop_assert!(!name.contains('.') && (1..=63).contains(&name.len()), "{}", name);
            }
        }
        if check(NameKind::Task, &name).is_ok() {
            prop_assert!(!meshd_dns::public::may_be_public(&name), "{}", name);
            prop_assert!(name.len() <= 253 && !name.to_ascii_lowercase().starts_with("tasks."));
        }
    }
}
