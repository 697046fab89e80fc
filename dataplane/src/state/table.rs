//! A last-writer-wins table: each key holds the value (or tombstone) of its newest version.
//!
//! Merging is idempotent, commutative and associative: applying the same set of writes in any
//! order, any number of times, gives the same table. That is what lets gossip deliver deltas out
//! of order or twice, and lets push-pull repair anything gossip missed.
//!
//! A deletion is a tombstone (a versioned `None`), not a removal, so an older write arriving later
//! cannot resurrect the entry. Tombstones are reaped after a while (see [`Table::reap`]); the
//! reaping delay must exceed the longest time a stale write can still be in flight.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::signature::Signature;
use super::version::Version;

/// One key's newest write. `value: None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<V> {
    pub version: Version,
    pub value: Option<V>,
    /// The writer's signature over this write; opaque here, checked before the merge.
    #[serde(default)]
    pub signature: Signature,
}

/// What [`Table::apply`] did with a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The write was newer and is now the entry.
    Newer,
    /// The table already had exactly this version.
    Duplicate,
    /// The table had a newer version; the write was dropped.
    Stale,
}

#[derive(Debug, Clone)]
pub struct Table<K, V> {
    entries: BTreeMap<K, Entry<V>>,
    /// When each tombstone was laid (locally), for reaping.
    tombstoned: BTreeMap<K, Instant>,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table { entries: BTreeMap::new(), tombstoned: BTreeMap::new() }
    }
}

impl<K: Ord + Clone, V: Clone> Table<K, V> {
    /// Merges one write.
    pub fn apply(&mut self, key: K, entry: Entry<V>, now: Instant) -> Applied {
        if let Some(current) = self.entries.get(&key) {
            if current.version == entry.version {
                return Applied::Duplicate;
            }
            if current.version > entry.version {
                return Applied::Stale;
            }
        }
        if entry.value.is_none() {
            self.tombstoned.insert(key.clone(), now);
        } else {
            self.tombstoned.remove(&key);
        }
        self.entries.insert(key, entry);
        Applied::Newer
    }

    /// The live value of `key` (not a tombstone).
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).and_then(|e| e.value.as_ref())
    }

    /// The entry of `key`, tombstone or not.
    pub fn entry(&self, key: &K) -> Option<&Entry<V>> {
        self.entries.get(key)
    }

    /// Live entries, by key.
    pub fn live(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().filter_map(|(k, e)| e.value.as_ref().map(|v| (k, v)))
    }

    /// Live entries from `start` on, by key (the entries of one owner, say, with a key that
    /// begins with the owner).
    pub fn live_from<'a>(&'a self, start: &K) -> impl Iterator<Item = (&'a K, &'a V)> + 'a {
        self.entries.range(start.clone()..).filter_map(|(k, e)| e.value.as_ref().map(|v| (k, v)))
    }

    /// Every entry from `start` on, tombstones included, by key.
    pub fn entries_from<'a>(&'a self, start: &K) -> impl Iterator<Item = (&'a K, &'a Entry<V>)> + 'a {
        self.entries.range(start.clone()..)
    }

    /// Every entry including tombstones (what push-pull exchanges).
    pub fn entries(&self) -> impl Iterator<Item = (&K, &Entry<V>)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes tombstones laid more than `after` ago. Returns how many went.
    pub fn reap(&mut self, now: Instant, after: Duration) -> usize {
        let expired: Vec<K> = self
            .tombstoned
            .iter()
            .filter(|(_, laid)| now.saturating_duration_since(**laid) >= after)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &expired {
            self.tombstoned.remove(key);
            self.entries.remove(key);
        }
        expired.len()
    }

    /// Keys of the entries (tombstones too) last written by `writer`.
    pub fn written_by(&self, writer: &crate::identity::NodeId) -> Vec<K> {
        self.entries.iter().filter(|(_, e)| &e.version.node == writer).map(|(k, _)| k.clone()).collect()
    }

    /// Drops an entry outright (no tombstone): only for entries whose owner is gone for good.
    pub fn forget(&mut self, key: &K) {
        self.entries.remove(key);
        self.tombstoned.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::NodeId;

    fn v(lamport: u64, node: u8) -> Version {
        Version { lamport, node: NodeId::from_bytes([node; 16]) }
    }

    fn put(value: &str, version: Version) -> Entry<String> {
        Entry { version, value: Some(value.to_string()), signature: Signature::NONE }
    }

    #[test]
    fn last_writer_wins_whatever_the_arrival_order() {
        let now = Instant::now();
        let writes = [("k", put("a", v(1, 1))), ("k", put("b", v(2, 1))), ("k", put("c", v(2, 2)))];
        // Every permutation ends with the highest version.
        let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        for order in orders {
            let mut table = Table::default();
            for i in order {
                let (k, e) = writes[i].clone();
                table.apply(k, e, now);
            }
            assert_eq!(table.get(&"k").map(String::as_str), Some("c"), "{order:?}");
        }
    }

    #[test]
    fn duplicates_and_stale_writes_change_nothing() {
        let now = Instant::now();
        let mut table = Table::default();
        assert_eq!(table.apply("k", put("new", v(5, 1)), now), Applied::Newer);
        assert_eq!(table.apply("k", put("new", v(5, 1)), now), Applied::Duplicate);
        assert_eq!(table.apply("k", put("old", v(4, 9)), now), Applied::Stale);
        assert_eq!(table.get(&"k").map(String::as_str), Some("new"));
    }

    #[test]
    fn tombstones_block_older_writes_until_reaped() {
        let start = Instant::now();
        let mut table = Table::default();
        table.apply("k", put("x", v(1, 1)), start);
        table.apply("k", Entry { version: v(2, 1), value: None, signature: Signature::NONE }, start);
        assert_eq!(table.get(&"k"), None);
        assert_eq!(table.apply("k", put("x", v(1, 1)), start), Applied::Stale, "no resurrection");
        assert_eq!(table.len(), 1, "the tombstone is kept");

        assert_eq!(table.reap(start + Duration::from_secs(5), Duration::from_secs(10)), 0);
        assert_eq!(table.reap(start + Duration::from_secs(10), Duration::from_secs(10)), 1);
        assert!(table.is_empty());
    }

    #[test]
    fn a_newer_write_revives_a_tombstoned_key_and_is_not_reaped() {
        let start = Instant::now();
        let mut table = Table::default();
        table.apply("k", Entry { version: v(2, 1), value: None, signature: Signature::NONE }, start);
        table.apply("k", put("back", v(3, 1)), start);
        assert_eq!(table.reap(start + Duration::from_secs(100), Duration::from_secs(1)), 0);
        assert_eq!(table.get(&"k").map(String::as_str), Some("back"));
    }
}
