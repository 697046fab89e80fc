//! What a node may claim for itself: an endpoint's address only from a block the managers
//! granted that very node on that network, and only so many endpoints.
//!
//! Owners alone write their endpoint records (`gossip::admission` checks the signature), but an
//! owner can lie in its own record. Checked at receipt by every node, these rules make a lie
//! harmless to others: an address in another node's block, outside the subnet or reserved is
//! refused, so no node's claim ever displaces another's (in the forwarding maps, the load
//! balancers or DNS), and a node cannot grow everyone's tables past its bound.
//!
//! Gossip does not order a grant before the endpoints that use it: a claim whose network or
//! block this node has not heard of yet is [`Claim::Unproven`], not refused, and the caller
//! holds it until the grant arrives (`gossip::parked`).

use std::fmt;

use super::blocks;
use super::cluster::ClusterState;
use super::network_options::AddressUse;
use super::records::EndpointRecord;
use crate::identity::NodeId;

/// Live endpoints one node may hold: far above what one node runs (Kubernetes' default is 110
/// pods a node, Swarm's practical limit a few hundred tasks), small enough that a lying node
/// cannot swell every node's tables, load balancers and DNS answers.
pub const MAX_ENDPOINTS_PER_NODE: usize = 1024;

/// Endpoint entries one node may hold, tombstones included. A removal is kept as a tombstone for
/// a day (so a late copy of the record cannot bring it back); one of a record never seen here
/// is admitted only below this bound, so a node cannot grow everyone's tables with removals of
/// records that never were. A removal of a record held is always admitted.
pub const MAX_ENDPOINT_ENTRIES_PER_NODE: usize = 4 * MAX_ENDPOINTS_PER_NODE;

/// What the rules say of one endpoint claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The address is in a block granted to the claimant, and the claimant is under its bound.
    Granted,
    /// The network or the address's block is not known here yet: it may be granted to the
    /// claimant by a record still on its way.
    Unproven,
    /// Never acceptable as the state stands.
    Refused(ClaimError),
}

/// Why an endpoint claim is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimError {
    /// The address is not in the network's subnet.
    OutsideSubnet,
    /// The network address, the gateway, the broadcast address or an `--aux-address`.
    Reserved,
    /// The address's block is granted to another node.
    OthersBlock(NodeId),
    /// The claimant holds [`MAX_ENDPOINTS_PER_NODE`] endpoints already.
    TooMany,
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimError::OutsideSubnet => f.write_str("the address is outside the network's subnet"),
            ClaimError::Reserved => {
                f.write_str("the address is reserved (network, gateway, broadcast or aux address)")
            }
            ClaimError::OthersBlock(holder) => write!(f, "the address is in a block granted to {holder}"),
            ClaimError::TooMany => write!(f, "the node holds {MAX_ENDPOINTS_PER_NODE} endpoints already"),
        }
    }
}

/// Whether `owner` may hold the endpoint `id` with `record`, as `state` stands.
pub fn endpoint(state: &ClusterState, owner: &NodeId, id: &str, record: &EndpointRecord) -> Claim {
    if state.endpoints.get(&(*owner, id.to_string())).is_none()
        && live_endpoints_of(state, owner) >= MAX_ENDPOINTS_PER_NODE
    {
        return Claim::Refused(ClaimError::TooMany);
    }
    let Some(network) = state.networks.get(&record.network) else { return Claim::Unproven };
    let Some(index) = blocks::block_of(&network.subnet, record.address) else {
        return Claim::Refused(ClaimError::OutsideSubnet);
    };
    // An address outside `--ip-range` is not refused here: a static address may be anywhere in
    // the subnet; dynamic ones come only from blocks granted inside the range.
    if let AddressUse::Reserved(_) = network.address_use(record.address) {
        return Claim::Refused(ClaimError::Reserved);
    }
    match state.blocks.get(&(record.network.clone(), index)) {
        Some(grant) if grant.owner == *owner => Claim::Granted,
        Some(grant) => Claim::Refused(ClaimError::OthersBlock(grant.owner)),
        None => Claim::Unproven,
    }
}

/// Whether `owner` may remove its endpoint `id`: always if the record is here; if not (a
/// removal that overtook its record), while `owner` has room for the tombstone.
pub fn endpoint_removal(state: &ClusterState, owner: &NodeId, id: &str) -> Claim {
    let key = (*owner, id.to_string());
    let entries = || {
        state.endpoints.entries_from(&(*owner, String::new())).take_while(|((of, _), _)| of == owner).count()
    };
    if state.endpoints.entry(&key).is_none() && entries() >= MAX_ENDPOINT_ENTRIES_PER_NODE {
        return Claim::Refused(ClaimError::TooMany);
    }
    Claim::Granted
}

