//! Reading a query from the wire, as far as the fast path needs: the header, the one question
//! and an optional plain OPT record. Anything else is not refused here, only handed on: the
//! slow path (hickory's parser and meshd's handler) decides what it deserves.
//!
//! ```text
//!  0      2      4        6        8        10       12
//!  | ID   | flags| QDCOUNT| ANCOUNT| NSCOUNT| ARCOUNT| QNAME ... 0 | QTYPE | QCLASS | [OPT]
//! ```
//!
//! The fast path takes a datagram only if all of this holds (else [`Parsed::Slow`]):
//! - a query (QR 0), opcode QUERY, TC, AA, Z and RCODE 0 (RD, AD and CD may be set);
//! - one question, no answer or authority records, at most one additional record;
//! - the question's name uncompressed, every label 1-63 bytes, at most 255 bytes in all;
//!   class IN;
//! - the additional record, if any, a plain OPT: root name, type 41, EDNS version 0, extended
//!   RCODE 0, no options (RDLENGTH 0);
//! - nothing after the last record.
//!
//! A datagram shorter than a header is [`Parsed::Drop`] (hickory-server drops those too).

use std::ops::Range;

/// Length of the DNS header.
pub const HEADER_LEN: usize = 12;
/// Longest name on the wire (RFC 1035 3.1).
pub const MAX_NAME_LEN: usize = 255;
/// Length of an OPT record without options: root name, type, class, TTL, RDLENGTH.
pub const OPT_LEN: usize = 11;

pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_OPT: u16 = 41;
pub const CLASS_IN: u16 = 1;

/// Field offsets in the header.
mod field {
    pub const ID: core::ops::Range<usize> = 0..2;
    pub const FLAGS_HI: usize = 2;
    pub const FLAGS_LO: usize = 3;
    pub const QDCOUNT: core::ops::Range<usize> = 4..6;
    pub const ANCOUNT: core::ops::Range<usize> = 6..8;
    pub const NSCOUNT: core::ops::Range<usize> = 8..10;
    pub const ARCOUNT: core::ops::Range<usize> = 10..12;
}

/// Bits of the high flags byte: QR (1), OPCODE (4), AA, TC, RD.
pub const QR: u8 = 0x80;
const OPCODE: u8 = 0x78;
pub const AA: u8 = 0x04;
pub const TC: u8 = 0x02;
pub const RD: u8 = 0x01;
/// Bits of the low flags byte: RA, Z, AD, CD, RCODE (4).
pub const RA: u8 = 0x80;
const Z: u8 = 0x40;
pub const CD: u8 = 0x10;
const RCODE: u8 = 0x0f;

/// The EDNS of a query with a plain OPT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// The asker's UDP payload size (the OPT record's class).
    pub payload: u16,
    /// DNSSEC OK: copied into the answer (RFC 3225).
    pub dnssec_ok: bool,
}

/// A query the fast path may answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: [u8; 2],
    /// The asker's RD and CD bits, to copy into the answer.
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    /// Where the question (name, type, class) is in the datagram: the answer repeats it byte
    /// for byte, so the asker's case survives.
    pub question: Range<usize>,
    pub qtype: u16,
    pub edns: Option<Edns>,
}

/// What the fast path makes of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A simple query; its name, lower case, is in the caller's buffer (`name_len` bytes).
    Fast { query: Query, name_len: usize },
    /// Anything else: for hickory's parser and meshd's handler.
    Slow,
    /// Not even a header: dropped unanswered.
    Drop,
}

fn u16_at(bytes: &[u8], range: Range<usize>) -> u16 {
    u16::from_be_bytes([bytes[range.start], bytes[range.start + 1]])
}

