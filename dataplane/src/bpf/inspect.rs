//! Reading a VIP's load balancing back from the kernel's maps (not from the cluster state), for
//! `meshctl service inspect`: what the kernel really does, whatever the agent believes.

use std::collections::BTreeMap;

use aya::maps::{Array, HashMap as AyaHashMap, HashOfMaps, MapData};
use meshd_ebpf::{lb, mesh, VETH};

use super::{BpfError, Datapath};

/// One VIP as the kernel's maps hold it (addresses in map byte order).
#[derive(Debug, Default, Clone)]
pub struct LbView {
    pub table_size: u32,
    /// Backend -> Maglev slots it owns.
    pub slots: BTreeMap<u32, u32>,
    /// Backend -> flows tracked to it on this node (through the VIP and published ports).
    pub flows: BTreeMap<u32, u32>,
    /// The published ports on this node's addresses that lead to this VIP.
    pub frontends: Vec<(mesh::FrontendKey, mesh::Frontend)>,
}

impl Datapath {
    /// What the kernel holds for one VIP, read back from the maps (not from the cluster state):
    /// its table size, each backend's Maglev slots, and each backend's tracked flows.
    pub fn lb_view(&self, vip: u32) -> Result<LbView, BpfError> {
        let map = |name: &'static str| {
            self.veth.map(name).ok_or(BpfError::MissingMap { object: VETH.name, map: name })
        };
        let err = |name: &'static str| move |source| BpfError::Map { map: name, source: Box::new(source) };
        let services: AyaHashMap<&MapData, u32, lb::Service> =
            AyaHashMap::try_from(map(lb::SERVICES_MAP)?).map_err(err(lb::SERVICES_MAP))?;
        let Ok(service) = services.get(&vip, 0) else { return Ok(LbView::default()) };
        let mut view = LbView::default();
        let maglev: HashOfMaps<&MapData, u32, Array<MapData, u32>> =
            HashOfMaps::try_from(map(lb::MAGLEV_MAP)?).map_err(err(lb::MAGLEV_MAP))?;
        if let Ok(table) = maglev.get(&service.id, 0) {
            // The size and the fingerprint come first; the slots follow.
            view.table_size = table.get(&lb::MAGLEV_SIZE, 0).unwrap_or(0);
            for backend in table.iter().skip(lb::MAGLEV_SLOTS as usize).filter_map(Result::ok) {
                *view.slots.entry(backend).or_insert(0) += 1;
            }
        }
        let frontends: AyaHashMap<&MapData, mesh::FrontendKey, mesh::Frontend> =
            AyaHashMap::try_from(map(mesh::FRONTENDS_MAP)?).map_err(err(mesh::FRONTENDS_MAP))?;
        for (key, frontend) in frontends.iter().filter_map(Result::ok) {
            if frontend.vip == vip {
                view.frontends.push((key, frontend));
            }
        }
        view.frontends.sort_by_key(|(key, _)| *key);
        let ct: AyaHashMap<&MapData, lb::CtKey, lb::CtVal> =
            AyaHashMap::try_from(map(lb::CT_MAP)?).map_err(err(lb::CT_MAP))?;
        // A published flow is tracked under the node address it arrived on and the service.
        for (key, value) in ct.iter().filter_map(Result::ok) {
            if key.svc == service.id {
                *view.flows.entry(value.backend_ip).or_insert(0) += 1;
            }
        }
        // The containers' own flows to it (through the VIP, or a published port: hairpin).
        for (_, key, value) in self.container_flows()? {
            if key.dir == lb::FLOW_TO_SERVICE && key.svc == service.id {
                *view.flows.entry(value.addr).or_insert(0) += 1;
            }
        }
        Ok(view)
    }
}
