//! Maglev tables remembered across reconcile rounds. Building is a pure function of (M,
//! backends), and with thousands of services a change touches one or two of them: recomputing
//! every table on every snapshot cost about 35 µs per service (0.35 s at 10,000 services).
//!
//! The cache is a value its owner (the agent's reconcile state) passes to the reconciler, so the
//! reconciler stays a function of its inputs and two reconcilers never share a table by accident.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use super::maglev;

/// (M, backends): what a table is a function of.
type TableKey = (u32, Vec<Ipv4Addr>);

/// Tables used in the current round or the one before, by (M, backends).
#[derive(Debug, Default)]
pub struct MaglevCache {
    round: u64,
    /// (M, backends) -> (the round it was last used in, its table).
    tables: HashMap<TableKey, (u64, Arc<Vec<u32>>)>,
}

impl MaglevCache {
    /// Starts a reconcile round: forgets tables not used in the previous one.
    pub fn new_round(&mut self) {
        let keep_from = self.round;
        self.tables.retain(|_, (used, _)| *used >= keep_from);
        self.round += 1;
    }

    /// [`maglev::build`], remembered for the next rounds.
    pub fn table(&mut self, backends: &[Ipv4Addr], m: u32) -> Arc<Vec<u32>> {
        let round = self.round;
        if let Some((used, table)) = self.tables.get_mut(&(m, backends.to_vec())) {
            *used = round;
            return table.clone();
        }
        let table = Arc::new(maglev::build(backends, m));
        self.tables.insert((m, backends.to_vec()), (round, table.clone()));
        table
    }

    /// Builds, on every core, the tables of `wanted` (backends, M) the cache does not hold, so
    /// that the [`table`](Self::table) calls that follow find them. With 10,000 new services
    /// the builds are most of the reconciler's time, and each is independent of the others.
    pub fn prebuild(&mut self, wanted: &[(&[Ipv4Addr], u32)]) {
        let missing: Vec<(&[Ipv4Addr], u32)> = wanted
            .iter()
            .filter(|(backends, m)| !self.tables.contains_key(&(*m, backends.to_vec())))
            .copied()
            .collect();
        // Below this, a thread costs more than it saves.
        const PARALLEL_FROM: usize = 64;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if missing.len() < PARALLEL_FROM || threads < 2 {
            return;
        }
        let per_thread = missing.len().div_ceil(threads);
        let built: Vec<Vec<Vec<u32>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = missing
                .chunks(per_thread)
                .map(|chunk| scope.spawn(move || chunk.iter().map(|(b, m)| maglev::build(b, *m)).collect()))
                .collect();
            handles.into_iter().map(|h| h.join().expect("a Maglev build panicked")).collect()
        });
        let round = self.round;
        for ((backends, m), table) in missing.into_iter().zip(built.into_iter().flatten()) {
            self.tables.insert((m, backends.to_vec()), (round, Arc::new(table)));
        }
    }

    /// How many tables are remembered.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: u8) -> Vec<Ipv4Addr> {
        (1..=n).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect()
    }

    #[test]
    fn a_table_is_built_once_and_forgotten_after_a_round_unused() {
        let mut cache = MaglevCache::default();
        cache.new_round();
        let first = cache.table(&backends(3), 127);
        assert!(Arc::ptr_eq(&first, &cache.table(&backends(3), 127)), "same inputs, same table");
        assert_eq!(*first, maglev::build(&backends(3), 127));
        cache.table(&backends(4), 127);
        assert_eq!(cache.len(), 2);
        cache.new_round();
        cache.table(&backends(3), 127);
        assert_eq!(cache.len(), 2, "kept for one round unused");
        cache.new_round();
        assert_eq!(cache.len(), 1, "the table of 4 backends was not used last round");
    }

    #[test]
    fn prebuilt_tables_are_the_ones_built_one_by_one() {
        let sets: Vec<Vec<Ipv4Addr>> = (1..=100u8).map(|n| backends(n % 12 + 1)).collect();
        let wanted: Vec<(&[Ipv4Addr], u32)> =
            sets.iter().map(|b| (b.as_slice(), maglev::table_size(b.len()))).collect();
        let mut cache = MaglevCache::default();
        cache.new_round();
        cache.prebuild(&wanted);
        for (b, m) in &wanted {
            assert_eq!(*cache.table(b, *m), maglev::build(b, *m));
        }
    }
}
