//! Address management in two levels, as in Swarm: blocks of 16 addresses granted to nodes by
//! the managers' Raft group (`manager::decisions`: a block goes to one node, once, however the
//! cluster is partitioned), and addresses handed out by each node from its own blocks without
//! asking anyone. So attaching stays local and fast, keeps working on a side of a partition
//! while the node's blocks last, and two nodes can never hand out the same address.
//!
//! A node's blocks are the grants gossip carries (`blocks` table, written by the managers'
//! leader) plus any grant it has just received and gossip has not brought back yet.
//!
//! Which addresses are handed out is `state::network_options::address_use`'s answer: never the
//! network, broadcast, gateway (network + 1 unless `--gateway`, answered by the eBPF ARP
//! responder) or `--aux-address` addresses, and only addresses inside `--ip-range` when there is
//! one. The managers grant only blocks holding such an address (`state::blocks::grantable`).

use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::identity::NodeId;
use crate::state::network_options::AddressUse;
use crate::state::{ClusterState, NetworkRecord};

pub use crate::state::blocks::{block_count, BLOCK_BITS};

/// What the caller should do to get an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// This address is free in one of our blocks.
    Use(Ipv4Addr),
    /// Our blocks are full (or we have none): ask the managers for another.
    NeedBlock,
}

/// Block `index` as a CIDR.
pub fn block_range(subnet: &Ipv4Net, index: u32) -> Ipv4Net {
    let base = u32::from(subnet.network()) + (index << BLOCK_BITS);
    Ipv4Net::new(Ipv4Addr::from(base), 32 - BLOCK_BITS).expect("a prefix of 28 is valid")
}

/// The addresses of block `index` IPAM may hand out (the dynamic ones).
pub fn block_addresses(record: &NetworkRecord, index: u32) -> impl Iterator<Item = Ipv4Addr> + '_ {
    crate::state::blocks::block_span(&record.subnet, index)
        .map(Ipv4Addr::from)
        .filter(move |a| record.address_use(*a) == AddressUse::Dynamic)
}

/// Blocks of one network a node may hold beyond those its endpoints fill: room for the attaches
/// that gossip has not shown the managers yet (a block holds 16 addresses).
pub const SPARE_BLOCKS: usize = 2;

/// Whether `node`, holding `held` blocks of `network`, may be granted another: only when the
/// endpoints the managers see of it fill all but [`SPARE_BLOCKS`] of them. So a node (a lying
/// worker included) cannot take a network's addresses faster than it uses them; what it can
/// hold in all is bounded by `state::claims::MAX_ENDPOINTS_PER_NODE`.
pub fn may_grant(state: &ClusterState, node: NodeId, network: &str, held: usize) -> Result<(), String> {
    let used = state
        .endpoints
        .live_from(&(node, String::new()))
        .take_while(|((owner, _), _)| *owner == node)
        .filter(|(_, e)| e.network == network)
        .count();
    let allowed = used.div_ceil(1 << BLOCK_BITS) + SPARE_BLOCKS;
    if held >= allowed {
        return Err(format!(
            "{node} holds {held} address blocks of network {network:?} for {used} endpoints: no more until they fill"
        ));
    }
    Ok(())
}

