//! Address management without a leader: every node hands out addresses only from blocks of 16
//! that it has claimed through the cluster state.
//!
//! A claim is a LWW entry `(network, block) -> owner`. Two nodes claiming the same block at the
//! same moment both see, once gossip has spread both writes, the same winner (the newer version);
//! a node uses a block only after its claim has stood for a settling time longer than gossip's
//! convergence (well under a second, see docs/benchmarks.md), so concurrent attaches on several
//! nodes never get the same address. Claims pick a random free block, which makes such races rare
//! in the first place. The limit of the scheme: during a network partition both sides may claim
//! the same free block; the addresses then conflict after the heal (Swarm avoids this with a raft
//! leader, at the price of needing a quorum to attach anything).
//!
//! Reserved in every network: the network address, the gateway (network + 1, answered by the eBPF
//! ARP responder) and the broadcast address.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::identity::NodeId;
use crate::state::ClusterState;

/// Addresses per block: 2^4.
pub const BLOCK_BITS: u8 = 4;

/// What the caller should do to get an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// This address is free in one of our settled blocks.
    Use(Ipv4Addr),
    /// We have no free address: claim this block first.
    Claim(u32),
    /// Every block is claimed by live nodes and ours are full.
    Exhausted,
}

pub fn block_count(subnet: &Ipv4Net) -> u32 {
    1 << (32 - u32::from(subnet.prefix_len()) - u32::from(BLOCK_BITS))
}

pub fn gateway(subnet: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// The usable addresses of block `index`.
pub fn block_addresses(subnet: &Ipv4Net, index: u32) -> impl Iterator<Item = Ipv4Addr> {
    let base = u32::from(subnet.network()) + (index << BLOCK_BITS);
    let (network, gateway, broadcast) =
        (u32::from(subnet.network()), u32::from(gateway(subnet)), u32::from(subnet.broadcast()));
    (base..base + (1 << BLOCK_BITS))
        .filter(move |a| *a != network && *a != gateway && *a != broadcast)
        .map(Ipv4Addr::from)
}

/// Decides how node `me` gets an address on `network`. `pending` are addresses this node is
/// handing out right now (not yet in the state).
pub fn plan(
    state: &ClusterState,
    me: NodeId,
    network: &str,
    subnet: &Ipv4Net,
    pending: &HashSet<Ipv4Addr>,
    random: u32,
) -> Plan {
    let used: HashSet<Ipv4Addr> = state
        .endpoints
        .live()
        .filter(|(_, e)| e.network == network)
        .map(|(_, e)| e.address)
        .chain(state.services.live().filter(|(_, s)| s.network == network).filter_map(|(_, s)| s.vip))
        .chain(pending.iter().copied())
        .collect();
    let mut own: Vec<u32> = state
        .blocks
        .live()
        .filter(|((net, _), claim)| net == network && claim.owner == me)
        .map(|((_, index), _)| *index)
        .collect();
    own.sort_unstable();
    for index in own {
        if let Some(address) = block_addresses(subnet, index).find(|a| !used.contains(a)) {
            return Plan::Use(address);
        }
    }
    let free: Vec<u32> = (0..block_count(subnet))
        .filter(|index| match state.blocks.get(&(network.to_string(), *index)) {
            None => true,
            Some(claim) => state.has_left(&claim.owner) || state.nodes.get(&claim.owner).is_none(),
        })
        .collect();
    if free.is_empty() {
        return Plan::Exhausted;
    }
    Plan::Claim(free[random as usize % free.len()])
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
        };
        let delta = Delta {
            version: Version { lamport, node: id(n) },
            change: Change::Node { id: id(n), record: Some(record) },
        };
        state.apply(delta, Instant::now()).unwrap();
    }

    #[test]
    fn reserved_addresses_are_never_handed_out() {
        let net = subnet("10.1.0.0/24");
        assert_eq!(block_count(&net), 16);
        let first: Vec<Ipv4Addr> = block_addresses(&net, 0).collect();
        assert_eq!(first.first(), Some(&Ipv4Addr::new(10, 1, 0, 2)), "network and gateway skipped");
        assert_eq!(first.len(), 14);
        let last: Vec<Ipv4Addr> = block_addresses(&net, 15).collect();
        assert_eq!(last.last(), Some(&Ipv4Addr::new(10, 1, 0, 254)), "broadcast skipped");
        assert_eq!(gateway(&net), Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(block_count(&subnet("10.0.0.0/16")), 4096);
        assert_eq!(block_count(&subnet("10.0.0.0/28")), 1);
    }

    #[test]
    fn a_node_claims_then_uses_its_own_blocks_only() {
        let net = subnet("10.1.0.0/24");
        let mut state = ClusterState::default();
        node(&mut state, 1, false, 1);
        node(&mut state, 2, false, 1);
        let pending = HashSet::new();
        assert_eq!(plan(&state, id(1), "n", &net, &pending, 3), Plan::Claim(3));
        claim(&mut state, 2, 3, 5);
        claim(&mut state, 1, 4, 6);
        assert_eq!(plan(&state, id(1), "n", &net, &pending, 0), Plan::Use(Ipv4Addr::new(10, 1, 0, 64)));
        // Addresses in use (in the state or being handed out) are skipped.
        let pending = HashSet::from([Ipv4Addr::new(10, 1, 0, 64)]);
        assert_eq!(plan(&state, id(1), "n", &net, &pending, 0), Plan::Use(Ipv4Addr::new(10, 1, 0, 65)));
        let endpoint = EndpointRecord {
            network: "n".into(),
            address: Ipv4Addr::new(10, 1, 0, 65),
            service: None,
            task: None,
            terminating: false,
        };
        let delta = Delta {
            version: Version { lamport: 7, node: id(1) },
            change: Change::Endpoint { owner: id(1), id: "e".into(), record: Some(endpoint) },
        };
        state.apply(delta, Instant::now()).unwrap();
        assert_eq!(plan(&state, id(1), "n", &net, &pending, 0), Plan::Use(Ipv4Addr::new(10, 1, 0, 66)));
    }

    #[test]
    fn full_networks_are_exhausted_and_departed_owners_free_their_blocks() {
        let net = subnet("10.1.0.0/28");
        let mut state = ClusterState::default();
        node(&mut state, 1, false, 1);
        node(&mut state, 2, false, 1);
        claim(&mut state, 2, 0, 5);
        assert_eq!(plan(&state, id(1), "n", &net, &HashSet::new(), 0), Plan::Exhausted);
        node(&mut state, 2, true, 9);
        assert_eq!(plan(&state, id(1), "n", &net, &HashSet::new(), 0), Plan::Claim(0));
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
