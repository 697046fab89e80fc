//! The socket programs' tables in `md_sock_rnat_v3`, a hash of maps: one LRU table per network
//! namespace whose sockets are balanced at connect() (see `include/abi/mesh.h`), created with the
//! namespace's `md_sock_clients_v1` entry and dropped after it; the node's own namespace (its
//! sockets to published ports) has one as long as the agent runs. A table of an earlier run is
//! kept (its sockets keep showing the address they asked for); a new namespace gets an empty one.
//!
//! One table per namespace, as the flow tables are one per endpoint: a namespace that translates
//! more sockets than its table holds (or one socket connect()ed to every port of a VIP) pushes
//! only its own entries out, and the kernel's LRU does the bounding.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use aya::maps::{HashOfMaps, MapData};
use meshd_ebpf::mesh::{self, SockKey, SockNat};
use meshd_ebpf::sock_lb::SockClient;
use meshd_ebpf::SOCK;

use super::{BpfError, Datapath};

/// The namespaces that get a socket table: every client namespace and the node's own
/// (`own` 0: not known yet).
pub fn sock_namespaces(clients: &BTreeMap<u64, SockClient>, own: u64) -> BTreeSet<u64> {
    clients.keys().copied().chain(Some(own)).filter(|cookie| *cookie != 0).collect()
}

/// Which phase of a sync: tables are added before the clients that use them are written, and
/// dropped after those clients are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Add,
    Drop,
}

impl Datapath {
    /// Adds (or drops) the tables of md_sock_rnat_v3 so that it has one for each of `wanted`
    /// (namespace cookies). Returns the number of tables added or dropped.
    pub(super) fn sync_sock_tables(
        &mut self,
        wanted: &BTreeSet<u64>,
        phase: Phase,
    ) -> Result<usize, BpfError> {
        let map_err = |source| BpfError::Map { map: mesh::SOCK_RNAT_MAP, source: Box::new(source) };
        let map = self
            .sock
            .map_mut(mesh::SOCK_RNAT_MAP)
            .ok_or(BpfError::MissingMap { object: SOCK.name, map: mesh::SOCK_RNAT_MAP })?;
        let mut outer: HashOfMaps<&mut MapData, u64, MapData> = HashOfMaps::try_from(map).map_err(map_err)?;
        let present: HashSet<u64> = outer.keys().filter_map(Result::ok).collect();
        let mut changed = 0;
        match phase {
            Phase::Add => {
                for netns in wanted.iter().filter(|n| !present.contains(n)) {
                    let table = new_sock_table().map_err(map_err)?;
                    outer.insert(netns, &table, 0).map_err(map_err)?;
                    changed += 1;
                }
            }
            Phase::Drop => {
                for netns in present.iter().filter(|n| !wanted.contains(n)) {
                    // Already gone is what we wanted.
                    let _ = outer.remove(netns);
                    changed += 1;
                }
            }
        }
        Ok(changed)
    }
}

/// A fresh socket table: an LRU hash with exactly the parameters of the C template (type, key
/// and value sizes, capacity, flags), which is what lets it into md_sock_rnat_v3.
fn new_sock_table() -> Result<MapData, aya::maps::MapError> {
    let obj = aya_obj::Map::new_from_params(
        mesh::SOCK_TABLE_TYPE,
        size_of::<SockKey>() as u32,
        size_of::<SockNat>() as u32,
        mesh::SOCK_RNAT_PER_NETNS,
        mesh::SOCK_TABLE_FLAGS,
    );
    MapData::create(obj, "md_sock_table", None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_namespace_and_the_nodes_own_get_a_table() {
        let clients = BTreeMap::from([(7, SockClient::default()), (9, SockClient::default())]);
        assert_eq!(sock_namespaces(&clients, 3), BTreeSet::from([3, 7, 9]));
        // The node's own cookie not read (yet): only the clients.
        assert_eq!(sock_namespaces(&clients, 0), BTreeSet::from([7, 9]));
        // With --socket-lb off there are no clients; the node's own sockets keep theirs.
        assert_eq!(sock_namespaces(&BTreeMap::new(), 3), BTreeSet::from([3]));
    }
}
