//! The reconciler kept from one round to the next: the same answer as [`super::desired`], but
//! after the first round it recomputes only what the state change can have touched.
//!
//! With 10,000 services of 10 tasks, rebuilding the desired state from scratch (100,000
//! endpoints, 10,000 services and their Maglev tables) and diffing it costs 0.2-0.3 s; one task
//! leaving touches one endpoint, one service and one table. A round therefore compares the new
//! snapshot with the previous one (the endpoint and service tables by key and version, a merge
//! of two sorted maps: a few milliseconds for 100,000 entries, no record compared) and
//! recomputes:
//! - the md_endpoints_v2 entries of the addresses of changed endpoint records (their old and
//!   new address), and every entry of this node's own endpoints when its attachments changed;
//! - the md_services_v1 and md_maglev_v3 entries of the services whose record changed or one of
//!   whose endpoint records changed (its old and new service). A service's tasks are found
//!   through an index (service -> endpoint keys) kept with the result;
//! - the small maps (interfaces, flow tables, nodes, published ports) whole when their inputs
//!   changed.
//!
//! Anything that can change many entries at once rebuilds from scratch: a service with a
//! mode=host port among the changed (its table of this node's tasks), another node id, a
//! changed network or node record, a node's health (liveness, availability), and the rare
//! ambiguous cases the full build settles by key order (two endpoint records with one address,
//! two services with one VIP or one id) when not all of their records are among the changed.
//! The answer is always the full build's ([`tests`] check it on random histories), and
//! [`Touched`] names every key whose entry may differ from the previous round's.
//!
//! Memory: the previous snapshot (shared with gossip until the next one replaces it), the index
//! of endpoint keys by service, and a count per address, VIP and service id.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use meshd_ebpf::lb::Service;
use meshd_ebpf::net_order;

use super::endpoints::endpoint_of;
use super::services::{has_host_port, table_of};
use super::{endpoints, frontends};
use crate::bpf::forwarding::Touched;
use crate::bpf::Forwarding;
use crate::identity::NodeId;
use crate::network::LocalAttachment;
use crate::service::backends::{may_serve, node_health, NodeHealth};
use crate::service::id::service_id;
use crate::service::{maglev, MaglevCache};
use crate::state::table::Table;
use crate::state::{EndpointMode, ServiceRecord, Snapshot};

type EndpointKey = (NodeId, String);

/// What one round changed, for the writer (`Datapath::sync_forwarding_touched`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub touched: Touched,
    /// Whether the round rebuilt the endpoint and service maps from scratch.
    pub rebuilt: bool,
}

/// The desired forwarding state and what keeps it up to date.
#[derive(Debug, Default)]
pub struct Reconciler {
    /// The inputs of the last round.
    prev: Option<(Arc<Snapshot>, Vec<LocalAttachment>, Vec<Ipv4Addr>)>,
    desired: Forwarding,
    /// Maglev tables by backend set, for rebuilds from scratch (see `service::maglev_cache`).
    cache: MaglevCache,
    /// Service name -> the keys of the endpoint records that name it (any network, any health).
    members: HashMap<String, BTreeSet<EndpointKey>>,
    /// Endpoint address (network order) -> live endpoint records with it.
    addr_count: HashMap<u32, u32>,
    /// VIP (network order) -> VIP-mode services with it; service id -> VIP-mode services with it.
    vip_count: HashMap<u32, u32>,
    id_count: HashMap<u32, u32>,
}

impl Reconciler {
    /// The desired state of the last round.
    pub fn desired(&self) -> &Forwarding {
        &self.desired
    }

