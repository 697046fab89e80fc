//! Writing one answer on the fast path: the header (the asker's ID and RD/CD bits, AA and RA
//! set, as the slow path answers), the question byte for byte as asked (so its case survives,
//! and the records' name pointer reads it), the prepared records in a fresh random order (as
//! `tasks.SVC` is shuffled on the slow path), and an OPT record if the query had one.
//!
//! An answer that does not fit the asker's UDP size goes out with TC and no records
//! ([`crate::udp_size`]).

use rand::RngExt;

use crate::udp_size::{self, A_RECORD_LEN, EDNS_PAYLOAD};

use super::answers::Prepared;
use super::query::{Query, AA, QR, RA, RD, TC, TYPE_OPT};
use super::query::{CD, HEADER_LEN};

/// The largest answer [`write`] produces: the out buffer must be this big.
pub const MAX_ANSWER: usize = EDNS_PAYLOAD as usize;

/// Writes the answer to `query` (read from `datagram`) into `out` and returns its length.
/// `records`: the name's prepared records for an A question, None for NODATA (the name exists,
/// without records of the asked type).
pub fn write<R: rand::Rng>(
    datagram: &[u8],
    query: &Query,
    records: Option<&Prepared>,
    out: &mut [u8; MAX_ANSWER],
    rng: &mut R,
) -> usize {
    let question = &datagram[query.question.clone()];
    let count = records.map_or(0, Prepared::count);
    let edns = query.edns.is_some();
    let fits =
        udp_size::a_answer_len(question.len(), count, edns) <= udp_size::limit(query.edns.map(|e| e.payload));
    let written = if fits { count } else { 0 };

    out[0..2].copy_from_slice(&query.id);
    out[2] = QR | AA | if fits { 0 } else { TC } | if query.recursion_desired { RD } else { 0 };
    out[3] = RA | if query.checking_disabled { CD } else { 0 };
    out[4..6].copy_from_slice(&1u16.to_be_bytes());
    out[6..8].copy_from_slice(&(written as u16).to_be_bytes());
    out[8..10].copy_from_slice(&0u16.to_be_bytes());
    out[10..12].copy_from_slice(&u16::from(edns).to_be_bytes());
    let mut at = HEADER_LEN;
    out[at..at + question.len()].copy_from_slice(question);
    at += question.len();

    if let (Some(prepared), true) = (records, written > 0) {
        let bytes = prepared.records();
        out[at..at + bytes.len()].copy_from_slice(bytes);
        shuffle_addresses(&mut out[at..at + bytes.len()], written, rng);
        at += bytes.len();
    }

    if let Some(asked) = query.edns {
        let payload = udp_size::edns_payload(asked.payload).to_be_bytes();
        let flags = if asked.dnssec_ok { 0x80 } else { 0 };
        let [t0, t1] = TYPE_OPT.to_be_bytes();
        out[at..at + 11].copy_from_slice(&[0, t0, t1, payload[0], payload[1], 0, 0, flags, 0, 0, 0]);
        at += 11;
    }
    at
}

/// Fisher-Yates over the addresses of `count` records (every order equally likely).
fn shuffle_addresses<R: rand::Rng>(records: &mut [u8], count: usize, rng: &mut R) {
    let address = |i: usize| i * A_RECORD_LEN + 12..i * A_RECORD_LEN + 16;
    for i in (1..count).rev() {
        let j = rng.random_range(0..=i);
        if i != j {
            let mut a = [0u8; 4];
            a.copy_from_slice(&records[address(i)]);
            records.copy_within(address(j), address(i).start);
            records[address(j)].copy_from_slice(&a);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::Ipv4Addr;

    use super::super::answers::{find, Answers, Found};
    use super::super::query::{parse, Parsed, MAX_NAME_LEN};
    use super::*;
    use crate::Registry;

    /// `Tasks.Web.` A IN, ID 0x0102, RD, with an OPT record of payload `payload` and DO.
    fn query(payload: Option<u16>) -> Vec<u8> {
        let mut bytes = vec![1, 2, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(payload.is_some())];
        bytes.extend_from_slice(b"\x05Tasks\x03Web\x00\x00\x01\x00\x01");
        if let Some(payload) = payload {
            let [p0, p1] = payload.to_be_bytes();
            bytes.extend_from_slice(&[0, 0, 41, p0, p1, 0, 0, 0x80, 0, 0, 0]);
        }
        bytes
    }

    fn answers(tasks: u8) -> Answers {
        let mut r = Registry::default();
        for i in 0..tasks {
            r.add("front", "tasks.web", Ipv4Addr::new(10, 0, 1, i));
        }
        Answers::build(&r, 5)
    }

    fn answer(bytes: &[u8], answers: &Answers) -> Vec<u8> {
        let mut name = [0; MAX_NAME_LEN];
        let Parsed::Fast { query, name_len } = parse(bytes, &mut name) else { panic!() };
        let tables = answers.tables(&["front".to_string()]);
        let Found::One(prepared) = find(&tables, &name[..name_len]) else { panic!() };
        let mut out = [0xa5; MAX_ANSWER];
        let len = write(bytes, &query, Some(prepared), &mut out, &mut rand::rng());
        out[..len].to_vec()
    }

    #[test]
    fn header_question_records_and_opt() {
        let bytes = query(Some(4096));
        let out = answer(&bytes, &answers(1));
        assert_eq!(&out[..12], &[1, 2, 0x85, 0x80, 0, 1, 0, 1, 0, 0, 0, 1], "QR AA RD, RA; 1/1/0/1");
        assert_eq!(&out[12..27], &bytes[12..27], "the question as asked");
        assert_eq!(&out[27..43], &[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 1, 0]);
        assert_eq!(&out[43..], &[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0], "payload 1232, DO echoed");
    }

    #[test]
    fn too_many_addresses_for_the_asker_is_tc_without_records() {
        // 30 fit in 512 bytes without EDNS; 31 do not, but they fit a 1232-byte EDNS answer.
        let out = answer(&query(None), &answers(30));
        assert_eq!((out[2] & TC, u16::from_be_bytes([out[6], out[7]])), (0, 30));
        let out = answer(&query(None), &answers(31));
        assert_eq!(out.len(), 12 + 15);
        assert_eq!((out[2] & TC, u16::from_be_bytes([out[6], out[7]])), (TC, 0));
        let out = answer(&query(Some(1232)), &answers(31));
        assert_eq!((out[2] & TC, u16::from_be_bytes([out[6], out[7]])), (0, 31));
        let out = answer(&query(Some(512)), &answers(31));
        assert_eq!((out[2] & TC, u16::from_be_bytes([out[6], out[7]]), out.len()), (TC, 0, 12 + 15 + 11));
        let out = answer(&query(Some(1232)), &answers(255));
        assert!(out.len() <= 1232 && out[2] & TC != 0);
    }

    #[test]
    fn addresses_are_shuffled_and_none_is_lost() {
        let bytes = query(None);
        let all: BTreeSet<u8> = (0..8).collect();
        let mut firsts = BTreeSet::new();
        for _ in 0..200 {
            let out = answer(&bytes, &answers(8));
            let got: Vec<u8> = (0..8).map(|i| out[27 + i * 16 + 15]).collect();
            assert_eq!(got.iter().copied().collect::<BTreeSet<_>>(), all);
            firsts.insert(got[0]);
        }
        assert_eq!(firsts, all, "every address comes first sometimes");
    }
}