/// How many live endpoint records `owner` holds.
pub fn live_endpoints_of(state: &ClusterState, owner: &NodeId) -> usize {
    state.endpoints.live_from(&(*owner, String::new())).take_while(|((of, _), _)| of == owner).count()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Instant;

    use super::*;
    use crate::state::{BlockClaim, Change, Delta, NetworkRecord, Version};

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 16])
    }

    fn apply(state: &mut ClusterState, lamport: u64, writer: u8, change: Change) {
        let delta = Delta { version: Version { lamport, node: id(writer) }, change };
        state.apply(delta, Instant::now()).unwrap();
    }

    /// Network "n" (10.1.0.0/24) with block 0 granted to node 1 and block 1 to node 2.
    fn granted() -> ClusterState {
        let mut state = ClusterState::default();
        let network =
            NetworkRecord { subnet: "10.1.0.0/24".parse().unwrap(), vni: 5000, options: Default::default() };
        apply(&mut state, 1, 9, Change::Network { name: "n".into(), record: Some(network) });
        for (index, owner) in [(0, 1), (1, 2)] {
            let claim = Some(BlockClaim { owner: id(owner) });
            apply(&mut state, 2 + u64::from(index), 9, Change::Block { network: "n".into(), index, claim });
        }
        state
    }

    fn at(address: [u8; 4]) -> EndpointRecord {
        EndpointRecord {
            network: "n".into(),
            address: Ipv4Addr::from(address),
            service: None,
            task: None,
            terminating: false,
            aliases: Vec::new(),
            health: Default::default(),
        }
    }

    #[test]
    fn an_address_is_claimed_only_from_the_claimants_own_block() {
        let state = granted();
        assert_eq!(endpoint(&state, &id(1), "e", &at([10, 1, 0, 2])), Claim::Granted);
        assert_eq!(endpoint(&state, &id(2), "e", &at([10, 1, 0, 17])), Claim::Granted);
        assert_eq!(
            endpoint(&state, &id(1), "e", &at([10, 1, 0, 17])),
            Claim::Refused(ClaimError::OthersBlock(id(2))),
            "another node's container address"
        );
        assert_eq!(
            endpoint(&state, &id(1), "e", &at([192, 0, 2, 1])),
            Claim::Refused(ClaimError::OutsideSubnet),
            "an underlay address"
        );
        assert_eq!(endpoint(&state, &id(1), "e", &at([10, 1, 0, 1])), Claim::Refused(ClaimError::Reserved));
        assert_eq!(endpoint(&state, &id(1), "e", &at([10, 1, 0, 0])), Claim::Refused(ClaimError::Reserved));
        assert_eq!(
            endpoint(&state, &id(1), "e", &at([10, 1, 0, 40])),
            Claim::Unproven,
            "block 2: not granted yet"
        );
        let elsewhere = EndpointRecord { network: "m".into(), ..at([10, 2, 0, 2]) };
        assert_eq!(endpoint(&state, &id(1), "e", &elsewhere), Claim::Unproven, "a network not heard of yet");
    }

    #[test]
    fn a_node_holds_at_most_its_bound_of_endpoints() {
        let mut state = granted();
        // The bound counts live records of any network; a tombstone does not count.
        for n in 0..MAX_ENDPOINTS_PER_NODE {
            let change =
                Change::Endpoint { owner: id(1), id: format!("e{n}"), record: Some(at([10, 1, 0, 2])) };
            apply(&mut state, 10 + n as u64, 1, change);
        }
        assert_eq!(live_endpoints_of(&state, &id(1)), MAX_ENDPOINTS_PER_NODE);
        assert_eq!(live_endpoints_of(&state, &id(2)), 0);
        assert_eq!(endpoint(&state, &id(1), "new", &at([10, 1, 0, 3])), Claim::Refused(ClaimError::TooMany));
        assert_eq!(
            endpoint(&state, &id(1), "e7", &at([10, 1, 0, 3])),
            Claim::Granted,
            "a rewrite of one held"
        );
        assert_eq!(endpoint(&state, &id(2), "new", &at([10, 1, 0, 18])), Claim::Granted, "others unaffected");
        apply(&mut state, 5000, 1, Change::Endpoint { owner: id(1), id: "e7".into(), record: None });
        assert_eq!(endpoint(&state, &id(1), "new", &at([10, 1, 0, 3])), Claim::Granted, "room again");
    }

    #[test]
    fn removals_of_records_never_seen_are_bounded() {
        let mut state = granted();
        for n in 0..MAX_ENDPOINT_ENTRIES_PER_NODE {
            apply(
                &mut state,
                10 + n as u64,
                1,
                Change::Endpoint { owner: id(1), id: format!("g{n}"), record: None },
            );
        }
        assert_eq!(endpoint_removal(&state, &id(1), "another"), Claim::Refused(ClaimError::TooMany));
        assert_eq!(endpoint_removal(&state, &id(1), "g3"), Claim::Granted, "one held: its removal again");
        assert_eq!(endpoint_removal(&state, &id(2), "another"), Claim::Granted, "others unaffected");
    }
}
