//! Answering one DNS request: locally from the registry (scoped to the asking namespace's
//! networks) or by forwarding. A local answer never goes upstream, and a local miss is NXDOMAIN.

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::{Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use rand::seq::SliceRandom;

use crate::forward::{ForwardError, Forwarder};
use crate::limits::{DnsCounters, NamespaceLimits};
use crate::registry::{Lookup, Registry};
use crate::stats::Outcome;

/// Answers for one namespace.
#[derive(Clone)]
pub struct MeshHandler {
    pub registry: Arc<ArcSwap<Registry>>,
    /// The networks this namespace is on (swapped when it attaches to more).
    pub scope: Arc<ArcSwap<Vec<String>>>,
    pub forwarder: Arc<Forwarder>,
    /// TTL of local answers: short, so clients never hold stale answers for long.
    pub ttl: u32,
    /// This namespace's share of the node's forwarding slots and TCP connections.
    pub limits: Arc<NamespaceLimits>,
}

/// What to send back, decided before any I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Records(Vec<Record>),
    Code(ResponseCode),
    Forward,
}

impl MeshHandler {
    /// The local decision for one question.
    pub fn answer(&self, name: &Name, record_type: RecordType) -> Answer {
        let registry = self.registry.load();
        let scope = self.scope.load();
        let text = name.to_ascii();
        // A PTR question for a reverse name; a PTR question for any other name is answered like
        // any other type below (NODATA for a name of ours: it must not leak upstream).
        if let (RecordType::PTR, Some(address)) = (record_type, ptr_address(&text)) {
            return match registry.reverse(&scope, address) {
                Some(target) => match Name::from_str(&format!("{target}.")) {
                    Ok(target) => Answer::Records(vec![Record::from_rdata(
                        name.clone(),
                        self.ttl,
                        RData::PTR(PTR(target)),
                    )]),
                    Err(_) => Answer::Code(ResponseCode::ServFail),
                },
                None => Answer::Forward,
            };
        }
        match registry.lookup(&scope, &text) {
            Lookup::Forward => Answer::Forward,
            Lookup::NotFound => Answer::Code(ResponseCode::NXDomain),
            Lookup::Found(mut addresses) if record_type == RecordType::A => {
                addresses.shuffle(&mut rand::rng());
                Answer::Records(
                    addresses
                        .into_iter()
                        .map(|a| Record::from_rdata(name.clone(), self.ttl, RData::A(A(a))))
                        .collect(),
                )
            }
            // A known name, another type (AAAA, TXT, ...): it exists, without such records.
            Lookup::Found(_) => Answer::Records(Vec::new()),
        }
    }
}

/// `4.3.2.1.in-addr.arpa` -> 1.2.3.4.
fn ptr_address(name: &str) -> Option<Ipv4Addr> {
    let rest = name.trim_end_matches('.').to_ascii_lowercase();
    let octets = rest.strip_suffix(".in-addr.arpa")?;
    let parts: Vec<u8> = octets.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    match parts.as_slice() {
        [d, c, b, a] => Some(Ipv4Addr::new(*a, *b, *c, *d)),
        _ => None,
    }
}

// hickory-server's trait is declared with async_trait.
#[async_trait::async_trait]
impl RequestHandler for MeshHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let start = std::time::Instant::now();
        let (info, outcome) = self.respond(request, &mut response).await;
        self.forwarder.stats().record(outcome, start.elapsed());
        info
    }
}

