//! How what the managers decided reaches every node: the Raft leader writes it into the gossip
//! state, which spreads it (workers read only gossip). This file is the rule, pure: the gossip
//! writes that make a state say what `Decided` says.
//!
//! - A record the managers decided and the state lacks, or holds otherwise, is written.
//! - A cluster-wide record the state holds and the managers did not decide is removed (a write
//!   from before the managers' group, or from a manager that has lost its lease since).
//! - A record last written by a node the managers removed is written again before the removal
//!   itself: a removal forgets everything its node wrote (`state::cluster`), and what the
//!   managers decided must outlive the node that happened to mirror it.
//! - Removals come last, in the same batch as the rewrites.
//!
//! Only a leader that heard from a majority within its lease mirrors (`lifecycle`): a cut-off
//! old leader never undoes what the new one decided.

use std::collections::BTreeMap;

use super::decisions::Decided;
use crate::identity::NodeId;
use crate::state::table::Table;
use crate::state::{BlockClaim, Change, ClusterState, Revocation};

/// The gossip writes that make `state` say what `decided` says; `me` is the writer (never
/// written as removed: a manager cannot remove itself).
pub fn changes(state: &ClusterState, decided: &Decided, me: NodeId) -> Vec<Change> {
    let mut out = Vec::new();
    let stale = |writer: &NodeId| decided.revoked.contains(writer) && *writer != me;

    if let Some(secrets) = &decided.secrets {
        let held = state.secrets.entry(&());
        if held.is_none_or(|e| e.value.as_ref() != Some(secrets) || stale(&e.version.node)) {
            out.push(Change::Secrets { value: Some(secrets.clone()) });
        }
    }
    let roles: BTreeMap<NodeId, _> = decided.roles.iter().map(|(id, r)| (*id, *r)).collect();
    sync(&state.roles, &roles, &decided.revoked, &stale, &mut out, |id, record| Change::Role {
        id: *id,
        record,
    });
    sync(&state.availability, &decided.availability, &decided.revoked, &stale, &mut out, |id, value| {
        Change::Availability { id: *id, value }
    });
    let none = Default::default();
    sync(&state.networks, &decided.networks, &none, &stale, &mut out, |name, record| Change::Network {
        name: name.clone(),
        record,
    });
    let blocks: BTreeMap<(String, u32), BlockClaim> =
        decided.blocks.iter().map(|(key, owner)| (key.clone(), BlockClaim { owner: *owner })).collect();
    sync(&state.blocks, &blocks, &none, &stale, &mut out, |(network, index), claim| Change::Block {
        network: network.clone(),
        index: *index,
        claim,
    });
    sync(&state.services, &decided.services, &none, &stale, &mut out, |name, record| Change::Service {
        name: name.clone(),
        record,
    });
    for id in &decided.revoked {
        if !state.is_revoked(id) && *id != me {
            out.push(Change::Revocation { id: *id, record: Some(Revocation { by: me }) });
        }
    }
    out
}

/// Writes into `out` what makes `table` hold exactly `wanted`: missing, different or stale
/// entries written, extra ones removed (except those keyed by a removed node: its removal
/// takes them).
fn sync<K: Ord + Clone + KeyedByNode, V: Clone + PartialEq>(
    table: &Table<K, V>,
    wanted: &BTreeMap<K, V>,
    removed: &std::collections::BTreeSet<NodeId>,
    stale: &impl Fn(&NodeId) -> bool,
    out: &mut Vec<Change>,
    change: impl Fn(&K, Option<V>) -> Change,
) {
    for (key, value) in wanted {
        let held = table.entry(key);
        if held.is_none_or(|e| e.value.as_ref() != Some(value) || stale(&e.version.node)) {
            out.push(change(key, Some(value.clone())));
        }
    }
    for (key, _) in table.live() {
        if !wanted.contains_key(key) && !key.node().is_some_and(|n| removed.contains(&n)) {
            out.push(change(key, None));
        }
    }
}

/// The node a table's key names, if it names one (roles and availability are keyed by node).
trait KeyedByNode {
    fn node(&self) -> Option<NodeId>;
}

impl KeyedByNode for NodeId {
    fn node(&self) -> Option<NodeId> {
        Some(*self)
    }
}

impl KeyedByNode for String {
    fn node(&self) -> Option<NodeId> {
        None
    }
}