    /// Brings the desired state to `snapshot`, `local` and `node_addrs` (as [`super::desired`]
    /// computes it) and says which keys may have changed since the last round.
    pub fn update(
        &mut self,
        snapshot: &Arc<Snapshot>,
        local: &[LocalAttachment],
        node_addrs: &[Ipv4Addr],
    ) -> Round {
        let Some((prev, prev_local, prev_addrs)) = self.prev.take() else {
            return self.rebuild(snapshot, local, node_addrs);
        };
        let (old, new) = (&prev.state, &snapshot.state);
        if prev.self_id != snapshot.self_id
            || !same_versions(&old.networks, &new.networks)
            || !same_versions(&old.nodes, &new.nodes)
            || !same_health(&prev, snapshot)
        {
            return self.rebuild(snapshot, local, node_addrs);
        }

        // Which endpoint records changed (plus this node's own, when its attachments changed).
        let mut changed = changed_keys(&old.endpoints, &new.endpoints);
        if prev_local != local {
            let own = |(owner, _): &&EndpointKey| *owner == snapshot.self_id;
            changed.extend(old.endpoints.entries().map(|(k, _)| k).filter(own).cloned());
            changed.extend(new.endpoints.entries().map(|(k, _)| k).filter(own).cloned());
            changed.sort();
            changed.dedup();
        }
        let mut dirty_services: BTreeSet<String> =
            changed_keys(&old.services, &new.services).into_iter().collect();
        let services_changed = !dirty_services.is_empty();

        // Endpoints: the counts and the index first, then every address involved.
        let mut addrs = BTreeSet::new();
        for key in &changed {
            if let Some(record) = old.endpoints.get(key) {
                let addr = net_order::ipv4(record.address);
                addrs.insert(addr);
                decrement(&mut self.addr_count, addr);
                if let Some(service) = &record.service {
                    dirty_services.insert(service.clone());
                    if let Some(keys) = self.members.get_mut(service) {
                        keys.remove(key);
                        if keys.is_empty() {
                            self.members.remove(service);
                        }
                    }
                }
            }
            if let Some(record) = new.endpoints.get(key) {
                let addr = net_order::ipv4(record.address);
                addrs.insert(addr);
                *self.addr_count.entry(addr).or_default() += 1;
                if let Some(service) = &record.service {
                    dirty_services.insert(service.clone());
                    self.members.entry(service.clone()).or_default().insert(key.clone());
                }
            }
        }
        // A service with a mode=host port has a table of this node's tasks and front doors
        // that come and go with them: rare enough that the full build does it.
        let host_port = |name: &String| {
            [old.services.get(name), new.services.get(name)].into_iter().flatten().any(has_host_port)
        };
        if dirty_services.iter().any(host_port) {
            return self.rebuild(snapshot, local, node_addrs);
        }
        let endpoints_ok = self.update_endpoints(snapshot, local, &changed, &addrs);
        let services =
            if endpoints_ok { self.update_services(&prev, snapshot, &dirty_services) } else { None };
        let Some((vips, ids)) = services else {
            // An ambiguous key: the full build settles it (and recomputes the counts and index).
            return self.rebuild(snapshot, local, node_addrs);
        };

        let ifaces = endpoints::ifaces(snapshot, local);
        self.desired.flow_tables = ifaces.values().map(|iface| iface.ip).collect();
        self.desired.ifaces = ifaces;
        self.desired.sock_clients = super::sock_clients::sock_clients(snapshot, local);
        if services_changed || prev_addrs != node_addrs {
            self.desired.frontends = frontends::frontends(snapshot, node_addrs);
        }
        self.prev = Some((snapshot.clone(), local.to_vec(), node_addrs.to_vec()));
        Round {
            touched: Touched { endpoints: Some(addrs), services: Some(vips), maglev: Some(ids) },
            rebuilt: false,
        }
    }

    /// The full build ([`super::desired`]), and the indexes for the next rounds.
    fn rebuild(
        &mut self,
        snapshot: &Arc<Snapshot>,
        local: &[LocalAttachment],
        node_addrs: &[Ipv4Addr],
    ) -> Round {
        self.desired = super::desired(snapshot, local, node_addrs, &mut self.cache);
        self.members.clear();
        self.addr_count.clear();
        for (key, record) in snapshot.state.endpoints.live() {
            *self.addr_count.entry(net_order::ipv4(record.address)).or_default() += 1;
            if let Some(service) = &record.service {
                self.members.entry(service.clone()).or_default().insert(key.clone());
            }
        }
        self.vip_count.clear();
        self.id_count.clear();
        for (name, record) in snapshot.state.services.live() {
            if let Some(vip) = vip_of(record) {
                *self.vip_count.entry(vip).or_default() += 1;
                *self.id_count.entry(service_id(name)).or_default() += 1;
            }
        }
        self.prev = Some((snapshot.clone(), local.to_vec(), node_addrs.to_vec()));
        Round { touched: Touched::all(), rebuilt: true }
    }

