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
use meshd::gossip::crypto::{Keyring, Purpose};
use meshd::gossip::member::MemberId;
use meshd::gossip::wire::{self, TcpMessage};
use meshd::identity::NodeId;
use meshd::identity::{JoinToken, Secret};
use meshd::state::{Availability, Change, ClusterState, Delta, EndpointRecord, NodeRecord, Version};
use std::sync::{Arc, Mutex};

use foca::BroadcastHandler;
use meshd::gossip::broadcast::{self, lock, DeltaHandler, Shared};
use meshd::gossip::stats::Stats;
use meshd::state::Applied;
use proptest::prelude::*;

fn secret(n: u8) -> Secret {
    serde_json::from_str(&format!("\"{}\"", format!("{n:02x}").repeat(32))).unwrap()
}

fn node(n: u8) -> NodeId {
    NodeId::from_bytes([n; 16])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

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
        let message = TcpMessage::PushPull { from: member.clone(), state: vec![delta], members: vec![foca::Member::alive(member)] };
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
                    }),
                },
            }
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

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

/// The gossip agent's broadcast handler over a fresh state.
fn handler() -> DeltaHandler {
    DeltaHandler { shared: Arc::new(Mutex::new(Shared::default())), stats: Arc::new(Stats::default()) }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn a_gossiped_item_that_is_not_a_delta_changes_nothing_and_is_counted(
        seed in proptest::collection::vec(arb_delta(), 0..8),
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut handler = handler();
        for delta in seed {
            let _ = handler.receive_item(&broadcast::encode(&delta), None);
        }
        let before = lock(&handler.shared).state.dump();
        let counted = handler.stats.snapshot();
        match handler.receive_item(&bytes, None) {
            // The bytes happened to decode: the merge rules decided, as for any delta.
            Ok(_) => {}
            Err(_) => {
                prop_assert_eq!(lock(&handler.shared).state.dump(), before);
                prop_assert_eq!(handler.stats.snapshot().dropped_malformed, counted.dropped_malformed + 1);
            }
        }
    }

    #[test]
    fn a_gossiped_delta_is_merged_exactly_as_the_state_rules_say(
        earlier in proptest::collection::vec(arb_delta(), 0..12),
        delta in arb_delta(),
    ) {
        let now = Instant::now();
        let mut handler = handler();
        let mut expected = ClusterState::default();
        for d in earlier {
            let _ = handler.receive_item(&broadcast::encode(&d), None);
            let _ = expected.apply(d, now);
        }
        let outcome = expected.apply(delta.clone(), now);
        let spread = handler.receive_item(&broadcast::encode(&delta), None).expect("a real delta decodes");
        // Spread on (re-broadcast) exactly when it was news here.
        prop_assert_eq!(spread.is_some(), matches!(outcome, Ok(Applied::Newer)));
        prop_assert_eq!(lock(&handler.shared).state.dump(), expected.dump());
        if outcome.is_err() {
            prop_assert!(handler.stats.snapshot().deltas_rejected > 0, "a refused delta is counted");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Names come from the API and, merged, from other nodes: any text gets a decision, and what
    /// is accepted keeps the naming rules' promises (one label for networks and services; no
    /// task name that hides a public one).
    #[test]
    fn any_name_gets_a_decision_that_keeps_the_rules(name in "[a-zA-Z0-9._ -]{0,80}|.{0,300}") {
        use meshd::names::{check, NameKind};
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
