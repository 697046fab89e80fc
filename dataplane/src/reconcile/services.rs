//! Service VIPs (md_services_v1) and their Maglev tables (md_maglev_v3): one per VIP service
//! over its healthy backends, and for a service with a mode=host port one more over its healthy
//! tasks on this node ([`local_backends`], keyed by `service::id::local_table_id`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use meshd_ebpf::lb::Service;
use meshd_ebpf::net_order;

use crate::bpf::forwarding::{maglev_array, MaglevTables};
use crate::service::backends::{healthy_backends, may_serve, node_health, NodeHealth};
use crate::service::id::{local_table_id, service_id};
use crate::service::maglev;
use crate::service::MaglevCache;
use crate::state::{EndpointMode, PublishMode, ServiceRecord, Snapshot};

/// Every VIP, and each VIP service's Maglev table over its healthy backends (none when it has
/// no backend: packets to it are then dropped as `drop-no-backend`). The table's size M comes
/// from [`maglev::table_size`]; tables come from `cache` when their backends did not change.
pub fn services(snapshot: &Snapshot, cache: &mut MaglevCache) -> (BTreeMap<u32, Service>, MaglevTables) {
    let mut backends = healthy_backends(snapshot);
    let mut services = BTreeMap::new();
    let mut tables = BTreeMap::new();
    cache.new_round();
    let vips: Vec<(u32, Ipv4Addr, Vec<Ipv4Addr>)> = snapshot
        .state
        .services
        .live()
        .filter_map(|(name, service)| match (service.vip, service.mode) {
            (Some(vip), EndpointMode::Vip) => {
                Some((service_id(name), vip, backends.remove(name).unwrap_or_default()))
            }
            _ => None,
        })
        .collect();
    let wanted: Vec<(&[Ipv4Addr], u32)> = vips
        .iter()
        .filter(|(_, _, b)| !b.is_empty())
        .map(|(_, _, b)| (b.as_slice(), maglev::table_size(b.len())))
        .collect();
    cache.prebuild(&wanted);
    for (id, vip, backends) in &vips {
        services.insert(net_order::ipv4(*vip), Service { id: *id, pad: 0 });
        if let Some(table) = table_of(backends, |m| cache.table(backends, m)) {
            tables.insert(*id, table);
        }
    }
    // Host-mode tables after the services' own; an id a service's table took already (a hash
    // collision) stays the service's: that service's VIP is worth more than one host port.
    for (name, backends) in local_backends(snapshot) {
        let id = local_table_id(&name);
        if tables.contains_key(&id) {
            continue;
        }
        if let Some(table) = table_of(&backends, |m| Arc::new(maglev::build(&backends, m))) {
            tables.insert(id, table);
        }
    }
    (services, tables)
}

/// Whether a service publishes a port in host mode (then it has a table of this node's tasks).
pub fn has_host_port(record: &ServiceRecord) -> bool {
    record.mode == EndpointMode::Vip && record.ports.iter().any(|p| p.mode == PublishMode::Host)
}

/// For every vip service with a mode=host port, its healthy tasks on this node, sorted (none
/// when this node is down or drained): what its host-mode ports send to here. A service with
/// none is absent, and its host-mode ports do not answer on this node.
pub fn local_backends(snapshot: &Snapshot) -> BTreeMap<String, Vec<Ipv4Addr>> {
    let state = &snapshot.state;
    let mut out: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
    if !state.services.live().any(|(_, s)| has_host_port(s))
        || node_health(snapshot, &snapshot.self_id) != NodeHealth::Up
    {
        return out;
    }
    for ((owner, _), endpoint) in state.endpoints.live() {
        if *owner != snapshot.self_id {
            continue;
        }
        let Some(name) = endpoint.service.as_deref() else { continue };
        let Some(service) = state.services.get(&name.to_string()) else { continue };
        if has_host_port(service) && may_serve(service, endpoint) {
            out.entry(name.to_string()).or_default().push(endpoint.address);
        }
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

/// The md_maglev_v3 array over `backends` (sorted), None without backends; `build` makes the
/// Maglev table of size M (slot -> index into `backends`), from a cache or afresh.
pub fn table_of(backends: &[Ipv4Addr], build: impl FnOnce(u32) -> Arc<Vec<u32>>) -> Option<Arc<Vec<u32>>> {
    if backends.is_empty() {
        return None;
    }
    let table = build(maglev::table_size(backends.len()));
    let slots: Vec<u32> = table.iter().map(|b| net_order::ipv4(backends[*b as usize])).collect();
    Some(Arc::new(maglev_array(&slots)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{snapshot_with_web, WEB_VIP};
    use meshd_ebpf::lb::{MAGLEV_SIZE, MAGLEV_SLOTS};

    #[test]
    fn a_vip_gets_a_maglev_table_over_its_healthy_backends() {
        let mut cache = MaglevCache::default();
        let (services, tables) = services(&snapshot_with_web(), &mut cache);
        let web = services[&net_order::ipv4(WEB_VIP)];
        assert_eq!(web.id, service_id("web"));
        let table = &tables[&web.id];
        let m = maglev::table_size(2);
        assert_eq!(table[MAGLEV_SIZE as usize], m);
        assert_eq!(table.len(), MAGLEV_SLOTS as usize + m as usize);
        // Both healthy tasks (10.1.0.2 here, 10.1.0.3 on node 2) share the slots; nothing else.
        let slots = &table[MAGLEV_SLOTS as usize..];
        let share =
            |last| slots.iter().filter(|&&s| s == net_order::ipv4(Ipv4Addr::new(10, 1, 0, last))).count();
        assert_eq!(share(2) + share(3), m as usize);
        assert!(share(2) > 0 && share(3) > 0);
    }

    #[test]
    fn a_vip_without_backends_has_no_table_and_dnsrr_services_no_vip() {
        let mut snapshot = snapshot_with_web();
        snapshot.state.endpoints = Default::default();
        let (services, tables) = services(&snapshot, &mut MaglevCache::default());
        assert!(services.contains_key(&net_order::ipv4(WEB_VIP)));
        assert!(tables.is_empty(), "no backend, no table: the program drops as no-backend");
        assert_eq!(services.len(), 2, "web and late have VIPs; the dnsrr service has none");
    }

    #[test]
    fn the_same_backends_reuse_the_cached_table() {
        let mut cache = MaglevCache::default();
        let first = services(&snapshot_with_web(), &mut cache);
        let again = services(&snapshot_with_web(), &mut cache);
        assert_eq!(first, again);
        assert_eq!(cache.len(), 1);
    }
}
