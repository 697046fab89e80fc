//! The fast path checked against the slow path on the same datagram (a differential test), in
//! one place for the property tests (`dns/tests/fuzz_fast.rs`) and the AFL target
//! (`tests/fuzz/src/dns.rs`): any datagram gets a fast answer only if it is a valid query, and
//! every fast answer says what the slow path (hickory's parser, meshd's handler, hickory's
//! encoder with the asker's UDP size) says to it: same ID, flags, code, question (byte for byte,
//! so the asker's case), addresses and OPT record. Only the order of addresses may differ (both
//! shuffle), and an answer too long for the asker is TC without records on the fast path where
//! the slow path cuts the list at a record boundary (both TC).
//!
//! Test support, not part of the server: nothing in meshd calls it.

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

use super::answers::Answers;
use super::{respond, Verdict, MAX_ANSWER};
use crate::{Forwarder, MeshHandler, Registry};

/// The scopes a test asks from: one network, the other, both (a name on both merges on the slow
/// path), none.
pub const SCOPES: [&[&str]; 4] = [&["front"], &["back"], &["front", "back"], &[]];

/// Names the tests ask for: services, tasks, a list too long for 512 bytes, a name on two
/// networks, a reverse name.
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
    // On two networks of the scope: the slow path merges them.
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
        limits: crate::limits::NodeLimits::new().namespace(),
    }
}

/// The fast path's verdict and bytes for `datagram` from a namespace on `scope`.
pub fn fast(datagram: &[u8], scope: &[&str]) -> (Verdict, Vec<u8>) {
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

/// A response handler that keeps what the slow path would send (encoded as the UDP listener
/// encodes it, for the asker's UDP size).
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

impl Capture {
    /// The bytes written, once.
    pub fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap().take()
    }
}

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
        let (info, bytes) = super::slow::encode(response)?;
        *self.0.lock().unwrap() = Some(bytes);
        Ok(info)
    }
}

/// The slow path's answer to `datagram`, as the UDP listener sends it.
pub fn slow(datagram: &[u8], scope: &[&str]) -> Option<Vec<u8>> {
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let request = Request::from_bytes(datagram.to_vec(), src, Protocol::Udp).ok()?;
    let capture = Capture::default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(handler(scope).handle_request::<_, TokioTime>(&request, capture.clone()));
    capture.take()
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

/// Fails with the first way `left` differs from `right`.
fn same<T: PartialEq + std::fmt::Debug>(left: T, right: T, what: &str) -> Result<(), String> {
    if left == right {
        Ok(())
    } else {
        Err(format!("{what}: fast {left:?}, slow {right:?}"))
    }
}

/// Checks the fast path's answer to `datagram` against the slow path's: `Err` names the first
/// difference.
pub fn compare(datagram: &[u8], scope: &[&str]) -> Result<(), String> {
    let (verdict, bytes) = fast(datagram, scope);
    if verdict == Verdict::Drop && datagram.len() >= 12 {
        return Err(format!(
            "dropped a datagram of {} bytes: only what is shorter than a header is",
            datagram.len()
        ));
    }
    let Verdict::Answer(_) = verdict else { return Ok(()) };
    let query =
        Message::from_vec(datagram).map_err(|e| format!("answered a datagram hickory cannot parse: {e}"))?;
    same(query.metadata.message_type, MessageType::Query, "message type")?;
    same(query.metadata.op_code, OpCode::Query, "op code")?;
    same(query.queries.len(), 1, "questions")?;
    let answer = Message::from_vec(&bytes).map_err(|e| format!("unparseable fast answer: {e}"))?;
    let reference =
        slow(datagram, scope).ok_or("the slow path does not answer what the fast path answers")?;
    let reference = Message::from_vec(&reference).map_err(|e| format!("unparseable slow answer: {e}"))?;
    let (a, r) = (&answer.metadata, &reference.metadata);
    same(a.id, query.metadata.id, "id")?;
    same(
        (a.id, a.message_type, a.op_code, a.authoritative, a.recursion_desired, a.recursion_available),
        (r.id, r.message_type, r.op_code, r.authoritative, r.recursion_desired, r.recursion_available),
        "header",
    )?;
    same(
        (a.checking_disabled, a.authentic_data, a.response_code),
        (r.checking_disabled, r.authentic_data, r.response_code),
        "flags and code",
    )?;
    same(a.truncation, r.truncation, "TC on both or neither")?;
    // The question byte for byte as asked (case preserved).
    let question_len = datagram.len() - 12 - if query.edns.is_some() { 11 } else { 0 };
    same(&bytes[12..12 + question_len], &datagram[12..12 + question_len], "question as asked")?;
    same(&answer.queries, &reference.queries, "questions")?;
    if a.truncation {
        same(answer.answers.len(), 0, "records in a fast TC answer")?;
    } else {
        same(addresses(&answer), addresses(&reference), "addresses")?;
        same(answer.answers.len(), reference.answers.len(), "record count")?;
        for (x, y) in answer.answers.iter().zip(&reference.answers) {
            same((&x.name, x.ttl, x.record_type()), (&y.name, y.ttl, y.record_type()), "record")?;
        }
    }
    let (ae, re) = (answer.edns.as_ref(), reference.edns.as_ref());
    same(ae.is_some(), re.is_some(), "OPT on both or neither")?;
    if let (Some(ae), Some(re)) = (ae, re) {
        same(
            (ae.max_payload(), ae.version(), ae.flags().dnssec_ok),
            (re.max_payload(), re.version(), re.flags().dnssec_ok),
            "OPT",
        )?;
    }
    Ok(())
}
