//! How big an answer over UDP may be, and what happens to one that is bigger. One rule for the
//! fast path and for hickory's path, so both give the same answer to the same question.
//!
//! - Without EDNS: 512 bytes (RFC 1035 4.2.1).
//! - With EDNS: the asker's payload size, at least 512 and at most [`EDNS_PAYLOAD`] (1232 bytes:
//!   the size DNS Flag Day 2020 settled on, unbound's and BIND's default, which fits any path's
//!   MTU without IP fragmentation). The answer's OPT record advertises that same size.
//! - An answer of addresses that does not fit (a large `tasks.SVC`) is sent with TC set and no
//!   records: the asker retries over TCP, where the whole answer fits (RFC 7766). A partial
//!   list would look complete to a client that ignores TC.

/// An answer without EDNS, at most.
pub const PLAIN_LIMIT: usize = 512;
/// The largest UDP payload meshd sends or advertises.
pub const EDNS_PAYLOAD: u16 = 1232;
/// One A record whose name points at the question: pointer, type, class, TTL, length, address.
pub const A_RECORD_LEN: usize = 16;
/// An OPT record without options.
pub const OPT_RECORD_LEN: usize = 11;
/// The DNS header.
const HEADER_LEN: usize = 12;

/// The payload size an answer to an asker with EDNS payload `asked` may use (and advertises).
pub fn edns_payload(asked: u16) -> u16 {
    asked.clamp(PLAIN_LIMIT as u16, EDNS_PAYLOAD)
}

/// The OPT record of an answer to an asker that sent `asked`: version 0, the payload size of
/// [`edns_payload`], its DO bit copied (RFC 3225), no options.
pub fn response_edns(asked: &hickory_proto::op::Edns) -> hickory_proto::op::Edns {
    let mut edns = hickory_proto::op::Edns::new();
    edns.set_max_payload(edns_payload(asked.max_payload()));
    edns.set_version(0);
    edns.set_dnssec_ok(asked.flags().dnssec_ok);
    edns
}

/// The largest UDP answer for an asker with this EDNS payload size (None: no EDNS).
pub fn limit(edns: Option<u16>) -> usize {
    edns.map_or(PLAIN_LIMIT, |asked| usize::from(edns_payload(asked)))
}

/// The size of an answer with `records` A records to a question of `question_len` bytes.
pub fn a_answer_len(question_len: usize, records: usize, edns: bool) -> usize {
    HEADER_LEN + question_len + records * A_RECORD_LEN + if edns { OPT_RECORD_LEN } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(limit(None), 512);
        assert_eq!(limit(Some(0)), 512);
        assert_eq!(limit(Some(1000)), 1000);
        assert_eq!(limit(Some(4096)), 1232);
        // `tasks.web.` A IN: 15 bytes; 30 addresses fit in 512 bytes, 31 do not.
        assert!(a_answer_len(15, 30, false) <= 512);
        assert!(a_answer_len(15, 31, false) > 512);
    }
}
