//! The Maglev tables in `md_maglev_v3`, a hash of maps: one array per service, each carrying
//! its own size and a fingerprint (see `include/abi/lb.h`).
//!
//! How a table reaches the kernel, cheapest first:
//! - unchanged: nothing (the agent remembers what it installed);
//! - same size M (a backend came or went within its size class, the common change): only the
//!   slots that changed are written into the existing array, through a mapping of its memory
//!   (`BPF_F_MMAPABLE`, [`MappedArray`]), the fingerprint last.
//!   No map-of-maps update, so no RCU grace-period wait. While the batch runs a packet may find
//!   some slots old and some new; every slot then names a backend of the table before or of the
//!   table after, and open connections keep theirs anyway (the flow tables pin them);
//! - new, or another size: a fresh array, filled through a mapping, then put into the outer map. The
//!   outer map's updates are batched too, so the kernel waits for one grace period per batch of
//!   [`OUTER_BATCH`] tables instead of one per table; a packet sees the old table or the new one.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use aya::maps::{Array, HashOfMaps, MapData, MapError};
use meshd_ebpf::{lb, VETH};

use super::mapped_array::MappedArray;
use super::{batch, BpfError, Datapath};

/// Tables put into the outer map per batch: bounds the file descriptors held open at once.
const OUTER_BATCH: usize = 1024;

type Outer<'a> = HashOfMaps<&'a mut MapData, u32, MapData>;

impl Datapath {
    /// Brings md_maglev_v3 to `desired` (service id -> table); with `touched`, only those ids can
    /// differ from the previous sync. A table installed by an earlier run of the agent is kept
    /// when its size and fingerprint match. Returns (tables written, tables removed).
    pub(super) fn sync_maglev(
        &mut self,
        desired: &BTreeMap<u32, Arc<Vec<u32>>>,
        touched: Option<&BTreeSet<u32>>,
    ) -> Result<(usize, usize), BpfError> {
        let map_err = |source| BpfError::Map { map: lb::MAGLEV_MAP, source: Box::new(source) };
        let map = self
            .veth
            .map_mut(lb::MAGLEV_MAP)
            .ok_or(BpfError::MissingMap { object: VETH.name, map: lb::MAGLEV_MAP })?;
        // A descriptor of its own for the batched calls (aya's handle does not lend its fd).
        let outer_fd: OwnedFd = batch::map_data(map)
            .expect("md_maglev_v3 is a hash of maps")
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| map_err(batch::map_error("dup", e)))?;
        let outer: Outer<'_> = HashOfMaps::try_from(map).map_err(map_err)?;

        // What to look at: everything on the first sync (the kernel may hold an earlier run's
        // tables), else the ids the reconciler touched.
        let (candidates, gone): (Vec<u32>, Vec<u32>) = match (&self.tables_known, touched) {
            (true, Some(ids)) => {
                let gone = ids.iter().filter(|id| !desired.contains_key(id) && self.tables.contains_key(id));
                (ids.iter().filter(|id| desired.contains_key(id)).copied().collect(), gone.copied().collect())
            }
            (true, None) => {
                let gone = self.tables.keys().filter(|id| !desired.contains_key(id)).copied().collect();
                (desired.keys().copied().collect(), gone)
            }
            (false, _) => {
                let present: HashSet<u32> = outer.keys().filter_map(Result::ok).collect();
                self.tables.retain(|id, _| present.contains(id));
                for (id, table) in desired {
                    if present.contains(id) && !self.tables.contains_key(id) && same_table(&outer, *id, table)
                    {
                        self.tables.insert(*id, table.clone());
                    }
                }
                let gone = present.iter().filter(|id| !desired.contains_key(id)).copied().collect();
                (desired.keys().copied().collect(), gone)
            }
        };
        // Until this sync succeeds, what the kernel holds is not known for sure.
        self.tables_known = false;

