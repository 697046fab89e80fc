//! The Maglev tables in `md_maglev_v2`, a hash of maps: one array per service, each carrying
//! its own size and a fingerprint (see `include/abi/lb.h`).

use std::collections::BTreeMap;
use std::path::Path;

use aya::maps::{Array, HashOfMaps, MapData};
use meshd_ebpf::{lb, VETH};

use super::{BpfError, Datapath};

impl Datapath {
    /// Brings md_maglev_v2 to `desired` (service id -> table). A changed table is written into a
    /// fresh array and swapped in with one update of the outer map: a packet sees the old table
    /// or the new one, never a mix, and the table carries its own size. A table installed by an
    /// earlier run of the agent is kept when its size and fingerprint match. Returns (tables
    /// written, tables removed).
    pub(super) fn sync_maglev(
        &mut self,
        desired: &BTreeMap<u32, Vec<u32>>,
    ) -> Result<(usize, usize), BpfError> {
        let map_err = |source| BpfError::Map { map: lb::MAGLEV_MAP, source: Box::new(source) };
        let map = self
            .veth
            .map_mut(lb::MAGLEV_MAP)
            .ok_or(BpfError::MissingMap { object: VETH.name, map: lb::MAGLEV_MAP })?;
        let mut outer: HashOfMaps<&mut MapData, u32, Array<MapData, u32>> =
            HashOfMaps::try_from(map).map_err(map_err)?;
        let present: std::collections::HashSet<u32> = outer.keys().filter_map(Result::ok).collect();
        let mut todo: Vec<(u32, &Vec<u32>)> = Vec::new();
        for (id, table) in desired {
            if present.contains(id) {
                if self.tables.get(id) == Some(table) {
                    continue;
                }
                if !self.tables.contains_key(id) && same_table(&outer, *id, table) {
                    self.tables.insert(*id, table.clone());
                    continue;
                }
            }
            todo.push((*id, table));
        }
        let mut removed = 0;
        for id in present.iter().filter(|id| !desired.contains_key(id)) {
            // Already gone is what we wanted.
            let _ = outer.remove(id);
            self.tables.remove(id);
            removed += 1;
        }

        // Every update of a map of maps from user space waits for an RCU grace period (a few ms:
        // the kernel makes sure no program still runs with the old table). Waits in parallel
        // share grace periods, so thousands of tables are written by a pool of threads, each
        // with its own handle on the pinned outer map.
        let pin = self.pin_dir.join(lb::MAGLEV_MAP);
        let workers = todo.len().clamp(1, 64);
        let per_worker = todo.len().div_ceil(workers).max(1);
        let results: Vec<Result<Vec<u32>, BpfError>> = std::thread::scope(|scope| {
            let handles: Vec<_> =
                todo.chunks(per_worker).map(|chunk| scope.spawn(|| write_tables(&pin, chunk))).collect();
            handles.into_iter().map(|h| h.join().expect("table writer panicked")).collect()
        });
        let mut written = 0;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(ids) => {
                    for id in ids {
                        self.tables.insert(id, desired[&id].clone());
                        written += 1;
                    }
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok((written, removed)),
        }
    }
}

/// Whether the table of service `id` in the kernel has the size and fingerprint of `table`.
fn same_table(outer: &HashOfMaps<&mut MapData, u32, Array<MapData, u32>>, id: u32, table: &[u32]) -> bool {
    let Ok(existing) = outer.get(&id, 0) else { return false };
    let at = |index: u32| existing.get(&index, 0).ok();
    at(lb::MAGLEV_SIZE) == table.first().copied() && at(lb::MAGLEV_FINGERPRINT) == table.get(1).copied()
}

/// Writes each table into a fresh array and swaps it into the pinned outer map at `pin`; returns
/// the ids written.
fn write_tables(pin: &Path, tables: &[(u32, &Vec<u32>)]) -> Result<Vec<u32>, BpfError> {
    let map_err = |source| BpfError::Map { map: lb::MAGLEV_MAP, source: Box::new(source) };
    let data = MapData::from_pin(pin).map_err(map_err)?;
    let mut outer: HashOfMaps<MapData, u32, Array<MapData, u32>> =
        HashOfMaps::try_from(aya::maps::Map::HashOfMaps(data)).map_err(map_err)?;
    let mut written = Vec::with_capacity(tables.len());
    for (id, table) in tables {
        let mut array =
            Array::<MapData, u32>::create(table.len() as u32, lb::MAGLEV_TABLE_FLAGS).map_err(map_err)?;
        for (index, value) in table.iter().enumerate() {
            array.set(index as u32, value, 0).map_err(map_err)?;
        }
        outer.insert(id, &array, 0).map_err(map_err)?;
        written.push(*id);
    }
    Ok(written)
}
