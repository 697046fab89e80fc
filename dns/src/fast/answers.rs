//! Answers prepared when the registry changes: for every network, every name in wire form (lower
//! case) with its A records already encoded (the name a pointer to the question, the TTL and the
//! address in place). Per query only the header is written, the question copied and, for
//! several addresses, their order shuffled ([`super::answer`]).
//!
//! Built once per registry (one per node, shared by every namespace), in the same pass that swaps
//! the registry in; a namespace picks the tables of its networks once per batch of queries.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::registry::Registry;
use crate::udp_size::A_RECORD_LEN;

use super::query::MAX_NAME_LEN;

/// The prepared answers of every network.
#[derive(Debug, Default)]
pub struct Answers {
    /// Lower-case network name -> its names.
    networks: HashMap<String, Table>,
}

/// One network's names: lower-case wire-form name -> its records.
pub type Table = HashMap<Box<[u8]>, Prepared>;

/// The A records of one name on one network, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// `count` records of [`A_RECORD_LEN`] bytes.
    records: Box<[u8]>,
}

/// What a namespace's tables say about a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found<'a> {
    /// On exactly one of its networks.
    One(&'a Prepared),
    /// On none: the slow path decides (NXDOMAIN, forward, PTR, ...).
    Nowhere,
    /// On several of its networks: the slow path merges their addresses.
    Several,
}

impl Answers {
    /// Prepares every name of `registry`, with `ttl` in its records. A name that cannot be
    /// written in wire form is left out (the slow path still answers it from the registry).
    pub fn build(registry: &Registry, ttl: u32) -> Answers {
        let mut networks: HashMap<String, Table> = HashMap::new();
        for (network, name, addresses) in registry.entries() {
            let Some(wire) = wire_name(name) else { continue };
            let mut records = Vec::with_capacity(addresses.len() * A_RECORD_LEN);
            for address in addresses {
                records.extend_from_slice(&a_record(ttl, *address));
            }
            let prepared = Prepared { records: records.into_boxed_slice() };
            networks.entry(network.to_string()).or_default().insert(wire, prepared);
        }
        Answers { networks }
    }

    /// The tables of the networks in `scope` (networks without names have none).
    pub fn tables<'a>(&'a self, scope: &[String]) -> Vec<&'a Table> {
        scope
            .iter()
            .filter_map(|network| match self.networks.get(network) {
                Some(table) => Some(table),
                None => self.networks.get(&network.to_ascii_lowercase()),
            })
            .collect()
    }
}

/// Looks a lower-case wire-form name up in a namespace's tables.
pub fn find<'a>(tables: &[&'a Table], name: &[u8]) -> Found<'a> {
    let mut found = Found::Nowhere;
    for table in tables {
        if let Some(prepared) = table.get(name) {
            if found != Found::Nowhere {
                return Found::Several;
            }
            found = Found::One(prepared);
        }
    }
    found
}

impl Prepared {
    /// The encoded records.
    pub fn records(&self) -> &[u8] {
        &self.records
    }

    /// How many records.
    pub fn count(&self) -> usize {
        self.records.len() / A_RECORD_LEN
    }
}

/// An A record whose name is a pointer to the question (offset 12).
fn a_record(ttl: u32, address: Ipv4Addr) -> [u8; A_RECORD_LEN] {
    let mut record = [0u8; A_RECORD_LEN];
    record[0..2].copy_from_slice(&[0xc0, 0x0c]);
    record[2..4].copy_from_slice(&1u16.to_be_bytes());
    record[4..6].copy_from_slice(&1u16.to_be_bytes());
    record[6..10].copy_from_slice(&ttl.to_be_bytes());
    record[10..12].copy_from_slice(&4u16.to_be_bytes());
    record[12..16].copy_from_slice(&address.octets());
    record
}

/// `tasks.web` -> `\x05tasks\x03web\x00`, or None if a label is empty or too long, or the name is.
pub fn wire_name(name: &str) -> Option<Box<[u8]>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut wire = Vec::with_capacity(name.len() + 2);
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return None;
            }
            wire.push(label.len() as u8);
            wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    wire.push(0);
    (wire.len() <= MAX_NAME_LEN).then(|| wire.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let mut r = Registry::default();
        r.add("front", "web", Ipv4Addr::new(10, 0, 0, 100));
        r.add("front", "tasks.web", Ipv4Addr::new(10, 0, 0, 2));
        r.add("front", "tasks.web", Ipv4Addr::new(10, 0, 0, 3));
        r.add("back", "web", Ipv4Addr::new(10, 1, 0, 100));
        r
    }

    #[test]
    fn names_become_wire_form() {
        assert_eq!(wire_name("tasks.WEB").as_deref(), Some(&b"\x05tasks\x03web\x00"[..]));
        assert_eq!(wire_name("web.").as_deref(), Some(&b"\x03web\x00"[..]));
        assert_eq!(wire_name("a..b"), None);
        assert_eq!(wire_name(&"a".repeat(64)), None);
        assert_eq!(wire_name(&["a"; 128].join(".")), None, "257 bytes");
    }

    #[test]
    fn records_are_encoded_once_and_found_per_scope() {
        let answers = Answers::build(&registry(), 5);
        let front = answers.tables(&["front".to_string()]);
        let Found::One(tasks) = find(&front, b"\x05tasks\x03web\x00") else { panic!() };
        assert_eq!(tasks.count(), 2);
        assert_eq!(
            &tasks.records()[..16],
            &[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 2],
            "pointer to the question, A, IN, TTL 5, 4 bytes, the address"
        );
        let Found::One(qualified) = find(&front, b"\x03web\x05front\x00") else { panic!() };
        assert_eq!(qualified.count(), 1);
        assert_eq!(find(&front, b"\x02db\x00"), Found::Nowhere);
        assert_eq!(find(&answers.tables(&["other".to_string()]), b"\x03web\x00"), Found::Nowhere);
        let both = answers.tables(&["FRONT".to_string(), "back".to_string()]);
        assert_eq!(find(&both, b"\x03web\x00"), Found::Several, "merged by the slow path");
    }
}