        let mut in_place = Vec::new();
        let mut fresh = Vec::new();
        for id in candidates {
            let table = &desired[&id];
            match self.tables.get(&id) {
                Some(old) if old == table => {}
                Some(old) if old.len() == table.len() => in_place.push(id),
                _ => fresh.push(id),
            }
        }

        let mut written = 0;
        for id in in_place {
            let old = self.tables.remove(&id).expect("an installed table");
            let table = &desired[&id];
            match rewrite_in_place(&outer, id, &old, table) {
                Ok(()) => {}
                // The array went behind our back: install a fresh one.
                Err(MapError::KeyNotFound) => {
                    fresh.push(id);
                    continue;
                }
                Err(error) => return Err(map_err(error)),
            }
            self.tables.insert(id, table.clone());
            written += 1;
        }

        for chunk in fresh.chunks(OUTER_BATCH) {
            let mut arrays = Vec::with_capacity(chunk.len());
            for id in chunk {
                arrays.push((*id, new_array(&desired[id]).map_err(map_err)?));
            }
            insert_tables(outer_fd.as_fd(), &self.pin_dir, &arrays).map_err(map_err)?;
            for (id, _) in &arrays {
                self.tables.insert(*id, desired[id].clone());
            }
            written += arrays.len();
        }

        let removed = gone.len();
        if !gone.is_empty() {
            match batch::delete(outer_fd.as_fd(), &gone) {
                Ok(_) => {}
                Err(error) if batch::unsupported(&error) => {
                    let mut outer: Outer<'_> =
                        HashOfMaps::try_from(outer_map(&mut self.veth)?).map_err(map_err)?;
                    for id in &gone {
                        // Already gone is what we wanted.
                        let _ = outer.remove(id);
                    }
                }
                Err(error) => return Err(map_err(batch::map_error("bpf_map_delete_batch", error))),
            }
            for id in &gone {
                self.tables.remove(id);
            }
        }
        self.tables_known = true;
        Ok((written, removed))
    }
}

fn outer_map(ebpf: &mut aya::Ebpf) -> Result<&mut aya::maps::Map, BpfError> {
    ebpf.map_mut(lb::MAGLEV_MAP).ok_or(BpfError::MissingMap { object: VETH.name, map: lb::MAGLEV_MAP })
}

/// Whether the table of service `id` in the kernel has the size and fingerprint of `table`.
fn same_table(outer: &Outer<'_>, id: u32, table: &[u32]) -> bool {
    let Ok(existing) = outer.get(&id, 0) else { return false };
    let Ok(existing) = Array::<MapData, u32>::try_from(aya::maps::Map::Array(existing)) else { return false };
    let at = |index: u32| existing.get(&index, 0).ok();
    at(lb::MAGLEV_SIZE) == table.first().copied() && at(lb::MAGLEV_FINGERPRINT) == table.get(1).copied()
}

/// The elements of `new` that differ from `old` (same length), as (index, value): the slots
/// first, the fingerprint last, so that a table whose fingerprint matches is complete.
pub fn changed_elements(old: &[u32], new: &[u32]) -> Vec<(u32, u32)> {
    let slots = lb::MAGLEV_SLOTS as usize;
    let changes: Vec<(u32, u32)> = (slots..new.len())
        .chain(0..slots.min(new.len()))
        .filter(|&i| old.get(i) != Some(&new[i]))
        .map(|i| (i as u32, new[i]))
        .collect();
    changes
}

/// Writes the slots of `table` that differ from `old` into the array installed for `id`,
/// through a mapping of its memory (see [`MappedArray`]), the fingerprint last.
fn rewrite_in_place(outer: &Outer<'_>, id: u32, old: &[u32], table: &[u32]) -> Result<(), MapError> {
    let array = outer.get(&id, 0)?;
    let mapped = MappedArray::map(array.fd().as_fd(), table.len())
        .map_err(|e| batch::map_error("mmap of a Maglev table", e))?;
    write_elements(&mapped, &changed_elements(old, table));
    Ok(())
}