    /// Recomputes the md_endpoints_v2 entries of `addrs`, the addresses of the `changed` endpoint
    /// records (old and new). False when an address is shared with a record that did not change
    /// (the full build decides by key order): the caller rebuilds.
    fn update_endpoints(
        &mut self,
        snapshot: &Snapshot,
        local: &[LocalAttachment],
        changed: &[EndpointKey],
        addrs: &BTreeSet<u32>,
    ) -> bool {
        let endpoints = &snapshot.state.endpoints;
        // Changed live records by address, in key order (`changed` is sorted).
        let mut by_addr: HashMap<u32, Vec<&EndpointKey>> = HashMap::new();
        for key in changed {
            if let Some(record) = endpoints.get(key) {
                by_addr.entry(net_order::ipv4(record.address)).or_default().push(key);
            }
        }
        for addr in addrs {
            let count = self.addr_count.get(addr).copied().unwrap_or(0) as usize;
            let candidates = by_addr.get(addr).map(Vec::as_slice).unwrap_or_default();
            if count != candidates.len() {
                return false;
            }
            // As the full build: the last key with an entry wins.
            let entry = candidates.iter().rev().find_map(|key| {
                let record = endpoints.get(key).expect("a live record");
                endpoint_of(snapshot, local, &key.0, &key.1, record)
            });
            match entry {
                Some(entry) => self.desired.endpoints.insert(*addr, entry),
                None => self.desired.endpoints.remove(addr),
            };
        }
        true
    }

    /// Recomputes the md_services_v1 and md_maglev_v3 entries of `dirty` services; returns the
    /// VIPs and ids touched. None when a VIP or an id is shared with a service that did not
    /// change: the caller rebuilds.
    fn update_services(
        &mut self,
        prev: &Snapshot,
        snapshot: &Snapshot,
        dirty: &BTreeSet<String>,
    ) -> Option<(BTreeSet<u32>, BTreeSet<u32>)> {
        let (old, new) = (&prev.state.services, &snapshot.state.services);
        for name in dirty {
            if let Some(vip) = old.get(name).and_then(vip_of) {
                decrement(&mut self.vip_count, vip);
                decrement(&mut self.id_count, service_id(name));
            }
            if let Some(vip) = new.get(name).and_then(vip_of) {
                *self.vip_count.entry(vip).or_default() += 1;
                *self.id_count.entry(service_id(name)).or_default() += 1;
            }
        }
        // The VIP-mode services among the dirty, in name order, by VIP and by id.
        let mut by_vip: BTreeMap<u32, Vec<&String>> = BTreeMap::new();
        let mut by_id: BTreeMap<u32, Vec<&String>> = BTreeMap::new();
        for name in dirty {
            if let Some(vip) = new.get(name).and_then(vip_of) {
                by_vip.entry(vip).or_default().push(name);
                by_id.entry(service_id(name)).or_default().push(name);
            }
        }
        let (vips, ids) = touched_keys(prev, snapshot, dirty);
        for vip in &vips {
            let names = by_vip.get(vip).map(Vec::as_slice).unwrap_or_default();
            if self.vip_count.get(vip).copied().unwrap_or(0) as usize != names.len() {
                return None;
            }
            // As the full build: the last name wins.
            match names.last() {
                Some(name) => self.desired.services.insert(*vip, Service { id: service_id(name), pad: 0 }),
                None => self.desired.services.remove(vip),
            };
        }
        let mut health = HashMap::new();
        for id in &ids {
            let names = by_id.get(id).map(Vec::as_slice).unwrap_or_default();
            if self.id_count.get(id).copied().unwrap_or(0) as usize != names.len() {
                return None;
            }
            // As the full build: the last name with a table wins.
            let table = names.iter().rev().find_map(|name| {
                let backends = self.backends(snapshot, name, &mut health);
                table_of(&backends, |m| Arc::new(maglev::build(&backends, m)))
            });
            match table {
                Some(table) => self.desired.maglev.insert(*id, table),
                None => self.desired.maglev.remove(id),
            };
        }
        Some((vips, ids))
    }

