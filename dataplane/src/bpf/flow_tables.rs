//! The containers' flow tables in `md_flows_v1`, a hash of maps: one LRU table per local endpoint
//! (see `include/abi/lb.h`), created when the endpoint appears in the desired state and dropped
//! with it. A table of an earlier run is kept (its flows go on); a new endpoint gets an empty one.

use std::collections::{BTreeSet, HashSet};

use aya::maps::{HashMap as AyaHashMap, HashOfMaps, MapData};
use meshd_ebpf::lb::{self, Flow, FlowKey};
use meshd_ebpf::VETH;

use super::{BpfError, Datapath};

impl Datapath {
    /// Brings md_flows_v1 to one table for each address of `desired` (the node's local
    /// endpoints). Returns (tables created, tables dropped).
    pub(super) fn sync_flow_tables(&mut self, desired: &BTreeSet<u32>) -> Result<(usize, usize), BpfError> {
        let map_err = |source| BpfError::Map { map: lb::FLOWS_MAP, source: Box::new(source) };
        let map = self
            .veth
            .map_mut(lb::FLOWS_MAP)
            .ok_or(BpfError::MissingMap { object: VETH.name, map: lb::FLOWS_MAP })?;
        let mut outer: HashOfMaps<&mut MapData, u32, MapData> = HashOfMaps::try_from(map).map_err(map_err)?;
        let present: HashSet<u32> = outer.keys().filter_map(Result::ok).collect();
        let mut created = 0;
        for addr in desired.iter().filter(|a| !present.contains(a)) {
            let table = new_flow_table().map_err(map_err)?;
            outer.insert(addr, &table, 0).map_err(map_err)?;
            created += 1;
        }
        let mut dropped = 0;
        for addr in present.iter().filter(|a| !desired.contains(a)) {
            // Already gone is what we wanted.
            let _ = outer.remove(addr);
            dropped += 1;
        }
        Ok((created, dropped))
    }

    /// Every flow the containers of this node have to services, as (endpoint, key, value).
    pub fn container_flows(&self) -> Result<Vec<(u32, FlowKey, Flow)>, BpfError> {
        let map_err = |source| BpfError::Map { map: lb::FLOWS_MAP, source: Box::new(source) };
        let map = self
            .veth
            .map(lb::FLOWS_MAP)
            .ok_or(BpfError::MissingMap { object: VETH.name, map: lb::FLOWS_MAP })?;
        let outer: HashOfMaps<&MapData, u32, AyaHashMap<MapData, FlowKey, Flow>> =
            HashOfMaps::try_from(map).map_err(map_err)?;
        let mut flows = Vec::new();
        for addr in outer.keys().filter_map(Result::ok) {
            let Ok(table) = outer.get(&addr, 0) else { continue };
            flows.extend(table.iter().filter_map(Result::ok).map(|(k, v)| (addr, k, v)));
        }
        Ok(flows)
    }
}

/// A fresh flow table: an LRU hash with exactly the parameters of the C template (type, key and
/// value sizes, capacity, no flags), which is what lets it into md_flows_v1.
fn new_flow_table() -> Result<MapData, aya::maps::MapError> {
    let obj = aya_obj::Map::new_from_params(
        lb::FLOW_TABLE_TYPE,
        size_of::<FlowKey>() as u32,
        size_of::<Flow>() as u32,
        lb::FLOWS_PER_ENDPOINT,
        lb::FLOW_TABLE_FLAGS,
    );
    MapData::create(obj, "md_flow_table", None)
}