impl KeyedByNode for (String, u32) {
    fn node(&self) -> Option<NodeId> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::state::validate::vni_for;
    use crate::state::{Delta, NetworkRecord, Role, RoleRecord, Version};

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 16])
    }

    fn network(subnet: &str, name: &str) -> NetworkRecord {
        NetworkRecord { subnet: subnet.parse().unwrap(), vni: vni_for(name), options: Default::default() }
    }

    fn apply_all(state: &mut ClusterState, writer: u8, lamport: &mut u64, changes: Vec<Change>) {
        for change in changes {
            *lamport += 1;
            let delta = Delta { version: Version { lamport: *lamport, node: id(writer) }, change };
            state.apply(delta, Instant::now()).unwrap();
        }
    }

    #[test]
    fn the_state_ends_up_saying_what_was_decided_and_then_nothing_is_written() {
        let mut decided = Decided::default();
        decided.networks.insert("front".into(), network("10.1.0.0/24", "front"));
        decided.blocks.insert(("front".into(), 3), id(2));
        decided.roles.insert(id(1), RoleRecord { role: Role::Manager, previously_manager: false });
        let mut state = ClusterState::default();
        let mut lamport = 0;
        // Something the managers never decided (written before they formed a group).
        apply_all(
            &mut state,
            1,
            &mut lamport,
            vec![Change::Network { name: "legacy".into(), record: Some(network("10.9.0.0/24", "legacy")) }],
        );
        let first = changes(&state, &decided, id(1));
        assert_eq!(first.len(), 4, "{first:?}");
        apply_all(&mut state, 1, &mut lamport, first);
        assert!(state.networks.get(&"legacy".to_string()).is_none());
        assert_eq!(state.blocks.get(&("front".to_string(), 3)).map(|c| c.owner), Some(id(2)));
        assert!(changes(&state, &decided, id(1)).is_empty(), "in sync: nothing more to write");
    }

    #[test]
    fn what_a_removed_node_mirrored_is_written_again_before_its_removal() {
        let mut decided = Decided::default();
        decided.networks.insert("front".into(), network("10.1.0.0/24", "front"));
        let mut state = ClusterState::default();
        let mut lamport = 0;
        // Node 3 was the leader that mirrored the network; then the managers removed it.
        let first = changes(&state, &decided, id(3));
        apply_all(&mut state, 3, &mut lamport, first);
        decided.revoked.insert(id(3));
        let batch = changes(&state, &decided, id(1));
        assert!(matches!(batch.first(), Some(Change::Network { .. })), "{batch:?}");
        assert!(matches!(batch.last(), Some(Change::Revocation { .. })), "{batch:?}");
        apply_all(&mut state, 1, &mut lamport, batch);
        assert!(state.is_revoked(&id(3)));
        assert!(state.networks.get(&"front".to_string()).is_some(), "the network outlived its mirror");
        assert!(changes(&state, &decided, id(1)).is_empty());
    }

    #[test]
    fn an_imported_gossip_state_is_left_as_it_is_but_for_the_founders_role() {
        // A cluster from before the managers' group: a network, a node's own block claim, a
        // founder (manager by its grant, no role record), secrets.
        let mut state = ClusterState::default();
        let mut lamport = 0;
        let founder = crate::state::NodeRecord {
            name: "n1".into(),
            gossip_addr: "10.0.0.1:7946".parse().unwrap(),
            left: false,
            departed: None,
            cert: Default::default(),
            founder: Some(crate::state::Signature([1; 64])),
            keyring: Default::default(),
            wireguard: None,
        };
        apply_all(
            &mut state,
            1,
            &mut lamport,
            vec![
                Change::Node { id: id(1), record: Some(founder) },
                Change::Network { name: "front".into(), record: Some(network("10.1.0.0/24", "front")) },
            ],
        );
        apply_all(
            &mut state,
            2,
            &mut lamport,
            vec![Change::Block {
                network: "front".into(),
                index: 5,
                claim: Some(BlockClaim { owner: id(2) }),
            }],
        );
        let decided = Decided::from_state(&state);
        assert_eq!(decided.blocks.get(&("front".to_string(), 5)), Some(&id(2)));
        assert_eq!(decided.managers(), std::collections::BTreeSet::from([id(1)]));
        let batch = changes(&state, &decided, id(1));
        assert!(matches!(batch.as_slice(), [Change::Role { id: who, .. }] if *who == id(1)), "{batch:?}");
    }

    #[test]
    fn a_manager_never_writes_its_own_removal() {
        let mut decided = Decided::default();
        decided.revoked.insert(id(1));
        assert!(changes(&ClusterState::default(), &decided, id(1)).is_empty());
    }
}
