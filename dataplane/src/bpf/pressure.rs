//! How full each map is (`meshd_bpf_map_pressure`): entries / max_entries, the max being the
//! named size mirrored from `include/abi/*.h`.
//!
//! The kernel keeps no entry count for hash maps, so counting walks the keys (one
//! `BPF_MAP_GET_NEXT_KEY` syscall each): cheap for the maps the agent writes (thousands at most),
//! but the LRU maps of flows hold up to 262,144. Callers cache the result (the metrics layer
//! walks at most every [`crate::bpf::pressure::MIN_INTERVAL`]) and every walk stops at the map's
//! size. The walk opens the pinned maps by path, so it runs without the agent's lock (and off the
//! async workers). The same walk of conntrack gives the flows per VIP and published port.
//! Measured (`cargo xtask bench map-walk`, before the flow tables were split per endpoint): 3 ms
//! with empty maps, about 0.6 s with the shared conntrack and reverse-translation maps full
//! (262,144 entries each). The containers' flows now sit in one table per local endpoint
//! (`md_flows_v1`, at most 8,192 each), walked the same way.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aya::maps::{HashMap as AyaHashMap, HashOfMaps, Map, MapData, PerCpuHashMap};
use aya::Pod;
use meshd_ebpf::{endpoint, lb, mesh, node, verdict};

use super::{BpfError, Datapath};

/// Walks happen at most this often; scrapes in between get the last result. With full flow maps
/// a walk costs about 0.6 s of one core: 2 % of it at this interval.
pub const MIN_INTERVAL: Duration = Duration::from_secs(30);

/// One map's fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapUsage {
    pub name: &'static str,
    pub entries: u64,
    pub max_entries: u32,
}

/// The maps' fill, the tracked flows by (address, port, protocol) they were balanced at (a VIP,
/// or a node address of a published port), and how long the walk took.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub maps: Vec<MapUsage>,
    pub flows: BTreeMap<(u32, u16, u8), u64>,
    pub took: Duration,
}

fn keys<K: Pod, V: Pod>(map: &Map, name: &'static str, max: u32) -> Result<u64, BpfError> {
    let hash: AyaHashMap<&MapData, K, V> =
        AyaHashMap::try_from(map).map_err(|source| BpfError::Map { map: name, source: Box::new(source) })?;
    Ok(hash.keys().take(max as usize).filter(Result::is_ok).count() as u64)
}

/// A pinned map of the node, opened by path.
fn pinned(pin_dir: &Path, name: &'static str) -> Result<Map, BpfError> {
    let err = |source| BpfError::Map { map: name, source: Box::new(source) };
    Map::from_map_data(MapData::from_pin(pin_dir.join(name)).map_err(err)?).map_err(err)
}

impl Datapath {
    /// [`usage`] of this datapath's maps.
    pub fn usage(&self) -> Result<Usage, BpfError> {
        usage(&self.pin_dir)
    }

    /// The node's pin directory (every map is pinned there by name).
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }
}

