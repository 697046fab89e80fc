//! The rows of the API's replies, built from a cluster snapshot (and, for `service inspect`,
//! from what the kernel holds). Pure: the daemon's handler fetches, these shape.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use meshd_ebpf::mesh::PROTO_UDP;
use meshd_ebpf::net_order;

use super::reply::{
    AttachmentInfo, BackendView, BlockInfo, EndpointInfo, ManagerState, NetworkDetail, NetworkInfo, NodeInfo,
    NodeStatus, ServiceInfo, ServiceInspect, TaskInfo,
};
use crate::bpf::LbView;
use crate::identity::NodeId;
use crate::network::{ipam, LocalAttachment};
use crate::service::backends::{healthy_backends, node_health, NodeHealth};
use crate::service::ports::port_claims;
use crate::state::{Health, Liveness, PublishedPort, Role, Snapshot};

/// `node ls`: every node the state knows, sorted by name then ID. The leader is the one the
/// live managers' reports name in the highest term; the voters are the ones it reports.
pub fn nodes(snapshot: &Snapshot) -> Vec<NodeInfo> {
    let state = &snapshot.state;
    let leader = state
        .managers
        .live()
        .filter(|(id, status)| status.leader == Some(**id) && snapshot.liveness_of(id).is_up())
        .max_by_key(|(_, status)| status.term)
        .map(|(id, status)| (*id, status.voters.clone()));
    let manager_status = |id: &NodeId| {
        if state.role_of(id) != Role::Manager {
            None
        } else if leader.as_ref().is_some_and(|(l, _)| l == id) {
            Some(ManagerState::Leader)
        } else if snapshot.liveness_of(id).is_up() {
            Some(ManagerState::Reachable)
        } else {
            Some(ManagerState::Unreachable)
        }
    };
    let mut nodes: Vec<NodeInfo> = snapshot
        .state
        .nodes
        .live()
        .map(|(id, record)| NodeInfo {
            id: *id,
            name: record.name.clone(),
            address: record.gossip_addr.ip(),
            status: match snapshot.liveness_of(id) {
                Liveness::Alive => NodeStatus::Alive,
                Liveness::Suspect => NodeStatus::Suspect,
                Liveness::Down => NodeStatus::Down,
                Liveness::Left => NodeStatus::Left,
            },
            availability: snapshot.state.availability_of(id),
            role: snapshot.state.role_of(id),
            manager_status: manager_status(id),
            voter: leader.as_ref().is_some_and(|(_, voters)| voters.contains(id)),
            is_self: *id == snapshot.self_id,
            encryption: record.wireguard.as_ref().map(|w| w.engine.clone()),
        })
        .collect();
    nodes.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
    nodes
}

/// `network ls`.
pub fn networks(snapshot: &Snapshot) -> Vec<NetworkInfo> {
    let mut endpoints: HashMap<&str, usize> = HashMap::new();
    for (_, endpoint) in snapshot.state.endpoints.live() {
        *endpoints.entry(endpoint.network.as_str()).or_default() += 1;
    }
    snapshot
        .state
        .networks
        .live()
        .map(|(name, record)| NetworkInfo {
            name: name.clone(),
            subnet: record.subnet.to_string(),
            vni: record.vni,
            gateway: record.gateway(),
            endpoints: endpoints.get(name.as_str()).copied().unwrap_or(0),
            options: record.options.clone(),
        })
        .collect()
}

/// `network inspect`: the network's blocks and endpoints, sorted by index and address; nodes by
/// name (or short ID when the state has no name for them).
pub fn network_detail(snapshot: &Snapshot, name: &str) -> Option<NetworkDetail> {
    let state = &snapshot.state;
    let record = state.networks.get(&name.to_string())?;
    let node_name = |id: &NodeId| state.nodes.get(id).map(|n| n.name.clone()).unwrap_or_else(|| id.short());
    let mut blocks: Vec<BlockInfo> = state
        .blocks
        .live()
        .filter(|((network, _), _)| network == name)
        .map(|((_, index), claim)| BlockInfo {
            index: *index,
            range: ipam::block_range(&record.subnet, *index).to_string(),
            node: node_name(&claim.owner),
        })
        .collect();
    blocks.sort_by_key(|b| b.index);
    let mut endpoints: Vec<EndpointInfo> = state
        .endpoints
        .live()
        .filter(|(_, e)| e.network == name)
        .map(|((owner, id), e)| EndpointInfo {
            address: e.address,
            node: node_name(owner),
            id: id.clone(),
            service: e.service.clone(),
            task: e.task.clone(),
            aliases: e.aliases.clone(),
        })
        .collect();
    endpoints.sort_by_key(|e| e.address);
    Some(NetworkDetail {
        name: name.to_string(),
        subnet: record.subnet.to_string(),
        vni: record.vni,
        gateway: record.gateway(),
        blocks,
        endpoints,
        options: record.options.clone(),
    })
}

/// `service ls`: one pass over the endpoints for all services.
pub fn services(snapshot: &Snapshot) -> Vec<ServiceInfo> {
    let held: HashMap<(String, PublishedPort), String> = port_claims(&snapshot.state)
        .into_iter()
        .filter_map(|c| Some(((c.service, c.port), c.held_by?)))
        .collect();
    let healthy = healthy_backends(snapshot);
    let mut tasks: HashMap<&str, usize> = HashMap::new();
    for (_, endpoint) in snapshot.state.endpoints.live() {
        if let Some(service) = endpoint.service.as_deref() {
            *tasks.entry(service).or_default() += 1;
        }
    }
    snapshot
        .state
        .services
        .live()
        .map(|(name, record)| ServiceInfo {
            name: name.clone(),
            network: record.network.clone(),
            mode: record.mode,
            vip: record.vip,
            healthy: healthy.get(name).map_or(0, Vec::len),
            tasks: tasks.get(name.as_str()).copied().unwrap_or(0),
            ports: record
                .ports
                .iter()
                .map(|p| match held.get(&(name.clone(), *p)) {
                    Some(owner) => format!("{p} (held by {owner})"),
                    None => p.to_string(),
                })
                .collect(),
        })
        .collect()
}