/// Parses `bytes`; on [`Parsed::Fast`] the question's name, lower case and in wire form
/// (labels and the closing zero), is in `name`.
pub fn parse(bytes: &[u8], name: &mut [u8; MAX_NAME_LEN]) -> Parsed {
    if bytes.len() < HEADER_LEN {
        return Parsed::Drop;
    }
    let (hi, lo) = (bytes[field::FLAGS_HI], bytes[field::FLAGS_LO]);
    if hi & (QR | OPCODE | AA | TC) != 0 || lo & (Z | RCODE) != 0 {
        return Parsed::Slow;
    }
    let additional = u16_at(bytes, field::ARCOUNT);
    if u16_at(bytes, field::QDCOUNT) != 1
        || u16_at(bytes, field::ANCOUNT) != 0
        || u16_at(bytes, field::NSCOUNT) != 0
        || additional > 1
    {
        return Parsed::Slow;
    }
    let Some(name_len) = read_name(&bytes[HEADER_LEN..], name) else { return Parsed::Slow };
    let end = HEADER_LEN + name_len + 4;
    if bytes.len() < end || u16_at(bytes, end - 2..end) != CLASS_IN {
        return Parsed::Slow;
    }
    let qtype = u16_at(bytes, end - 4..end - 2);
    let edns = match additional {
        0 if bytes.len() == end => None,
        1 if bytes.len() == end + OPT_LEN => match read_opt(&bytes[end..]) {
            Some(edns) => Some(edns),
            None => return Parsed::Slow,
        },
        _ => return Parsed::Slow,
    };
    let query = Query {
        id: [bytes[field::ID.start], bytes[field::ID.start + 1]],
        recursion_desired: hi & RD != 0,
        checking_disabled: lo & CD != 0,
        question: HEADER_LEN..end,
        qtype,
        edns,
    };
    Parsed::Fast { query, name_len }
}

/// Copies an uncompressed name, lower case, into `out`; its length with the closing zero.
fn read_name(bytes: &[u8], out: &mut [u8; MAX_NAME_LEN]) -> Option<usize> {
    let mut at = 0;
    loop {
        let len = usize::from(*bytes.get(at)?);
        if len == 0 {
            *out.get_mut(at)? = 0;
            return Some(at + 1);
        }
        // 64 and above: a compression pointer or a reserved label type.
        if len > 63 || at + 1 + len >= MAX_NAME_LEN {
            return None;
        }
        let label = bytes.get(at + 1..at + 1 + len)?;
        out[at] = len as u8;
        for (o, b) in out[at + 1..at + 1 + len].iter_mut().zip(label) {
            *o = b.to_ascii_lowercase();
        }
        at += 1 + len;
    }
}