impl MeshHandler {
    /// Answers one request; returns what was sent and the outcome it counts as.
    async fn respond<R: ResponseHandler>(
        &self,
        request: &Request,
        response: &mut R,
    ) -> (ResponseInfo, Outcome) {
        // EDNS echoed: an OPT record with the UDP size this answer may use (crate::udp_size).
        let edns = request.edns.as_ref().map(crate::udp_size::response_edns);
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let metadata = &request.metadata;
        let error =
            |code| MessageResponseBuilder::new(&request.queries, edns.as_ref()).error_msg(metadata, code);
        if metadata.op_code != OpCode::Query {
            return (send(response, error(ResponseCode::Refused), request).await, Outcome::Refused);
        }
        let queries = request.queries.queries();
        let [query] = queries else {
            return (send(response, error(ResponseCode::FormErr), request).await, Outcome::Refused);
        };
        let name: Name = query.name().into();
        let answer = self.answer(&name, query.query_type());
        let mut reply = Metadata::response_from_request(metadata);
        reply.recursion_available = true;
        match answer {
            Answer::Records(records) => {
                reply.authoritative = true;
                let info = send(response, builder.build(reply, records.iter(), [], [], []), request).await;
                (info, Outcome::Local)
            }
            Answer::Code(code) => {
                reply.response_code = code;
                reply.authoritative = true;
                let outcome =
                    if code == ResponseCode::NXDomain { Outcome::NxDomain } else { Outcome::Refused };
                (send(response, builder.build_no_records(reply), request).await, outcome)
            }
            Answer::Forward => {
                // One namespace's lookups to an upstream that never answers must not take the
                // slots of the others: over its share, SERVFAIL at once (counted).
                let Some(_slot) = self.limits.forward_slot() else {
                    return (
                        send(response, error(ResponseCode::ServFail), request).await,
                        Outcome::ForwardFailed,
                    );
                };
                let counters = self.limits.counters();
                let resolved = self.forwarder.resolve(query.original(), metadata.recursion_desired).await;
                match &resolved {
                    Ok(_) => DnsCounters::add(&counters.forwarded),
                    Err(ForwardError::Busy) => DnsCounters::add(&counters.forward_busy_node),
                    Err(_) => DnsCounters::add(&counters.forward_failed),
                }
                match resolved {
                    Ok(upstream) => {
                        reply.response_code = upstream.metadata.response_code;
                        let built = builder.build(
                            reply,
                            upstream.answers.iter(),
                            upstream.authorities.iter(),
                            [],
                            upstream.additionals.iter().filter(|r| r.record_type() != RecordType::OPT),
                        );
                        (send(response, built, request).await, Outcome::Forwarded)
                    }
                    Err(_) => {
                        (send(response, error(ResponseCode::ServFail), request).await, Outcome::ForwardFailed)
                    }
                }
            }
        }
    }
}

async fn send<'a, R: ResponseHandler>(
    response: &mut R,
    message: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    request: &Request,
) -> ResponseInfo {
    match response.send_response(message).await {
        Ok(info) => info,
        Err(error) => {
            tracing::debug!(%error, "DNS response not sent");
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::Forwarder;

    fn handler() -> MeshHandler {
        let mut registry = Registry::default();
        registry.add("front", "web", Ipv4Addr::new(10, 0, 0, 100));
        registry.add("front", "tasks.web", Ipv4Addr::new(10, 0, 0, 2));
        registry.add_reverse("front", Ipv4Addr::new(10, 0, 0, 2), "web.1");
        MeshHandler {
            registry: Arc::new(ArcSwap::from_pointee(registry)),
            scope: Arc::new(ArcSwap::from_pointee(vec!["front".to_string()])),
            forwarder: Arc::new(Forwarder::new(Vec::new())),
            ttl: 5,
            limits: crate::limits::NodeLimits::new().namespace(),
        }
    }

    fn name(text: &str) -> Name {
        Name::from_str(text).unwrap()
    }

    #[test]
    fn local_answers() {
        let h = handler();
        let Answer::Records(records) = h.answer(&name("web."), RecordType::A) else { panic!() };
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].ttl, 5);
        assert_eq!(h.answer(&name("web."), RecordType::AAAA), Answer::Records(vec![]));
        assert_eq!(h.answer(&name("nope."), RecordType::A), Answer::Code(ResponseCode::NXDomain));
        assert_eq!(h.answer(&name("example.com."), RecordType::A), Answer::Forward);
        let Answer::Records(ptr) = h.answer(&name("2.0.0.10.in-addr.arpa."), RecordType::PTR) else {
            panic!()
        };
        assert_eq!(ptr.len(), 1);
        assert_eq!(h.answer(&name("9.9.9.9.in-addr.arpa."), RecordType::PTR), Answer::Forward);
        // PTR of a name of ours that is not a reverse name: it exists, without PTR records.
        assert_eq!(h.answer(&name("web."), RecordType::PTR), Answer::Records(vec![]));
    }

    #[test]
    fn ptr_names_parse() {
        assert_eq!(ptr_address("4.3.2.1.in-addr.arpa."), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(ptr_address("4.3.2.in-addr.arpa"), None);
        assert_eq!(ptr_address("x.3.2.1.in-addr.arpa"), None);
        assert_eq!(ptr_address("example.com"), None);
    }
}
