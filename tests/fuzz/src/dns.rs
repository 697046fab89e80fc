//! The DNS server's fast path against its slow path (differential), as `dns/tests/fuzz_fast.rs`
//! checks them with proptest: any datagram gets a fast answer only if it is a valid query, and
//! every fast answer says what the slow path (hickory's parser, meshd's handler, hickory's
//! encoder with the asker's UDP size) says to the same datagram. The first byte of the input
//! picks the asking namespace's scope; the rest is the datagram.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::{RData, Record};
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use meshd_dns::fast::answers::Answers;
use meshd_dns::fast::{respond, Verdict, MAX_ANSWER};
use meshd_dns::{Forwarder, MeshHandler, Registry};

pub const SCOPES: [&[&str]; 4] = [&["front"], &["back"], &["front", "back"], &[]];

pub fn registry() -> Registry {
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
    registry.add("back", "web", Ipv4Addr::new(10, 1, 0, 100));
    registry.add_reverse("front", Ipv4Addr::new(10, 0, 0, 2), "web.1");
    registry
}

fn handler(scope: &[&str]) -> MeshHandler {
    MeshHandler {
        registry: Arc::new(ArcSwap::from_pointee(registry())),
        scope: Arc::new(ArcSwap::from_pointee(scope.iter().map(|s| s.to_string()).collect())),
        forwarder: Arc::new(Forwarder::new(Vec::new())),
        ttl: 5,
        limits: meshd_dns::limits::NodeLimits::new().namespace(),
    }
}

fn fast(datagram: &[u8], scope: &[&str]) -> (Verdict, Vec<u8>) {
    static ANSWERS: OnceLock<Answers> = OnceLock::new();
    let answers = ANSWERS.get_or_init(|| Answers::build(&registry(), 5));
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

fn slow(datagram: &[u8], scope: &[&str]) -> Option<Vec<u8>> {
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let request = Request::from_bytes(datagram.to_vec(), src, Protocol::Udp).ok()?;
    let capture = Capture::default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(handler(scope).handle_request::<_, TokioTime>(&request, capture.clone()));
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

pub fn fast_against_slow(data: &[u8]) {
    let Some((&pick, datagram)) = data.split_first() else { return };
    let scope = SCOPES[usize::from(pick) % SCOPES.len()];
    let (verdict, bytes) = fast(datagram, scope);
    if verdict == Verdict::Drop {
        assert!(datagram.len() < 12, "only what is shorter than a header is dropped");
    }
    let Verdict::Answer(_) = verdict else { return };
    let query = Message::from_vec(datagram).expect("the fast path answered a datagram hickory cannot parse");
    assert_eq!(query.metadata.message_type, MessageType::Query);
    assert_eq!(query.metadata.op_code, OpCode::Query);
    assert_eq!(query.queries.len(), 1);
    let answer = Message::from_vec(&bytes).expect("a fast answer parses");
    let reference = slow(datagram, scope).expect("the slow path answers what the fast path answers");
    let reference = Message::from_vec(&reference).expect("a slow answer parses");
    let (a, r) = (&answer.metadata, &reference.metadata);
    assert_eq!(a.id, query.metadata.id);
    assert_eq!(
        (a.id, a.message_type, a.op_code, a.authoritative, a.recursion_desired, a.recursion_available),
        (r.id, r.message_type, r.op_code, r.authoritative, r.recursion_desired, r.recursion_available)
    );
    assert_eq!(
        (a.checking_disabled, a.authentic_data, a.response_code),
        (r.checking_disabled, r.authentic_data, r.response_code)
    );
    assert_eq!(a.truncation, r.truncation, "TC on both or neither");
    let question_len = datagram.len() - 12 - if query.edns.is_some() { 11 } else { 0 };
    assert_eq!(&bytes[12..12 + question_len], &datagram[12..12 + question_len], "the question as asked");
    assert_eq!(&answer.queries, &reference.queries);
    if a.truncation {
        assert!(answer.answers.is_empty(), "a fast TC answer has no records");
    } else {
        assert_eq!(addresses(&answer), addresses(&reference));
        assert_eq!(answer.answers.len(), reference.answers.len());
        for (x, y) in answer.answers.iter().zip(&reference.answers) {
            assert_eq!((&x.name, x.ttl, x.record_type()), (&y.name, y.ttl, y.record_type()));
        }
    }
    let (ae, re) = (answer.edns.as_ref(), reference.edns.as_ref());
    assert_eq!(ae.is_some(), re.is_some(), "OPT on both or neither");
    if let (Some(ae), Some(re)) = (ae, re) {
        assert_eq!(
            (ae.max_payload(), ae.version(), ae.flags().dnssec_ok),
            (re.max_payload(), re.version(), re.flags().dnssec_ok)
        );
    }
}
