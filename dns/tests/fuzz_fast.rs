//! Property tests of the fast path against the slow one: any bytes from the wire never panic
//! and get a fast answer only if they are a valid query (hickory's parser agrees); every fast
//! answer says what the slow path (hickory's parser, meshd's handler, hickory's encoder with
//! the asker's UDP size) says to the same datagram: same ID, flags, code, question (byte for
//! byte, so the asker's case), addresses and OPT record. Only the order of addresses may differ
//! (both shuffle), and an answer too long for the asker is TC without records on the fast path
//! where the slow path cuts the list at a record boundary (both TC).

use std::str::FromStr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use meshd_dns::fast::differential::{compare, fast};
use meshd_dns::fast::Verdict;
use proptest::prelude::*;

#[path = "../../tests/src/depth.rs"]
mod depth;

/// A fast answer must be the slow path's answer.
fn check(datagram: &[u8], scope: &[&str]) -> Result<(), TestCaseError> {
    compare(datagram, scope).map_err(TestCaseError::fail)
}

/// A query for `name` of `rtype`, with an OPT record of `edns` (payload, DO) when given.
fn query(id: u16, name: &str, rtype: RecordType, rd: bool, edns: Option<(u16, bool)>) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = rd;
    message.add_query(Query::query(Name::from_str(name).unwrap(), rtype));
    if let Some((payload, dnssec_ok)) = edns {
        let mut opt = Edns::new();
        opt.set_max_payload(payload);
        opt.set_dnssec_ok(dnssec_ok);
        message.set_edns(opt);
    }
    message.to_vec().unwrap()
}

fn names() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("web"),
        Just("WeB"),
        Just("tasks.web"),
        Just("TASKS.Web"),
        Just("tasks.big"),
        Just("web.1"),
        Just("web.front"),
        Just("Web.Front"),
        Just("db"),
        Just("db.back"),
        Just("nothing"),
        Just("example.com"),
        Just("2.0.0.10.in-addr.arpa"),
        Just("tasks.nothing"),
    ]
    .prop_map(String::from)
}

fn scopes() -> impl Strategy<Value = &'static [&'static str]> {
    prop_oneof![Just(&["front"][..]), Just(&["back"][..]), Just(&["front", "back"][..]), Just(&[][..])]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(depth::cases(2000)))]

    #[test]
    fn random_bytes_never_panic_and_get_no_answer_unless_a_valid_query(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        scope in scopes(),
    ) {
        check(&bytes, scope)?;
    }

    #[test]
    fn queries_get_the_slow_paths_answer(
        id in any::<u16>(),
        name in names(),
        rtype in prop_oneof![Just(RecordType::A), Just(RecordType::AAAA), Just(RecordType::TXT), Just(RecordType::MX),
            Just(RecordType::PTR), Just(RecordType::ANY), Just(RecordType::Unknown(0))],
        rd in any::<bool>(),
        edns in proptest::option::of((any::<u16>(), any::<bool>())),
        scope in scopes(),
    ) {
        let bytes = query(id, &name, rtype, rd, edns);
        check(&bytes, scope)?;
    }

    #[test]
    fn mutated_queries_get_the_slow_paths_answer_or_go_to_it(
        name in names(),
        edns in proptest::option::of((any::<u16>(), any::<bool>())),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in proptest::option::of(any::<usize>()),
        scope in scopes(),
    ) {
        let mut bytes = query(0x1234, &name, RecordType::A, true, edns);
        for (at, bits) in flips {
            let at = at % bytes.len();
            bytes[at] ^= bits;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        check(&bytes, scope)?;
    }
}

#[test]
fn the_common_queries_are_fast() {
    for (name, rtype) in [("web", RecordType::A), ("WEB.front", RecordType::A), ("web", RecordType::AAAA)] {
        let (verdict, _) = fast(&query(1, name, rtype, true, Some((1232, false))), &["front"]);
        assert!(matches!(verdict, Verdict::Answer(_)), "{name} {rtype}");
    }
    // NODATA for AAAA of a name on two networks of the scope; A merges them on the slow path.
    assert!(matches!(
        fast(&query(1, "web", RecordType::AAAA, true, None), &["front", "back"]).0,
        Verdict::Answer(_)
    ));
    assert_eq!(fast(&query(1, "web", RecordType::A, true, None), &["front", "back"]).0, Verdict::Slow);
    // NXDOMAIN, forwarding and PTR are the slow path's.
    for (name, rtype) in [
        ("nothing", RecordType::A),
        ("example.com", RecordType::A),
        ("2.0.0.10.in-addr.arpa", RecordType::PTR),
        ("db", RecordType::A),
    ] {
        assert_eq!(fast(&query(1, name, rtype, true, None), &["front"]).0, Verdict::Slow, "{name}");
    }
    // Too many addresses for 512 bytes: TC, no records; with EDNS 1232 they fit.
    let (_, tc) = fast(&query(1, "tasks.big", RecordType::A, true, None), &["front"]);
    let tc = Message::from_vec(&tc).unwrap();
    assert!(tc.metadata.truncation && tc.answers.is_empty());
    let (_, all) = fast(&query(1, "tasks.big", RecordType::A, true, Some((1232, false))), &["front"]);
    let all = Message::from_vec(&all).unwrap();
    assert!(!all.metadata.truncation);
    assert_eq!(all.answers.len(), 40);
    assert_eq!(ResponseCode::NoError, all.metadata.response_code);
}
