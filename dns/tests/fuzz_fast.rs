//! Property tests of the fast path against the slow one: any bytes from the wire never panic
//! and get a fast answer only if they are a valid query (hickory's parser agrees); every fast
//! answer says what the slow path (hickory's parser, meshd's handler, hickory's encoder with
//! the asker's UDP size) says to the same datagram: same ID, flags, code, question (byte for
//! byte, so the asker's case), addresses and OPT record. Only the order of addresses may differ
//! (both shuffle), and an answer too long for the asker is TC without records on the fast path
//! where the slow path cuts the list at a record boundary (both TC).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use meshd_dns::fast::answers::Answers;
use meshd_dns::fast::{respond, Verdict, MAX_ANSWER};
use meshd_dns::{Forwarder, MeshHandler, Registry};
use proptest::prelude::*;

#[path = "../../tests/src/depth.rs"]
mod depth;

fn registry() -> Registry {
    let mut registry = Registry::default();
    registry.add("front", "web", Ipv4Addr::new(10, 0, 0, 100));
    for i in 2..6 {
        registry.add("front", "tasks.web", Ipv4Addr::new(10, 0, 0, i));
    }
    for i in 0..40 {
        registry.add("front", "tasks.big", Ipv4Addr::new(10, 0, 1, i));
    }
    registry.add("front", "web.1", Ipv4Addr::new(10, 0, 0, 2));
    registry.add("back", "db", Ipv4Addr::new(10, 1, 0, 5));
    // On two networks of the scope: the slow path merges them.
    registry.add("back", "web", Ipv4Addr::new(10, 1, 0, 100));
    registry.add_reverse("front", Ipv4Addr::new(10, 0, 0, 2), "web.1");
    registry
}

fn handler(registry: Registry, scope: &[&str]) -> MeshHandler {
    MeshHandler {
        registry: Arc::new(ArcSwap::from_pointee(registry)),
        scope: Arc::new(ArcSwap::from_pointee(scope.iter().map(|s| s.to_string()).collect())),
        forwarder: Arc::new(Forwarder::new(Vec::new())),
        ttl: 5,
        limits: meshd_dns::limits::NodeLimits::new().namespace(),
    }
}

/// The fast path's verdict and bytes for `datagram` from a namespace on `scope`.
fn fast(datagram: &[u8], scope: &[&str]) -> (Verdict, Vec<u8>) {
    let answers = Answers::build(&registry(), 5);
    let scope: Vec<String> = scope.iter().map(|s| s.to_string()).collect();
    let tables = answers.tables(&scope);
    let mut out = [0xa5; MAX_ANSWER];
    let verdict = respond(datagram, Some(&tables), &mut out, &mut rand::rng());
    let bytes = match verdict {
        Verdict::Answer(n) => out[..n].to_vec(),
        _ => Vec::new(),
    };
    (verdict, bytes)
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let (info, bytes) = meshd_dns::fast::slow::encode(response)?;
        *self.0.lock().unwrap() = Some(bytes);
        Ok(info)
    }
}

/// The slow path's answer to `datagram`, as the UDP listener sends it.
fn slow(datagram: &[u8], scope: &[&str]) -> Option<Vec<u8>> {
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let request = Request::from_bytes(datagram.to_vec(), src, Protocol::Udp).ok()?;
    let capture = Capture::default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(handler(registry(), scope).handle_request::<_, TokioTime>(&request, capture.clone()));
    let written = capture.0.lock().unwrap().take();
    written
}

fn addresses(message: &Message) -> BTreeSet<Ipv4Addr> {
    message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// A fast answer must be the slow path's answer.
fn check(datagram: &[u8], scope: &[&str]) -> Result<(), TestCaseError> {
    let (verdict, bytes) = fast(datagram, scope);
    if verdict == Verdict::Drop {
        prop_assert!(datagram.len() < 12, "only what is shorter than a header is dropped");
    }
    let Verdict::Answer(_) = verdict else { return Ok(()) };
    let query = Message::from_vec(datagram)
        .map_err(|e| TestCaseError::fail(format!("answered a datagram hickory cannot parse: {e}")))?;
    prop_assert_eq!(query.metadata.message_type, MessageType::Query);
    prop_assert_eq!(query.metadata.op_code, OpCode::Query);
    prop_assert_eq!(query.queries.len(), 1);
    let answer = Message::from_vec(&bytes)
        .map_err(|e| TestCaseError::fail(format!("unparseable fast answer: {e}")))?;
    let reference = slow(datagram, scope).expect("the slow path answers what the fast path answers");
    let reference = Message::from_vec(&reference).unwrap();
    let (a, r) = (&answer.metadata, &reference.metadata);
    prop_assert_eq!(a.id, query.metadata.id);
    prop_assert_eq!(
        (a.id, a.message_type, a.op_code, a.authoritative, a.recursion_desired, a.recursion_available),
        (r.id, r.message_type, r.op_code, r.authoritative, r.recursion_desired, r.recursion_available)
    );
    prop_assert_eq!(
        (a.checking_disabled, a.authentic_data, a.response_code),
        (r.checking_disabled, r.authentic_data, r.response_code)
    );
    prop_assert_eq!(a.truncation, r.truncation, "TC on both or neither");
    // The question byte for byte as asked (case preserved).
    let question_len = datagram.len() - 12 - if query.edns.is_some() { 11 } else { 0 };
    prop_assert_eq!(&bytes[12..12 + question_len], &datagram[12..12 + question_len]);
    prop_assert_eq!(&answer.queries, &reference.queries);
    if a.truncation {
        prop_assert!(answer.answers.is_empty(), "a fast TC answer has no records");
    } else {
        prop_assert_eq!(addresses(&answer), addresses(&reference));
        prop_assert_eq!(answer.answers.len(), reference.answers.len());
        for (x, y) in answer.answers.iter().zip(&reference.answers) {
            prop_assert_eq!((&x.name, x.ttl, x.record_type()), (&y.name, y.ttl, y.record_type()));
        }
    }
    let (ae, re) = (answer.edns.as_ref(), reference.edns.as_ref());
    prop_assert_eq!(ae.is_some(), re.is_some(), "OPT on both or neither");
    if let (Some(ae), Some(re)) = (ae, re) {
        prop_assert_eq!(
            (ae.max_payload(), ae.version(), ae.flags().dnssec_ok),
            (re.max_payload(), re.version(), re.flags().dnssec_ok)
        );
    }
    Ok(())
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
