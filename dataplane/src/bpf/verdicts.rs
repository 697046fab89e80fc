//! Reading the verdict counters (`md_verdict_v1`) that every program updates.

use std::collections::BTreeMap;

use aya::maps::{Map, MapData, PerCpuHashMap};
use meshd_ebpf::verdict::{VerdictCounter, VerdictKey, MAP_NAME};

use super::BpfError;

/// Sums every CPU's slot of every key. Keys come back sorted (by interface, reason, direction).
pub fn read(map: &Map) -> Result<BTreeMap<VerdictKey, VerdictCounter>, BpfError> {
    let map_err = |source| BpfError::Map { map: MAP_NAME, source: Box::new(source) };
    let counters: PerCpuHashMap<&MapData, VerdictKey, VerdictCounter> =
        PerCpuHashMap::try_from(map).map_err(map_err)?;
    let mut out = BTreeMap::new();
    for entry in counters.iter() {
        // An entry evicted between the key walk and the lookup is simply skipped.
        let Ok((key, per_cpu)) = entry else { continue };
        let total = out.entry(key).or_insert_with(VerdictCounter::default);
        for slot in per_cpu.iter() {
            total.add(slot);
        }
    }
    Ok(out)
}
