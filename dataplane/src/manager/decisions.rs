//! What the managers decide, as a pure state machine: the cluster-wide records (networks,
//! services, address-block grants, roles, removals, availability, secrets) and the rules that
//! keep them unique. Every manager applies the same committed commands in the same order and so
//! holds the same `Decided`; the Raft leader mirrors it into the gossip state (`mirror`), from
//! which every node (workers included) reads.
//!
//! A command that would break a rule (a name taken, a subnet overlapping, a port held, a block
//! no longer free) is refused here, at its place in the log, the same on every manager: two
//! managers racing for the same thing never both get it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::identity::{ClusterSettings, NodeId};
use crate::network::{ipam, pool};
use crate::state::{
    validate, Availability, ClusterSecrets, ClusterState, EndpointMode, NetworkRecord, Role, RoleRecord,
    ServiceRecord,
};

/// One cluster-wide decision to make, with who asked and a request id (a command retried after
/// an unknown outcome is applied once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub id: u64,
    pub by: NodeId,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Once, when the group is created: the cluster-wide records the gossip state held before.
    Import(Box<Decided>),
    CreateNetwork {
        name: String,
        record: NetworkRecord,
    },
    RemoveNetwork {
        name: String,
    },
    CreateService {
        name: String,
        record: ServiceRecord,
    },
    RemoveService {
        name: String,
    },
    /// A new address block of `network` for `node`; the machine picks the first free one.
    GrantBlock {
        network: String,
        node: NodeId,
    },
    /// The blocks of a node that left go back to the pool.
    ReleaseBlocks {
        node: NodeId,
    },
    SetAvailability {
        node: NodeId,
        value: Availability,
    },
    SetRole {
        node: NodeId,
        role: Role,
    },
    /// `node rm`: revoked for good; its blocks go back to the pool, its role goes.
    Remove {
        node: NodeId,
    },
    SetSecrets(ClusterSecrets),
    /// `network create` without `--subnet`: the machine gives `record` the first subnet of the
    /// cluster's default address pools that overlaps no network (`network::pool`), here at the
    /// command's place in the log, so two creations racing (or retried across a leader change)
    /// never get the same one. `record.subnet` is not read.
    CreateNetworkFromPool {
        name: String,
        record: NetworkRecord,
    },
    /// `service update`: the service's new record (same network; ports, mode and VIP may
    /// change), checked as a creation is against every other service.
    UpdateService {
        name: String,
        record: ServiceRecord,
    },
}

/// What a command came to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    #[default]
    Done,
    /// The block granted.
    Block(u32),
    /// Refused, and why (nothing changed).
    Refused(String),
    /// The subnet a network created from the default address pools got.
    Subnet(ipnet::Ipv4Net),
}

/// The managers' state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub networks: BTreeMap<String, NetworkRecord>,
    pub services: BTreeMap<String, ServiceRecord>,
    /// (network, block index) -> the node it is granted to.
    pub blocks: BTreeMap<(String, u32), NodeId>,
    pub roles: BTreeMap<NodeId, RoleRecord>,
    pub revoked: BTreeSet<NodeId>,
    pub availability: BTreeMap<NodeId, Availability>,
    pub secrets: Option<ClusterSecrets>,
    /// Whether the import happened (a second one is a no-op).
    pub imported: bool,
    /// The commands applied last and what they came to: a command retried after an unknown
    /// outcome (a timeout, a leader change) is applied once and answered the same again.
    pub recent: VecDeque<(NodeId, u64, Decision)>,
    /// What the cluster was created with (the default address pools): set by the founder's
    /// import, the same on every manager.
    pub settings: ClusterSettings,
}