/// Decides how node `me` gets an address on `network`. `pending` are addresses this node is
/// handing out right now (not yet in the state), `granted` blocks granted to it that the state
/// may not show yet.
pub fn plan(
    state: &ClusterState,
    me: NodeId,
    network: &str,
    record: &NetworkRecord,
    pending: &HashSet<Ipv4Addr>,
    granted: &BTreeSet<u32>,
) -> Plan {
    let used: HashSet<Ipv4Addr> = state
        .endpoints
        .live()
        .filter(|(_, e)| e.network == network)
        .map(|(_, e)| e.address)
        .chain(state.services.live().filter(|(_, s)| s.network == network).filter_map(|(_, s)| s.vip))
        .chain(pending.iter().copied())
        .collect();
    let own: BTreeSet<u32> = state
        .blocks
        .live()
        .filter(|((net, _), claim)| net == network && claim.owner == me)
        .map(|((_, index), _)| *index)
        .chain(granted.iter().copied())
        .filter(|index| *index < block_count(&record.subnet))
        .collect();
    for index in own {
        if let Some(address) = block_addresses(record, index).find(|a| !used.contains(a)) {
            return Plan::Use(address);
        }
    }
    Plan::NeedBlock
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::state::{BlockClaim, EndpointRecord, NodeRecord};
    use crate::state::{Change, Delta, Version};

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 16])
    }

    fn subnet(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    fn claim(state: &mut ClusterState, owner: u8, index: u32, lamport: u64) {
        let delta = Delta {
            version: Version { lamport, node: id(owner) },
            change: Change::Block {
                network: "n".into(),
                index,
                claim: Some(BlockClaim { owner: id(owner) }),
            },
        };
        state.apply(delta, Instant::now()).unwrap();
    }

    fn node(state: &mut ClusterState, n: u8, left: bool, lamport: u64) {
        let record = NodeRecord {
            name: format!("n{n}"),
            gossip_addr: "10.0.0.1:7946".parse().unwrap(),
            left,
            departed: None,
            cert: Default::default(),
            founder: None,
            keyring: Default::default(),
            wireguard: None,
        };
        let delta = Delta {
            version: Version { lamport, node: id(n) },
            change: Change::Node { id: id(n), record: Some(record) },
        };
        state.apply(delta, Instant::now()).unwrap();
    }

    fn record(text: &str) -> NetworkRecord {
        NetworkRecord { subnet: subnet(text), vni: 5000, options: Default::default() }
    }

    #[test]
    fn reserved_addresses_are_never_handed_out() {
        let net = record("10.1.0.0/24");
        assert_eq!(block_count(&net.subnet), 16);
        let first: Vec<Ipv4Addr> = block_addresses(&net, 0).collect();
        assert_eq!(first.first(), Some(&Ipv4Addr::new(10, 1, 0, 2)), "network and gateway skipped");
        assert_eq!(first.len(), 14);
        let last: Vec<Ipv4Addr> = block_addresses(&net, 15).collect();
        assert_eq!(last.last(), Some(&Ipv4Addr::new(10, 1, 0, 254)), "broadcast skipped");
        assert_eq!(net.gateway(), Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(block_count(&subnet("10.0.0.0/16")), 4096);
        assert_eq!(block_count(&subnet("10.0.0.0/28")), 1);
    }

    #[test]
    fn options_move_the_gateway_and_keep_aux_and_out_of_range_addresses() {
        let mut net = record("10.1.0.0/24");
        net.options.gateway = Some(Ipv4Addr::new(10, 1, 0, 40));
        net.options.aux_addresses.insert("router".into(), Ipv4Addr::new(10, 1, 0, 41));
        let block0: Vec<Ipv4Addr> = block_addresses(&net, 0).collect();
        assert_eq!(block0.first(), Some(&Ipv4Addr::new(10, 1, 0, 1)), "network + 1 is free again");
        let block2: Vec<Ipv4Addr> = block_addresses(&net, 2).collect();
        assert_eq!(block2.len(), 14, "gateway and aux address skipped");
        assert!(
            !block2.contains(&Ipv4Addr::new(10, 1, 0, 40)) && !block2.contains(&Ipv4Addr::new(10, 1, 0, 41))
        );
        // A range not aligned to blocks: block 2 (.32-.47) hands out .36-.39 only.
        net.options.ip_range = Some("10.1.0.36/30".parse().unwrap());
        let inside: Vec<Ipv4Addr> = block_addresses(&net, 2).collect();
        assert_eq!(inside, (36..=39).map(|n| Ipv4Addr::new(10, 1, 0, n)).collect::<Vec<_>>());
        assert_eq!(block_addresses(&net, 0).count(), 0);
    }

    #[test]
    fn a_node_uses_its_own_blocks_only_and_asks_for_more_when_full() {
        let net = record("10.1.0.0/24");
        let mut state = ClusterState::default();
        node(&mut state, 1, false, 1);
        node(&mut state, 2, false, 1);
        let (pending, none) = (HashSet::new(), BTreeSet::new());
        assert_eq!(plan(&state, id(1), "n", &net, &pending, &none), Plan::NeedBlock);
        claim(&mut state, 2, 3, 5);
        claim(&mut state, 1, 4, 6);
        assert_eq!(plan(&state, id(1), "n", &net, &pending, &none), Plan::Use(Ipv4Addr::new(10, 1, 0, 64)));
        // Addresses in use (in the state or being handed out) are skipped.
        let pending = HashSet::from([Ipv4Addr::new(10, 1, 0, 64)]);
        assert_eq!(plan(&state, id(1), "n", &net, &pending, &none), Plan::Use(Ipv4Addr::new(10, 1, 0, 65)));
        let endpoint = EndpointRecord {
            network: "n".into(),
            address: Ipv4Addr::new(10, 1, 0, 65),
            service: None,
            task: None,
            terminating: false,
            aliases: Vec::new(),
            health: Default::default(),
        };
        let delta = Delta {
            version: Version { lamport: 7, node: id(1) },
            change: Change::Endpoint { owner: id(1), id: "e".into(), record: Some(endpoint) },
        };
        state.apply(delta, Instant::now()).unwrap();
        assert_eq!(plan(&state, id(1), "n", &net, &pending, &none), Plan::Use(Ipv4Addr::new(10, 1, 0, 66)));
        // Block 3 is node 2's, however full node 1's are.
        let full: HashSet<Ipv4Addr> = block_addresses(&net, 4).collect();
        assert_eq!(plan(&state, id(1), "n", &net, &full, &none), Plan::NeedBlock);
        // A grant gossip has not brought back yet counts; one outside the subnet does not.
        let granted = BTreeSet::from([7, 99]);
        assert_eq!(plan(&state, id(1), "n", &net, &full, &granted), Plan::Use(Ipv4Addr::new(10, 1, 0, 112)));
    }

    #[test]
    fn a_node_gets_more_blocks_only_as_its_endpoints_fill_them() {
        let mut state = ClusterState::default();
        assert!(may_grant(&state, id(1), "n", 0).is_ok());
        assert!(may_grant(&state, id(1), "n", 1).is_ok());
        assert!(may_grant(&state, id(1), "n", SPARE_BLOCKS).is_err(), "no endpoint yet: two blocks at most");
        for n in 0..17u8 {
            let endpoint = EndpointRecord {
                network: "n".into(),
                address: Ipv4Addr::new(10, 1, 0, 2 + n),
                service: None,
                task: None,
                terminating: false,
                aliases: Vec::new(),
                health: Default::default(),
            };
            let delta = Delta {
                version: Version { lamport: 10 + u64::from(n), node: id(1) },
                change: Change::Endpoint { owner: id(1), id: format!("e{n}"), record: Some(endpoint) },
            };
            state.apply(delta, Instant::now()).unwrap();
        }
        assert!(may_grant(&state, id(1), "n", 3).is_ok(), "17 endpoints fill two blocks");
        assert!(may_grant(&state, id(1), "n", 4).is_err());
        assert!(may_grant(&state, id(2), "n", 2).is_err(), "another node's endpoints do not count");
        assert!(may_grant(&state, id(1), "other", 2).is_err(), "nor those on another network");
    }

    #[test]
    fn concurrent_claims_resolve_to_one_owner_everywhere() {
        // Both nodes claim block 2; whatever order the claims arrive in, every node ends with the
        // same owner, and only that owner will use it.
        let (a, b) = (
            Delta {
                version: Version { lamport: 10, node: id(1) },
                change: Change::Block {
                    network: "n".into(),
                    index: 2,
                    claim: Some(BlockClaim { owner: id(1) }),
                },
            },
            Delta {
                version: Version { lamport: 10, node: id(2) },
                change: Change::Block {
                    network: "n".into(),
                    index: 2,
                    claim: Some(BlockClaim { owner: id(2) }),
                },
            },
        );
        let mut first = ClusterState::default();
        first.apply(a.clone(), Instant::now()).unwrap();
        first.apply(b.clone(), Instant::now()).unwrap();
        let mut second = ClusterState::default();
        second.apply(b, Instant::now()).unwrap();
        second.apply(a, Instant::now()).unwrap();
        let owner = |s: &ClusterState| s.blocks.get(&("n".to_string(), 2)).unwrap().owner;
        assert_eq!(owner(&first), owner(&second));
    }
}
