//! Property tests of the request handler: its decision for any name, any type, any scope; and
//! the whole request path (hickory's request parsing, then meshd's handler, then the response it
//! writes) for any bytes from the wire: a well-formed answer to the asker's ID, or none; never a
//! panic, and never SERVFAIL (a forward) for a name that is ours.

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use std::net::SocketAddr;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler};
use meshd_dns::fast::differential::Capture;
use meshd_dns::handler::Answer;
use meshd_dns::{Forwarder, MeshHandler, Registry};
use proptest::prelude::*;

#[path = "../../tests/src/depth.rs"]
mod depth;

fn handler(scope: Vec<String>) -> MeshHandler {
    let mut registry = Registry::default();
    registry.add("front", "web", Ipv4Addr::new(10, 0, 0, 100));
    registry.add("front", "tasks.web", Ipv4Addr::new(10, 0, 0, 2));
    registry.add("back", "db", Ipv4Addr::new(10, 1, 0, 5));
    registry.add_reverse("front", Ipv4Addr::new(10, 0, 0, 2), "web.1");
    // A network named like a TLD, with names that would hide public ones if they counted.
    registry.add("com", "example", Ipv4Addr::new(10, 2, 0, 100));
    registry.add("com", "www.example.com", Ipv4Addr::new(10, 2, 0, 2));
    MeshHandler {
        registry: Arc::new(ArcSwap::from_pointee(registry)),
        scope: Arc::new(ArcSwap::from_pointee(scope)),
        forwarder: Arc::new(Forwarder::new(Vec::new())),
        ttl: 5,
        limits: meshd_dns::limits::NodeLimits::new().namespace(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(depth::cases(3000)))]

    #[test]
    fn any_name_and_type_gets_a_decision(
        name in "[a-zA-Z0-9.-]{0,60}|([a-z0-9]{1,8}\\.){0,3}(com|org|example|front|back|web)",
        rtype in any::<u16>(),
        front in any::<bool>(),
    ) {
        let scope = if front { vec!["front".to_string(), "com".to_string()] } else { vec!["back".to_string()] };
        let h = handler(scope);
        if let Ok(name) = Name::from_str(&name) {
            let answer = h.answer(&name, RecordType::from(rtype));
            // Names of the cluster's networks are never forwarded, in or out of scope.
            let lower = name.to_ascii().trim_end_matches('.').to_ascii_lowercase();
            if lower == "web" || lower == "db" || lower.ends_with(".front") || lower.ends_with(".back") {
                prop_assert_ne!(answer.clone(), Answer::Forward);
            }
            // A name that may be public is never refused, for any namespace.
            if meshd_dns::public::may_be_public(&lower) {
                prop_assert_ne!(answer, Answer::Code(ResponseCode::NXDomain), "{}", lower);
            }
        }
    }

    #[test]
    fn any_request_from_the_wire_gets_a_well_formed_answer_or_none(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_request(bytes)?;
    }

    #[test]
    fn mutated_queries_get_a_well_formed_answer_or_none(
        name in prop_oneof![Just("web"), Just("tasks.web"), Just("db.back"), Just("example.com"), Just("2.0.0.10.in-addr.arpa")],
        rtype in prop_oneof![Just(RecordType::A), Just(RecordType::AAAA), Just(RecordType::PTR), Just(RecordType::TXT)],
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
    ) {
        let mut query = Message::new(0x1234, MessageType::Query, OpCode::Query);
        query.add_query(Query::query(Name::from_str(name).unwrap(), rtype));
        let mut bytes = query.to_vec().unwrap();
        for (at, bits) in flips {
            let at = at % bytes.len();
            bytes[at] ^= bits;
        }
        check_request(bytes)?;
    }

    #[test]
    fn resolv_conf_parsing_never_panics(text in ".{0,400}") {
        let _ = meshd_dns::forward::parse_resolv_conf(&text);
    }
}

/// Runs `bytes` through the request path as the UDP listener would, and checks the answer.
fn check_request(bytes: Vec<u8>) -> Result<(), TestCaseError> {
    let Ok(request) =
        Request::from_bytes(bytes, "127.0.0.1:5353".parse::<SocketAddr>().unwrap(), Protocol::Udp)
    else {
        // hickory's parser refused it: the listener drops such datagrams before meshd sees them.
        return Ok(());
    };
    let capture = Capture::default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(
        handler(vec!["front".to_string()]).handle_request::<_, TokioTime>(&request, capture.clone()),
    );
    let Some(written) = capture.take() else { return Ok(()) };
    let answer =
        Message::from_vec(&written).map_err(|e| TestCaseError::fail(format!("unparseable answer: {e}")))?;
    let asked = &request.metadata;
    prop_assert_eq!(answer.metadata.id, asked.id, "the answer carries the asker's ID");
    prop_assert_eq!(answer.metadata.message_type, MessageType::Response);
    let queries = request.queries.queries();
    if let [query] = queries {
        if asked.op_code == OpCode::Query {
            prop_assert_eq!(answer.queries.len(), 1, "the question is echoed");
            let name = query.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
            // Ours: answered here (an address, NODATA or NXDOMAIN), never sent upstream.
            if ["web", "tasks.web", "db", "db.back", "web.front"].contains(&name.as_str()) {
                prop_assert_ne!(
                    answer.metadata.response_code,
                    ResponseCode::ServFail,
                    "{} was forwarded",
                    name
                );
            }
        }
    }
    Ok(())
}