/// Walks the keys of every map pinned under `pin_dir` (see the module's note on cost). Blocks:
/// call it off the async workers.
pub fn usage(pin_dir: &Path) -> Result<Usage, BpfError> {
    {
        let start = Instant::now();
        let opened: Vec<(&'static str, Map)> = [
            endpoint::ENDPOINTS_MAP,
            endpoint::IFACES_MAP,
            lb::SERVICES_MAP,
            lb::MAGLEV_MAP,
            mesh::FRONTENDS_MAP,
            lb::FLOWS_MAP,
            mesh::MESH_RNAT_MAP,
            mesh::MESH_RETURN_MAP,
            mesh::SOCK_RNAT_MAP,
            verdict::MAP_NAME,
            lb::CT_MAP,
        ]
        .into_iter()
        .map(|name| pinned(pin_dir, name).map(|map| (name, map)))
        .collect::<Result<_, _>>()?;
        let veth = |name: &'static str| {
            opened
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, map)| map)
                .ok_or(BpfError::MissingMap { object: "pins", map: name })
        };
        let mut maps = Vec::new();
        let mut add = |name: &'static str, entries: u64, max_entries: u32| {
            maps.push(MapUsage { name, entries, max_entries })
        };
        add(
            endpoint::ENDPOINTS_MAP,
            keys::<u32, endpoint::Endpoint>(
                veth(endpoint::ENDPOINTS_MAP)?,
                endpoint::ENDPOINTS_MAP,
                endpoint::ENDPOINTS_MAX,
            )?,
            endpoint::ENDPOINTS_MAX,
        );
        add(
            endpoint::IFACES_MAP,
            keys::<u32, endpoint::Iface>(
                veth(endpoint::IFACES_MAP)?,
                endpoint::IFACES_MAP,
                endpoint::IFACES_MAX,
            )?,
            endpoint::IFACES_MAX,
        );
        add(
            lb::SERVICES_MAP,
            keys::<u32, lb::Service>(veth(lb::SERVICES_MAP)?, lb::SERVICES_MAP, lb::SERVICES_MAX)?,
            lb::SERVICES_MAX,
        );
        let maglev: HashOfMaps<&MapData, u32, aya::maps::Array<MapData, u32>> =
            HashOfMaps::try_from(veth(lb::MAGLEV_MAP)?)
                .map_err(|source| BpfError::Map { map: lb::MAGLEV_MAP, source: Box::new(source) })?;
        add(
            lb::MAGLEV_MAP,
            maglev.keys().take(lb::MAGLEV_MAX as usize).filter(Result::is_ok).count() as u64,
            lb::MAGLEV_MAX,
        );
        add(
            mesh::FRONTENDS_MAP,
            keys::<mesh::FrontendKey, mesh::Frontend>(
                veth(mesh::FRONTENDS_MAP)?,
                mesh::FRONTENDS_MAP,
                mesh::FRONTENDS_MAX,
            )?,
            mesh::FRONTENDS_MAX,
        );
        // The containers' flow tables: how many exist, and the balanced flows in them by the
        // (VIP, port, protocol) they were balanced at.
        let mut flows = BTreeMap::new();
        let tables: HashOfMaps<&MapData, u32, AyaHashMap<MapData, lb::FlowKey, lb::Flow>> =
            HashOfMaps::try_from(veth(lb::FLOWS_MAP)?)
                .map_err(|source| BpfError::Map { map: lb::FLOWS_MAP, source: Box::new(source) })?;
        let mut table_count = 0u64;
        for endpoint in tables.keys().take(lb::FLOW_TABLES_MAX as usize).filter_map(Result::ok) {
            table_count += 1;
            let Ok(table) = tables.get(&endpoint, 0) else { continue };
            for key in table.keys().take(lb::FLOWS_PER_ENDPOINT as usize).filter_map(Result::ok) {
                if key.dir == lb::FLOW_TO_SERVICE {
                    *flows.entry((key.addr, key.port, key.proto)).or_insert(0) += 1;
                }
            }
        }
        add(lb::FLOWS_MAP, table_count, lb::FLOW_TABLES_MAX);
        add(
            mesh::MESH_RNAT_MAP,
            keys::<lb::RnatKey, mesh::MeshNat>(
                veth(mesh::MESH_RNAT_MAP)?,
                mesh::MESH_RNAT_MAP,
                mesh::MESH_RNAT_MAX,
            )?,
            mesh::MESH_RNAT_MAX,
        );
        add(
            mesh::MESH_RETURN_MAP,
            keys::<lb::RnatKey, mesh::MeshReturn>(
                veth(mesh::MESH_RETURN_MAP)?,
                mesh::MESH_RETURN_MAP,
                mesh::MESH_RETURN_MAX,
            )?,
            mesh::MESH_RETURN_MAX,
        );
        // The socket tables: how many namespaces have one, and the fullest one's entries (a
        // namespace at its share evicts its own oldest sockets).
        let socks: HashOfMaps<&MapData, u64, AyaHashMap<MapData, mesh::SockKey, mesh::SockNat>> =
            HashOfMaps::try_from(veth(mesh::SOCK_RNAT_MAP)?)
                .map_err(|source| BpfError::Map { map: mesh::SOCK_RNAT_MAP, source: Box::new(source) })?;
        let (mut sock_tables, mut fullest) = (0u64, 0u64);
        for netns in socks.keys().take(mesh::SOCK_TABLES_MAX as usize).filter_map(Result::ok) {
            sock_tables += 1;
            let Ok(table) = socks.get(&netns, 0) else { continue };
            let entries = table.keys().take(mesh::SOCK_RNAT_PER_NETNS as usize).filter(Result::is_ok).count();
            fullest = fullest.max(entries as u64);
        }
        add(mesh::SOCK_RNAT_MAP, sock_tables, mesh::SOCK_TABLES_MAX);
        add(mesh::SOCK_TABLE_FULLEST, fullest, mesh::SOCK_RNAT_PER_NETNS);
        let verdicts: PerCpuHashMap<&MapData, verdict::VerdictKey, verdict::VerdictCounter> =
            PerCpuHashMap::try_from(veth(verdict::MAP_NAME)?)
                .map_err(|source| BpfError::Map { map: verdict::MAP_NAME, source: Box::new(source) })?;
        add(
            verdict::MAP_NAME,
            verdicts.keys().take(verdict::VERDICT_MAX as usize).filter(Result::is_ok).count() as u64,
            verdict::VERDICT_MAX,
        );
        // Arrays are always full; listed so every map has a line.
        add(node::CONFIG_MAP, u64::from(node::CONFIG_MAX), node::CONFIG_MAX);

        // Conntrack of published ports (flows from outside): counted and grouped in one walk.
        let ct: AyaHashMap<&MapData, lb::CtKey, lb::CtVal> = AyaHashMap::try_from(veth(lb::CT_MAP)?)
            .map_err(|source| BpfError::Map { map: lb::CT_MAP, source: Box::new(source) })?;
        let mut entries = 0u64;
        for key in ct.keys().take(lb::CT_MAX as usize).filter_map(Result::ok) {
            entries += 1;
            *flows.entry((key.vip, key.port, key.proto)).or_insert(0) += 1;
        }
        add(lb::CT_MAP, entries, lb::CT_MAX);
        Ok(Usage { maps, flows, took: start.elapsed() })
    }
}