/// How many request ids are remembered for de-duplication.
const RECENT: usize = 4096;

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} by {}", self.action, self.by.short())
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl Decided {
    /// The cluster-wide records of a gossip state (for the one-time import).
    pub fn from_state(state: &ClusterState) -> Decided {
        let mut roles: BTreeMap<NodeId, RoleRecord> = state.roles.live().map(|(id, r)| (*id, *r)).collect();
        for (id, _) in state.nodes.live() {
            if state.role_of(id) == Role::Manager {
                // The founder has no role record: its grant made it a manager.
                roles.entry(*id).or_insert(RoleRecord { role: Role::Manager, previously_manager: false });
            }
        }
        Decided {
            networks: state.networks.live().map(|(k, v)| (k.clone(), v.clone())).collect(),
            services: state.services.live().map(|(k, v)| (k.clone(), v.clone())).collect(),
            blocks: state.blocks.live().map(|(k, v)| (k.clone(), v.owner)).collect(),
            roles,
            revoked: state.revocations.live().map(|(id, _)| *id).collect(),
            availability: state.availability.live().map(|(k, v)| (*k, *v)).collect(),
            secrets: state.secrets.get(&()).cloned(),
            imported: true,
            recent: VecDeque::new(),
            settings: ClusterSettings::default(),
        }
    }

    /// The managers.
    pub fn managers(&self) -> BTreeSet<NodeId> {
        self.roles
            .iter()
            .filter(|(id, r)| r.role == Role::Manager && !self.revoked.contains(id))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Applies one command; the same on every manager.
    pub fn apply(&mut self, command: Command) -> Decision {
        if let Some((_, _, decision)) =
            self.recent.iter().find(|(by, id, _)| (*by, *id) == (command.by, command.id))
        {
            return decision.clone();
        }
        let (by, id) = (command.by, command.id);
        let decision = self.decide(command.action);
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((by, id, decision.clone()));
        decision
    }

    /// Whether service `name` may hold `record` beside every other service: its network exists,
    /// its VIP is inside it and nobody else's, its ports are published by no other service on
    /// addresses that may overlap (`PublishedPort::conflicts`: services share a port only on
    /// distinct addresses or disjoint networks).
    fn service_fits(&self, name: &str, record: &ServiceRecord) -> Result<(), String> {
        let Some(network) = self.networks.get(&record.network) else {
            return Err(format!("no network named {:?}", record.network));
        };
        if record.vip.is_some_and(|vip| !network.subnet.contains(&vip)) {
            return Err(format!("the VIP is outside network {:?}", record.network));
        }
        if network.options.internal && !record.ports.is_empty() {
            return Err(format!("network {:?} is internal: it cannot publish ports", record.network));
        }
        let others = self.services.iter().filter(|(other, _)| other.as_str() != name);
        for port in &record.ports {
            let holder = others.clone().find_map(|(other, s)| {
                let theirs = s.ports.iter().find(|p| p.conflicts(port))?;
                (s.mode == EndpointMode::Vip).then_some((other, theirs))
            });
            if let Some((other, theirs)) = holder {
                return Err(format!(
                    "port {port} is published by service {other:?} already, on addresses that overlap ({theirs})"
                ));
            }
        }
        if let Some(vip) = record.vip {
            if others.clone().any(|(_, s)| s.vip == Some(vip)) {
                return Err(format!("VIP {vip} is another service's"));
            }
        }
        Ok(())
    }

    fn decide(&mut self, action: Action) -> Decision {
        let refuse = |why: String| Decision::Refused(why);
        match action {
            Action::Import(decided) => {
                if !self.imported {
                    *self = *decided;
                    self.imported = true;
                }
                Decision::Done
            }
            Action::CreateNetwork { name, record } => {
                if self.networks.contains_key(&name) {
                    return refuse(format!("a network named {name:?} already exists"));
                }
                if let Err(why) = validate::network_among(self.networks.iter(), &name, &record) {
                    return refuse(why);
                }
                self.networks.insert(name, record);
                Decision::Done
            }
            Action::RemoveNetwork { name } => {
                if self.networks.remove(&name).is_none() {
                    return refuse(format!("no network named {name:?}"));
                }
                self.blocks.retain(|(network, _), _| network != &name);
                self.services.retain(|_, s| s.network != name);
                Decision::Done
            }
            Action::CreateService { name, record } => {
                if self.services.contains_key(&name) {
                    return refuse(format!("a service named {name:?} already exists"));
                }
                if let Err(why) = self.service_fits(&name, &record) {
                    return refuse(why);
                }
                self.services.insert(name, record);
                Decision::Done
            }
            Action::UpdateService { name, record } => {
                let Some(old) = self.services.get(&name) else {
                    return refuse(format!("no service named {name:?}"));
                };
                if old.network != record.network {
                    return refuse(format!("service {name:?} stays on network {:?}", old.network));
                }
                if let Err(why) = self.service_fits(&name, &record) {
                    return refuse(why);
                }
                self.services.insert(name, record);
                Decision::Done
            }
            Action::RemoveService { name } => match self.services.remove(&name) {
                Some(_) => Decision::Done,
                None => refuse(format!("no service named {name:?}")),
            },
            Action::GrantBlock { network, node } => {
                if self.revoked.contains(&node) {
                    return refuse(format!("{node} was removed"));
                }
                let Some(record) = self.networks.get(&network) else {
                    return refuse(format!("no network named {network:?}"));
                };
                // Only blocks holding dynamic addresses (inside `--ip-range`, say).
                let free = (0..ipam::block_count(&record.subnet)).find(|i| {
                    crate::state::blocks::grantable(record, *i)
                        && !self.blocks.contains_key(&(network.clone(), *i))
                });
                match free {
                    Some(index) => {
                        self.blocks.insert((network, index), node);
                        Decision::Block(index)
                    }
                    None => refuse(format!("network {network:?} has no free address block left")),
                }
            }
            Action::ReleaseBlocks { node } => {
                self.blocks.retain(|_, owner| *owner != node);
                Decision::Done
            }
            Action::SetAvailability { node, value } => {
                self.availability.insert(node, value);
                Decision::Done
            }
            Action::SetRole { node, role } => {
                if self.revoked.contains(&node) {
                    return refuse(format!("{node} was removed"));
                }
                let current = self.roles.get(&node).map(|r| r.role).unwrap_or(Role::Worker);
                if current == role {
                    return Decision::Done;
                }
                if role == Role::Worker && self.managers().len() <= 1 {
                    return refuse("it is the last manager: promote another node first".into());
                }
                self.roles.insert(node, RoleRecord { role, previously_manager: current == Role::Manager });
                Decision::Done
            }
            Action::Remove { node } => {
                if self.roles.get(&node).is_some_and(|r| r.role == Role::Manager)
                    && self.managers().len() <= 1
                {
                    return refuse("it is the last manager: promote another node first".into());
                }
                self.revoked.insert(node);
                self.roles.remove(&node);
                self.availability.remove(&node);
                self.blocks.retain(|_, owner| *owner != node);
                Decision::Done
            }
            Action::SetSecrets(secrets) => {
                if let Err(why) = validate::secrets(self.secrets.as_ref(), &secrets) {
                    return refuse(why);
                }
                self.secrets = Some(secrets);
                Decision::Done
            }
            Action::CreateNetworkFromPool { name, mut record } => {
                if self.networks.contains_key(&name) {
                    return refuse(format!("a network named {name:?} already exists"));
                }
                let used: Vec<ipnet::Ipv4Net> = self.networks.values().map(|n| n.subnet).collect();
                let Some(subnet) = pool::next_free(&self.settings, &used) else {
                    let pools: Vec<String> =
                        self.settings.default_addr_pools.iter().map(|p| p.to_string()).collect();
                    return refuse(format!(
                        "the default address pools ({}) have no free /{} left: pass --subnet",
                        pools.join(", "),
                        self.settings.default_addr_pool_mask_length
                    ));
                };
                record.subnet = subnet;
                if let Err(why) = validate::network_among(self.networks.iter(), &name, &record) {
                    return refuse(why);
                }
                self.networks.insert(name, record);
                Decision::Subnet(subnet)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ports::parse_publish;
    use crate::state::validate::vni_for;

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 16])
    }

    fn command(n: u64, action: Action) -> Command {
        Command { id: n, by: id(1), action }
    }

    fn network(name: &str, subnet: &str) -> Action {
        Action::CreateNetwork {
            name: name.into(),
            record: NetworkRecord {
                subnet: subnet.parse().unwrap(),
                vni: vni_for(name),
                options: Default::default(),
            },
        }
    }

    fn founded() -> Decided {
        let mut decided = Decided { imported: true, ..Decided::default() };
        decided.roles.insert(id(1), RoleRecord { role: Role::Manager, previously_manager: false });
        decided
    }

    #[test]
    fn the_first_command_wins_and_the_second_is_refused_the_same_everywhere() {
        let mut a = founded();
        assert_eq!(a.apply(command(1, network("front", "10.1.0.0/24"))), Decision::Done);
        assert!(matches!(a.apply(command(2, network("front", "10.2.0.0/24"))), Decision::Refused(_)));
        assert!(
            matches!(a.apply(command(3, network("other", "10.1.0.0/16"))), Decision::Refused(_)),
            "overlap"
        );
        let service = |vip: &str, port: &str| ServiceRecord {
            network: "front".into(),
            mode: EndpointMode::Vip,
            vip: Some(vip.parse().unwrap()),
            ports: vec![parse_publish(port).unwrap()],
        };
        let create = |name: &str, record| Action::CreateService { name: name.into(), record };
        assert_eq!(a.apply(command(4, create("web", service("10.1.0.5", "8080:80")))), Decision::Done);
        assert!(
            matches!(a.apply(command(5, create("api", service("10.1.0.6", "8080:81")))), Decision::Refused(r) if r.contains("8080"))
        );
        assert!(
            matches!(a.apply(command(6, create("api", service("10.1.0.5", "9090:81")))), Decision::Refused(r) if r.contains("VIP"))
        );
        // The same log on another manager gives the same state.
        let mut b = founded();
        for n in 1..=6 {
            let action = match n {
                1 => network("front", "10.1.0.0/24"),
                2 => network("front", "10.2.0.0/24"),
                3 => network("other", "10.1.0.0/16"),
                4 => create("web", service("10.1.0.5", "8080:80")),
                5 => create("api", service("10.1.0.6", "8080:81")),
                _ => create("api", service("10.1.0.5", "9090:81")),
            };
            b.apply(command(n, action));
        }
        assert_eq!(a, b);
        // Another address of the node, or a disjoint network, shares the port; an overlap does not.
        let on =
            |vip: &str, address: &str| service(vip, &format!("published=7000,target=80,address={address}"));
        assert_eq!(a.apply(command(20, create("a1", on("10.1.0.20", "192.0.2.1")))), Decision::Done);
        assert_eq!(a.apply(command(21, create("a2", on("10.1.0.21", "192.0.2.2")))), Decision::Done);
        assert_eq!(a.apply(command(22, create("a3", on("10.1.0.22", "198.51.100.0/25")))), Decision::Done);
        for (n, address) in [(23, "192.0.2.0/24"), (24, "198.51.100.9"), (25, "192.0.2.1")] {
            assert!(
                matches!(a.apply(command(n, create("a4", on("10.1.0.23", address)))), Decision::Refused(r) if r.contains("overlap")),
                "{address}"
            );
        }
        assert!(matches!(
            a.apply(command(26, create("a4", service("10.1.0.23", "6990-7010:6990-7010")))),
            Decision::Refused(r) if r.contains("a1")
        ));
    }

    #[test]
    fn blocks_are_granted_once_and_come_back_when_their_node_goes() {
        let mut d = founded();
        d.apply(command(1, network("front", "10.1.0.0/26")));
        let grant =
            |n: u64, node: u8| command(n, Action::GrantBlock { network: "front".into(), node: id(node) });
        assert_eq!(d.apply(grant(2, 2)), Decision::Block(0));
        assert_eq!(d.apply(grant(3, 3)), Decision::Block(1));
        assert_eq!(d.apply(grant(4, 2)), Decision::Block(2));
        assert_eq!(d.apply(grant(5, 3)), Decision::Block(3));
        assert!(matches!(d.apply(grant(6, 2)), Decision::Refused(_)), "a /26 has 4 blocks");
        d.apply(command(7, Action::ReleaseBlocks { node: id(2) }));
        assert_eq!(d.apply(grant(8, 3)), Decision::Block(0));
        d.apply(command(9, Action::Remove { node: id(3) }));
        assert!(matches!(d.apply(grant(10, 3)), Decision::Refused(_)), "a removed node gets nothing");
        assert!(!d.blocks.values().any(|owner| *owner == id(3)));
    }

    #[test]
    fn networks_from_the_pools_get_distinct_subnets_until_the_pools_run_out() {
        let mut d = founded();
        d.settings = ClusterSettings {
            default_addr_pools: vec!["10.9.0.0/24".parse().unwrap()],
            default_addr_pool_mask_length: 26,
            data_path_port: 4789,
        };
        let from_pool = |name: &str| Action::CreateNetworkFromPool {
            name: name.into(),
            record: NetworkRecord {
                subnet: Default::default(),
                vni: vni_for(name),
                options: Default::default(),
            },
        };
        d.apply(command(1, network("fixed", "10.9.0.64/26")));
        assert_eq!(d.apply(command(2, from_pool("a"))), Decision::Subnet("10.9.0.0/26".parse().unwrap()));
        assert_eq!(d.apply(command(3, from_pool("b"))), Decision::Subnet("10.9.0.128/26".parse().unwrap()));
        // A retry answers the same and takes nothing more.
        assert_eq!(d.apply(command(3, from_pool("b"))), Decision::Subnet("10.9.0.128/26".parse().unwrap()));
        assert!(matches!(d.apply(command(4, from_pool("a"))), Decision::Refused(r) if r.contains("exists")));
        assert_eq!(d.apply(command(5, from_pool("c"))), Decision::Subnet("10.9.0.192/26".parse().unwrap()));
        let full = d.apply(command(6, from_pool("d")));
        assert!(
            matches!(&full, Decision::Refused(r) if r.contains("10.9.0.0/24") && r.contains("no free /26")),
            "{full:?}"
        );
        assert_eq!(d.networks.len(), 4);
        assert_eq!(d.networks["b"].subnet.to_string(), "10.9.0.128/26");
        // Removing one frees its subnet for the next.
        d.apply(command(7, Action::RemoveNetwork { name: "a".into() }));
        assert_eq!(d.apply(command(8, from_pool("d"))), Decision::Subnet("10.9.0.0/26".parse().unwrap()));
    }

    #[test]
    fn a_retried_command_is_applied_once_and_the_last_manager_stays() {
        let mut d = founded();
        let grant = command(1, Action::GrantBlock { network: "front".into(), node: id(2) });
        d.apply(command(0, network("front", "10.1.0.0/24")));
        assert_eq!(d.apply(grant.clone()), Decision::Block(0));
        assert_eq!(d.apply(grant), Decision::Block(0), "the retry changes nothing and answers the same");
        assert_eq!(d.blocks.len(), 1);
        assert!(matches!(
            d.apply(command(2, Action::SetRole { node: id(1), role: Role::Worker })),
            Decision::Refused(_)
        ));
        assert_eq!(d.apply(command(3, Action::SetRole { node: id(2), role: Role::Manager })), Decision::Done);
        assert_eq!(d.apply(command(4, Action::SetRole { node: id(1), role: Role::Worker })), Decision::Done);
        assert_eq!(d.managers(), BTreeSet::from([id(2)]));
        assert!(d.roles[&id(1)].previously_manager);
    }
}