/// A fresh array holding `table`, of its own size (`BPF_F_INNER_MAP | BPF_F_MMAPABLE`, as the
/// C template), written through a mapping of its memory.
fn new_array(table: &[u32]) -> Result<MapData, MapError> {
    let obj = aya_obj::Map::new_from_params(
        BPF_MAP_TYPE_ARRAY,
        size_of::<u32>() as u32,
        size_of::<u32>() as u32,
        table.len() as u32,
        lb::MAGLEV_TABLE_FLAGS,
    );
    let array = MapData::create(obj, "md_maglev_table", None)?;
    let mapped = MappedArray::map(array.fd().as_fd(), table.len())
        .map_err(|e| batch::map_error("mmap of a Maglev table", e))?;
    // The slots, then the size; the fingerprint last (as changed_elements orders them). The
    // array is not in the outer map yet, so no program sees it half written anyway.
    let slots = lb::MAGLEV_SLOTS as usize;
    for (index, value) in table.iter().enumerate().skip(slots) {
        mapped.set(index, *value);
    }
    mapped.set(lb::MAGLEV_SIZE as usize, table[lb::MAGLEV_SIZE as usize]);
    mapped.publish(lb::MAGLEV_FINGERPRINT as usize, table[lb::MAGLEV_FINGERPRINT as usize]);
    Ok(array)
}

/// Stores `elements` (index, value) in order; the last one (the fingerprint, when it changed)
/// with release ordering, so a table whose fingerprint matches is complete.
fn write_elements(mapped: &MappedArray, elements: &[(u32, u32)]) {
    let Some(((last_index, last_value), rest)) = elements.split_last() else { return };
    for (index, value) in rest {
        mapped.set(*index as usize, *value);
    }
    mapped.publish(*last_index as usize, *last_value);
}

/// `BPF_MAP_TYPE_ARRAY`: the type of a Maglev table (as the C template declares).
const BPF_MAP_TYPE_ARRAY: u32 = 2;

/// Puts `arrays` into the outer map: one batch (one grace period); where the kernel has no
/// batch update for a hash of maps, one update each from a pool of threads, whose waits for
/// grace periods overlap.
fn insert_tables(outer: BorrowedFd<'_>, pin_dir: &Path, arrays: &[(u32, MapData)]) -> Result<(), MapError> {
    let entries: Vec<(u32, u32)> =
        arrays.iter().map(|(id, a)| (*id, a.fd().as_fd().as_raw_fd() as u32)).collect();
    match batch::update(outer, &entries) {
        Ok(()) => return Ok(()),
        Err(error) if batch::unsupported(&error) => {}
        Err(error) => return Err(batch::map_error("bpf_map_update_batch", error)),
    }
    let pin = pin_dir.join(lb::MAGLEV_MAP);
    let workers = arrays.len().clamp(1, 64);
    let per_worker = arrays.len().div_ceil(workers).max(1);
    let results: Vec<Result<(), MapError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = arrays
            .chunks(per_worker)
            .map(|chunk| {
                let pin = &pin;
                scope.spawn(move || {
                    let data = MapData::from_pin(pin)?;
                    let mut outer: HashOfMaps<MapData, u32, MapData> =
                        HashOfMaps::try_from(aya::maps::Map::HashOfMaps(data))?;
                    for (id, array) in chunk {
                        outer.insert(id, array, 0)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("table writer panicked")).collect()
    });
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_elements_are_written_and_the_header_last() {
        let old = [5, 111, 1, 2, 3, 4, 5];
        let new = [5, 222, 1, 9, 3, 9, 5];
        assert_eq!(changed_elements(&old, &new), [(3, 9), (5, 9), (1, 222)]);
        assert!(changed_elements(&new, &new).is_empty());
    }
}