/// A plain OPT record (exactly [`OPT_LEN`] bytes): its payload size and DO bit.
fn read_opt(bytes: &[u8]) -> Option<Edns> {
    let [0, t0, t1, p0, p1, rcode, version, flags, _, l0, l1] = *bytes else { return None };
    if u16::from_be_bytes([t0, t1]) != TYPE_OPT || rcode != 0 || version != 0 || [l0, l1] != [0, 0] {
        return None;
    }
    Some(Edns { payload: u16::from_be_bytes([p0, p1]), dnssec_ok: flags & 0x80 != 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `WeB.front. A IN`, ID 0xbeef, RD and AD set.
    const QUERY: [u8; 27] = [
        0xbe, 0xef, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 0, //
        3, b'W', b'e', b'B', 5, b'f', b'r', b'o', b'n', b't', 0, 0, 1, 0, 1,
    ];
    const OPT: [u8; 11] = [0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0];

    fn parse_vec(bytes: &[u8]) -> (Parsed, Vec<u8>) {
        let mut name = [0xa5; MAX_NAME_LEN];
        let parsed = parse(bytes, &mut name);
        let len = match &parsed {
            Parsed::Fast { name_len, .. } => *name_len,
            _ => 0,
        };
        (parsed, name[..len].to_vec())
    }

    #[test]
    fn a_simple_query_is_fast_and_its_name_lower_case() {
        let (parsed, name) = parse_vec(&QUERY);
        let Parsed::Fast { query, .. } = parsed else { panic!("{parsed:?}") };
        assert_eq!(name, b"\x03web\x05front\x00");
        assert_eq!(query.id, [0xbe, 0xef]);
        assert!(query.recursion_desired && !query.checking_disabled);
        assert_eq!(query.question, 12..27);
        assert_eq!(query.qtype, TYPE_A);
        assert_eq!(query.edns, None);
    }

    #[test]
    fn a_plain_opt_record_is_read() {
        let mut bytes = QUERY.to_vec();
        bytes[11] = 1;
        bytes.extend_from_slice(&OPT);
        let Parsed::Fast { query, .. } = parse_vec(&bytes).0 else { panic!() };
        assert_eq!(query.edns, Some(Edns { payload: 1232, dnssec_ok: true }));
    }

    #[test]
    fn everything_unusual_goes_to_the_slow_path() {
        let with = |at: usize, value: u8| {
            let mut bytes = QUERY.to_vec();
            bytes[at] = value;
            parse_vec(&bytes).0
        };
        assert_eq!(with(2, 0x81), Parsed::Slow, "a response");
        assert_eq!(with(2, 0x09), Parsed::Slow, "opcode 1");
        assert_eq!(with(2, 0x03), Parsed::Slow, "TC in a query");
        assert_eq!(with(3, 0x40), Parsed::Slow, "Z");
        assert_eq!(with(5, 2), Parsed::Slow, "two questions");
        assert_eq!(with(7, 1), Parsed::Slow, "an answer record");
        assert_eq!(with(11, 1), Parsed::Slow, "an additional record that is not there");
        assert_eq!(with(12, 0xc0), Parsed::Slow, "a compression pointer");
        assert_eq!(with(26, 3), Parsed::Slow, "class CH");
        let mut trailing = QUERY.to_vec();
        trailing.push(0);
        assert_eq!(parse_vec(&trailing).0, Parsed::Slow, "trailing bytes");
        let with_opt = |at: usize, value: u8, extra: &[u8]| {
            let mut bytes = QUERY.to_vec();
            bytes[11] = 1;
            let mut opt = OPT;
            opt[at] = value;
            bytes.extend_from_slice(&opt);
            bytes.extend_from_slice(extra);
            parse_vec(&bytes).0
        };
        assert_eq!(with_opt(6, 1, &[]), Parsed::Slow, "EDNS version 1");
        assert_eq!(with_opt(5, 1, &[]), Parsed::Slow, "an extended RCODE");
        assert_eq!(with_opt(2, 0, &[]), Parsed::Slow, "not an OPT record");
        assert_eq!(with_opt(0, 1, &[]), Parsed::Slow, "OPT not at the root");
        assert_eq!(with_opt(10, 4, &[0, 10, 0, 0]), Parsed::Slow, "an EDNS option (an empty cookie)");
        assert_eq!(parse_vec(&QUERY[..11]).0, Parsed::Drop);
        assert_eq!(parse_vec(&QUERY[..20]).0, Parsed::Slow, "cut in the name");
        assert_eq!(parse_vec(&QUERY[..25]).0, Parsed::Slow, "cut in the type");
    }

    #[test]
    fn names_longer_than_255_bytes_are_not_fast() {
        let mut bytes = QUERY[..12].to_vec();
        for _ in 0..5 {
            bytes.push(63);
            bytes.extend_from_slice(&[b'a'; 63]);
        }
        bytes.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(parse_vec(&bytes).0, Parsed::Slow);
        let mut longest = QUERY[..12].to_vec();
        for _ in 0..3 {
            longest.push(63);
            longest.extend_from_slice(&[b'a'; 63]);
        }
        longest.push(61);
        longest.extend_from_slice(&[b'a'; 61]);
        longest.extend_from_slice(&[0, 0, 1, 0, 1]);
        let (parsed, name) = parse_vec(&longest);
        assert!(matches!(parsed, Parsed::Fast { .. }), "{parsed:?}");
        assert_eq!(name.len(), 255);
    }
}