    /// The healthy backends of service `name`, sorted (as `service::backends::healthy_backends`),
    /// from its tasks in the index.
    fn backends(
        &self,
        snapshot: &Snapshot,
        name: &str,
        health: &mut HashMap<NodeId, NodeHealth>,
    ) -> Vec<Ipv4Addr> {
        let state = &snapshot.state;
        let Some(service) = state.services.get(&name.to_string()) else { return Vec::new() };
        let Some(keys) = self.members.get(name) else { return Vec::new() };
        let mut out: Vec<Ipv4Addr> = keys
            .iter()
            .filter_map(|key| state.endpoints.get(key).map(|record| (key, record)))
            .filter(|(_, record)| may_serve(service, record))
            .filter(|((owner, _), _)| {
                *health.entry(*owner).or_insert_with(|| node_health(snapshot, owner)) == NodeHealth::Up
            })
            .map(|(_, record)| record.address)
            .collect();
        out.sort();
        out
    }
}

/// The VIPs and ids the `dirty` services held before or hold now (VIP mode only): the keys of
/// md_services_v1 and md_maglev_v3 they touch.
fn touched_keys(
    prev: &Snapshot,
    snapshot: &Snapshot,
    dirty: &BTreeSet<String>,
) -> (BTreeSet<u32>, BTreeSet<u32>) {
    let mut vips = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for name in dirty {
        for record in [prev.state.services.get(name), snapshot.state.services.get(name)].into_iter().flatten()
        {
            if let Some(vip) = vip_of(record) {
                vips.insert(vip);
                ids.insert(service_id(name));
            }
        }
    }
    (vips, ids)
}

/// A VIP-mode service's VIP (network order).
fn vip_of(record: &ServiceRecord) -> Option<u32> {
    match (record.vip, record.mode) {
        (Some(vip), EndpointMode::Vip) => Some(net_order::ipv4(vip)),
        _ => None,
    }
}

fn decrement(counts: &mut HashMap<u32, u32>, key: u32) {
    if let Some(count) = counts.get_mut(&key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(&key);
        }
    }
}

/// The keys whose entry (value or tombstone) differs between `old` and `new`, by version: one
/// merge of two sorted maps, no value compared.
fn changed_keys<K: Ord + Clone, V: Clone>(old: &Table<K, V>, new: &Table<K, V>) -> Vec<K> {
    let mut out = Vec::new();
    let mut a = old.entries().peekable();
    let mut b = new.entries().peekable();
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => return out,
            (Some((k, _)), None) => {
                out.push((*k).clone());
                a.next();
            }
            (None, Some((k, _))) => {
                out.push((*k).clone());
                b.next();
            }
            (Some((ka, ea)), Some((kb, eb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => {
                    out.push((*ka).clone());
                    a.next();
                }
                std::cmp::Ordering::Greater => {
                    out.push((*kb).clone());
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if ea.version != eb.version {
                        out.push((*ka).clone());
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
}

/// Whether two tables hold the same versions of the same keys (and so the same values).
fn same_versions<K: Ord + Clone, V: Clone>(old: &Table<K, V>, new: &Table<K, V>) -> bool {
    old.len() == new.len()
        && old.entries().zip(new.entries()).all(|((ka, ea), (kb, eb))| ka == kb && ea.version == eb.version)
}

/// Whether every node has the same health (`service::backends::node_health`) in both snapshots.
fn same_health(prev: &Snapshot, snapshot: &Snapshot) -> bool {
    if !same_versions(&prev.state.availability, &snapshot.state.availability) {
        return false;
    }
    let nodes: BTreeSet<&NodeId> = prev.liveness.keys().chain(snapshot.liveness.keys()).collect();
    nodes.into_iter().all(|node| node_health(prev, node) == node_health(snapshot, node))
}

#[cfg(test)]
mod tests;
