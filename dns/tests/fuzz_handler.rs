//! Property tests of the request handler's decisions and of the parsers it relies on: any name,
//! any type, any scope, any bytes from the wire: an answer or a clean refusal, never a panic, and
//! never a forward of a name that is ours.

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType};
use meshd_dns::handler::Answer;
use meshd_dns::{Forwarder, MeshHandler, Registry};
use proptest::prelude::*;

fn handler(scope: Vec<String>) -> MeshHandler {
    let mut registry = Registry::default();
    registry.add("front", "web", Ipv4Addr::new(10, 0, 0, 100));
    registry.add("front", "tasks.web", Ipv4Addr::new(10, 0, 0, 2));
    registry.add("back", "db", Ipv4Addr::new(10, 1, 0, 5));
    registry.add_reverse("front", Ipv4Addr::new(10, 0, 0, 2), "web.1");
    MeshHandler {
        registry: Arc::new(ArcSwap::from_pointee(registry)),
        scope: Arc::new(ArcSwap::from_pointee(scope)),
        forwarder: Arc::new(Forwarder::new(Vec::new())),
        ttl: 5,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn any_name_and_type_gets_a_decision(name in "[a-zA-Z0-9.-]{0,80}", rtype in any::<u16>(), front in any::<bool>()) {
        let scope = if front { vec!["front".to_string()] } else { vec!["back".to_string()] };
        let h = handler(scope);
        if let Ok(name) = Name::from_str(&name) {
            let answer = h.answer(&name, RecordType::from(rtype));
            // Names of the cluster's networks are never forwarded, in or out of scope.
            let lower = name.to_ascii().trim_end_matches('.').to_ascii_lowercase();
            if lower == "web" || lower == "db" || lower.ends_with(".front") || lower.ends_with(".back") {
                prop_assert_ne!(answer, Answer::Forward);
            }
        }
    }

    #[test]
    fn wire_garbage_never_panics_the_parser(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::from_vec(&bytes);
    }

    #[test]
    fn resolv_conf_parsing_never_panics(text in ".{0,400}") {
        let _ = meshd_dns::forward::parse_resolv_conf(&text);
    }
}