/// `service ps NAME`: its tasks, where they run and whether they take new flows; None when
/// there is no such service.
pub fn tasks(snapshot: &Snapshot, name: &str) -> Option<Vec<TaskInfo>> {
    snapshot.state.services.get(&name.to_string())?;
    let mut tasks: Vec<TaskInfo> = snapshot
        .state
        .endpoints
        .live()
        .filter(|(_, e)| e.service.as_deref() == Some(name))
        .map(|((owner, id), e)| TaskInfo {
            task: e.task.clone().unwrap_or_else(|| id.clone()),
            address: e.address,
            node: snapshot.state.nodes.get(owner).map(|n| n.name.clone()).unwrap_or_else(|| owner.short()),
            state: match node_health(snapshot, owner) {
                NodeHealth::Up if e.terminating => "terminating",
                NodeHealth::Up if e.health != Health::Healthy => {
                    if e.health == Health::Starting {
                        "starting"
                    } else {
                        "unhealthy"
                    }
                }
                NodeHealth::Up => "running",
                NodeHealth::Down => "node-down",
                NodeHealth::Drained => "node-drained",
            }
            .to_string(),
        })
        .collect();
    tasks.sort_by(|a, b| a.task.cmp(&b.task));
    Some(tasks)
}

/// `service inspect NAME`: the VIP `vip` as this node's kernel holds it (`view`).
pub fn inspect(name: &str, vip: Option<Ipv4Addr>, view: &LbView) -> ServiceInspect {
    let mut keys: Vec<u32> = view.slots.keys().chain(view.flows.keys()).copied().collect();
    keys.sort();
    keys.dedup();
    let backends = keys
        .into_iter()
        .map(|key| {
            let slots = view.slots.get(&key).copied().unwrap_or(0);
            BackendView {
                address: net_order::to_ipv4(key),
                slots,
                share: if view.table_size == 0 { 0.0 } else { f64::from(slots) / f64::from(view.table_size) },
                flows: view.flows.get(&key).copied().unwrap_or(0),
            }
        })
        .collect();
    let frontends = view
        .frontends
        .iter()
        .map(|(key, frontend)| {
            format!(
                "{}:{}/{} -> {}",
                net_order::to_ipv4(key.addr),
                net_order::to_port(key.port),
                if key.proto == PROTO_UDP { "udp" } else { "tcp" },
                net_order::to_port(frontend.target_port)
            )
        })
        .collect();
    ServiceInspect { name: name.to_string(), vip, table_size: view.table_size, backends, frontends }
}

/// A local attachment as a runtime reports it, with its endpoint's service and task from the
/// state. `mtu` is the node's overlay MTU (the network's own is at most that).
pub fn attachment(snapshot: &Snapshot, attachment: &LocalAttachment, mtu: u32) -> AttachmentInfo {
    let endpoint = snapshot.state.endpoints.get(&(snapshot.self_id, attachment.id.clone()));
    let record = snapshot.state.networks.get(&attachment.network);
    let subnet = record.map(|n| n.subnet);
    AttachmentInfo {
        owner: attachment.owner.clone(),
        netns: attachment.netns.display().to_string(),
        network: attachment.network.clone(),
        address: attachment.address,
        prefix_len: subnet.map_or(32, |s| s.prefix_len()),
        gateway: record.map_or(Ipv4Addr::UNSPECIFIED, |n| n.gateway()),
        mtu: record.map_or(mtu, |n| n.container_mtu(mtu)),
        interface: attachment.container_ifname.clone(),
        mac: mac_text(&attachment.container_mac),
        host_interface: attachment.host_ifname.clone(),
        host_mac: mac_text(&attachment.host_mac),
        default_route: attachment.default_route,
        service: endpoint.and_then(|e| e.service.clone()),
        task: endpoint.and_then(|e| e.task.clone()),
        terminating: endpoint.is_some_and(|e| e.terminating),
    }
}

fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{id, snapshot_with_web};
    use crate::state::{Availability, Change, Delta, Version};

    #[test]
    fn service_rows_count_healthy_backends_and_show_who_holds_a_port() {
        let mut snapshot = snapshot_with_web();
        let drain = Change::Availability { id: id(2), value: Some(Availability::Drain) };
        snapshot
            .state
            .apply(
                Delta { version: Version { lamport: 10, node: id(1) }, change: drain },
                std::time::Instant::now(),
            )
            .unwrap();
        let rows = services(&snapshot);
        let web = rows.iter().find(|s| s.name == "web").unwrap();
        assert_eq!((web.healthy, web.tasks), (1, 3), "b is drained; c is counted as a task");
        assert_eq!(web.ports, ["8080:80/tcp", "5353:53/udp"]);
        let late = rows.iter().find(|s| s.name == "late").unwrap();
        assert_eq!(late.ports, ["8080:81/tcp (held by web)"]);
        let ps = tasks(&snapshot, "web").unwrap();
        let states: Vec<(&str, &str)> = ps.iter().map(|t| (t.task.as_str(), t.state.as_str())).collect();
        assert_eq!(states, [("web.a", "running"), ("web.b", "node-drained"), ("web.c", "node-drained")]);
        assert!(tasks(&snapshot, "nope").is_none());
        let networks = networks(&snapshot);
        assert_eq!((networks[0].name.as_str(), networks[0].endpoints), ("front", 2));
    }
}
