//! The tables meshd replicates and the rules that merge deltas into them.
//!
//! | table | key | written by | merge |
//! |---|---|---|---|
//! | nodes | node ID | that node only | LWW |
//! | availability | node ID | any node (`node update`) | LWW |
//! | secrets | (one register) | any node (`join-token --rotate`) | LWW |
//! | endpoints | (owner node, endpoint ID) | the owner only | LWW; hidden while the owner is down, removed when it leaves |
//! | networks | name | any node (`network create/rm`) | LWW |
//! | address blocks | (network, block) | the claiming node | LWW; see `network::ipam` |
//! | services | name | any node (`service create/rm`) | LWW; a published port goes to its earliest claim |
//!
//! Ownership is checked on merge: a delta for a node-owned entry must name that node as its
//! writer. Both fields come from the sender, so this catches mistakes, not a hostile member:
//! records are not signed yet.

use std::time::{Duration, Instant};

use super::delta::{Change, Delta, DeltaError};
use super::records::{
    Availability, BlockClaim, ClusterSecrets, EndpointRecord, Liveness, NetworkRecord, NodeRecord,
    ServiceRecord,
};
use super::table::{Applied, Entry, Table};
use super::version::Version;
use crate::identity::NodeId;

#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    pub nodes: Table<NodeId, NodeRecord>,
    pub availability: Table<NodeId, Availability>,
    pub secrets: Table<(), ClusterSecrets>,
    pub endpoints: Table<(NodeId, String), EndpointRecord>,
    pub networks: Table<String, NetworkRecord>,
    pub blocks: Table<(String, u32), BlockClaim>,
    pub services: Table<String, ServiceRecord>,
}

impl ClusterState {
    /// Merges one delta. Idempotent and order-independent (see [`Table`]).
    pub fn apply(&mut self, delta: Delta, now: Instant) -> Result<Applied, DeltaError> {
        let Delta { version, change } = delta;
        match change {
            Change::Node { id, record } => {
                check_owner(id, &version)?;
                let applied = self.nodes.apply(id, Entry { version, value: record }, now);
                if applied == Applied::Newer {
                    if let Some(departed) = self.departure(&id) {
                        // Leaving on purpose takes the node's endpoints with it, at once: every
                        // one written before the departure.
                        self.forget_endpoints_of(&id, Some(departed));
                    }
                }
                Ok(applied)
            }
            Change::Availability { id, value } => {
                Ok(self.availability.apply(id, Entry { version, value }, now))
            }
            Change::Secrets { value } => Ok(self.secrets.apply((), Entry { version, value }, now)),
            Change::Endpoint { owner, id, record } => {
                check_owner(owner, &version)?;
                if self.departure(&owner).is_some_and(|departed| departed > version) {
                    return Err(DeltaError::OwnerLeft { owner, id });
                }
                Ok(self.endpoints.apply((owner, id), Entry { version, value: record }, now))
            }
            Change::Network { name, record } => {
                Ok(self.networks.apply(name, Entry { version, value: record }, now))
            }
            Change::Block { network, index, claim } => {
                // A claim is written by the node it names; a release (tombstone) by anyone
                // (the claimer, or a node cleaning up after a departed one).
                if let Some(claim) = &claim {
                    check_owner(claim.owner, &version)?;
                }
                Ok(self.blocks.apply((network, index), Entry { version, value: claim }, now))
            }
            Change::Service { name, record } => {
                Ok(self.services.apply(name, Entry { version, value: record }, now))
            }
        }
    }

    /// Every entry (tombstones included) as deltas: what a push-pull exchange carries.
    pub fn dump(&self) -> Vec<Delta> {
        let mut out = Vec::with_capacity(
            self.nodes.len()
                + self.availability.len()
                + self.secrets.len()
                + self.endpoints.len()
                + self.networks.len()
                + self.blocks.len()
                + self.services.len(),
        );
        for (id, e) in self.nodes.entries() {
            out.push(Delta { version: e.version, change: Change::Node { id: *id, record: e.value.clone() } });
        }
        for (id, e) in self.availability.entries() {
            out.push(Delta { version: e.version, change: Change::Availability { id: *id, value: e.value } });
        }
        for (_, e) in self.secrets.entries() {
            out.push(Delta { version: e.version, change: Change::Secrets { value: e.value.clone() } });
        }
        for ((owner, id), e) in self.endpoints.entries() {
            out.push(Delta {
                version: e.version,
                change: Change::Endpoint { owner: *owner, id: id.clone(), record: e.value.clone() },
            });
        }
        for (name, e) in self.networks.entries() {
            out.push(Delta {
                version: e.version,
                change: Change::Network { name: name.clone(), record: e.value.clone() },
            });
        }
        for ((network, index), e) in self.blocks.entries() {
            out.push(Delta {
                version: e.version,
                change: Change::Block { network: network.clone(), index: *index, claim: e.value.clone() },
            });
        }
        for (name, e) in self.services.entries() {
            out.push(Delta {
                version: e.version,
                change: Change::Service { name: name.clone(), record: e.value.clone() },
            });
        }
        out
    }

    /// The newest version anywhere in the state (to seed the Lamport clock after a load).
    pub fn max_version(&self) -> Option<Version> {
        self.dump().into_iter().map(|d| d.version).max()
    }

    /// Endpoints whose owner is alive or suspect. A down owner's endpoints are hidden, not
    /// deleted: when the owner comes back they are visible again with no write needed (the
    /// failure mode of moby#53141 was deleting them on a short disconnect).
    pub fn visible_endpoints<'a>(
        &'a self,
        liveness: impl Fn(&NodeId) -> Liveness + 'a,
    ) -> impl Iterator<Item = (&'a (NodeId, String), &'a EndpointRecord)> + 'a {
        self.endpoints
            .live()
            .filter(move |((owner, _), _)| matches!(liveness(owner), Liveness::Alive | Liveness::Suspect))
    }

    /// The version of `node`'s last departure, if it ever left: its current record if that says
    /// it left, or the departure a later record carries forward.
    pub fn departure(&self, node: &NodeId) -> Option<Version> {
        let entry = self.nodes.entry(node)?;
        let record = entry.value.as_ref()?;
        if record.left {
            Some(entry.version)
        } else {
            record.departed
        }
    }

    /// Whether `node` has announced that it left on purpose.
    pub fn has_left(&self, node: &NodeId) -> bool {
        self.nodes.get(node).is_some_and(|r| r.left)
    }

    /// The node's availability (active unless someone drained it).
    pub fn availability_of(&self, node: &NodeId) -> Availability {
        self.availability.get(node).copied().unwrap_or(Availability::Active)
    }

    /// Reaps tombstones older than `after`, and nodes that left more than `after` ago together
    /// with everything they owned.
    pub fn reap(&mut self, now: Instant, after: Duration) -> usize {
        let mut reaped = self.nodes.reap(now, after)
            + self.availability.reap(now, after)
            + self.endpoints.reap(now, after);
        reaped +=
            self.secrets.reap(now, after) + self.networks.reap(now, after) + self.blocks.reap(now, after);
        reaped += self.services.reap(now, after);
        reaped
    }

    /// Removes every trace of `node` (its record, availability and endpoints). Used when a node
    /// that left, or has been down past the reap delay, is forgotten.
    pub fn forget_node(&mut self, node: &NodeId) {
        self.nodes.forget(node);
        self.availability.forget(node);
        self.forget_endpoints_of(node, None);
        let blocks: Vec<(String, u32)> =
            self.blocks.live().filter(|(_, claim)| claim.owner == *node).map(|(k, _)| k.clone()).collect();
        for key in blocks {
            self.blocks.forget(&key);
        }
    }

    /// Forgets `node`'s endpoints, or only those older than `before`.
    fn forget_endpoints_of(&mut self, node: &NodeId, before: Option<Version>) {
        let keys: Vec<(NodeId, String)> = self
            .endpoints
            .entries()
            .filter(|((owner, _), e)| owner == node && before.is_none_or(|v| e.version < v))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.endpoints.forget(&key);
        }
    }
}

fn check_owner(owner: NodeId, version: &Version) -> Result<(), DeltaError> {
    if version.node == owner {
        Ok(())
    } else {
        Err(DeltaError::NotOwner { owner, writer: version.node })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 16])
    }

    fn v(lamport: u64, node: u8) -> Version {
        Version { lamport, node: id(node) }
    }

    fn node_delta(n: u8, lamport: u64, left: bool) -> Delta {
        Delta {
            version: v(lamport, n),
            change: Change::Node {
                id: id(n),
                record: Some(NodeRecord {
                    name: format!("n{n}"),
                    gossip_addr: format!("10.0.0.{n}:7946").parse().unwrap(),
                    left,
                    departed: None,
                }),
            },
        }
    }

    fn endpoint_delta(owner: u8, lamport: u64, name: &str, present: bool) -> Delta {
        Delta {
            version: v(lamport, owner),
            change: Change::Endpoint {
                owner: id(owner),
                id: name.to_string(),
                record: present.then(|| EndpointRecord {
                    network: "front".into(),
                    address: Ipv4Addr::new(10, 9, 0, owner),
                    service: Some("web".into()),
                    task: Some(name.into()),
                    terminating: false,
                }),
            },
        }
    }

    #[test]
    fn availability_is_last_writer_wins_across_writers() {
        let now = Instant::now();
        let mut state = ClusterState::default();
        let drain = Delta {
            version: v(10, 2),
            change: Change::Availability { id: id(1), value: Some(Availability::Drain) },
        };
        let active = Delta {
            version: v(9, 3),
            change: Change::Availability { id: id(1), value: Some(Availability::Active) },
        };
        state.apply(drain.clone(), now).unwrap();
        assert_eq!(state.apply(active, now).unwrap(), Applied::Stale);
        assert_eq!(state.apply(drain, now).unwrap(), Applied::Duplicate);
        assert_eq!(state.availability_of(&id(1)), Availability::Drain);
        assert_eq!(state.availability_of(&id(7)), Availability::Active, "default");
    }

    #[test]
    fn owned_entries_must_be_written_by_their_owner() {
        let now = Instant::now();
        let mut state = ClusterState::default();
        let mut forged = endpoint_delta(1, 5, "t1", true);
        forged.version.node = id(2);
        assert!(matches!(state.apply(forged, now), Err(DeltaError::NotOwner { .. })));
        let mut forged_node = node_delta(1, 5, false);
        forged_node.version.node = id(3);
        assert!(matches!(state.apply(forged_node, now), Err(DeltaError::NotOwner { .. })));
        assert!(state.endpoints.is_empty() && state.nodes.is_empty(), "nothing changed");
    }

    #[test]
    fn a_down_owners_endpoints_are_hidden_then_restored() {
        let now = Instant::now();
        let mut state = ClusterState::default();
        state.apply(node_delta(1, 1, false), now).unwrap();
        state.apply(endpoint_delta(1, 2, "t1", true), now).unwrap();
        state.apply(endpoint_delta(2, 2, "t2", true), now).unwrap();

        let visible =
            |state: &ClusterState, down: Option<u8>| -> Vec<String> {
                state
                    .visible_endpoints(move |n| {
                        if Some(*n) == down.map(id) {
                            Liveness::Down
                        } else {
                            Liveness::Alive
                        }
                    })
                    .map(|((_, name), _)| name.clone())
                    .collect()
            };
        assert_eq!(visible(&state, None), ["t1", "t2"]);
        assert_eq!(visible(&state, Some(1)), ["t2"], "hidden while down");
        assert_eq!(state.endpoints.len(), 2, "but kept");
        assert_eq!(visible(&state, None), ["t1", "t2"], "back with no new write");
    }

    #[test]
    fn leaving_takes_the_endpoints_and_stale_ones_do_not_return() {
        let now = Instant::now();
        let mut state = ClusterState::default();
        state.apply(node_delta(1, 1, false), now).unwrap();
        state.apply(endpoint_delta(1, 2, "t1", true), now).unwrap();
        state.apply(node_delta(1, 3, true), now).unwrap();
        assert!(state.has_left(&id(1)));
        assert!(state.endpoints.is_empty());
        // The endpoint's delta arrives again late (gossip retransmission): refused.
        assert!(matches!(
            state.apply(endpoint_delta(1, 2, "t1", true), now),
            Err(DeltaError::OwnerLeft { .. })
        ));
        assert!(state.endpoints.is_empty());
        // The same node joins again later: its new writes are welcome, the old ones stay gone.
        let mut rejoin = node_delta(1, 10, false);
        if let Change::Node { record: Some(record), .. } = &mut rejoin.change {
            record.departed = Some(v(3, 1));
        }
        state.apply(rejoin, now).unwrap();
        state.apply(endpoint_delta(1, 11, "t9", true), now).unwrap();
        assert!(matches!(
            state.apply(endpoint_delta(1, 2, "t1", true), now),
            Err(DeltaError::OwnerLeft { .. })
        ));
        assert_eq!(state.endpoints.len(), 1);
    }

    #[test]
    fn dump_and_reapply_in_any_order_converges() {
        let now = Instant::now();
        let deltas = [
            node_delta(1, 1, false),
            node_delta(2, 1, false),
            endpoint_delta(1, 2, "a", true),
            endpoint_delta(1, 3, "a", false),
            endpoint_delta(2, 4, "b", true),
            Delta {
                version: v(5, 2),
                change: Change::Availability { id: id(1), value: Some(Availability::Drain) },
            },
        ];
        let mut forward = ClusterState::default();
        for d in deltas.iter().cloned() {
            let _ = forward.apply(d, now);
        }
        let mut backward = ClusterState::default();
        for d in deltas.iter().rev().cloned() {
            let _ = backward.apply(d, now);
        }
        // Twice, for duplicates.
        for d in deltas.iter().cloned() {
            let _ = backward.apply(d, now);
        }
        assert_eq!(forward.dump(), backward.dump());

        let mut copy = ClusterState::default();
        for d in forward.dump() {
            copy.apply(d, now).unwrap();
        }
        assert_eq!(copy.dump(), forward.dump());
        assert_eq!(forward.max_version(), Some(v(5, 2)));
    }

    #[test]
    fn tombstones_are_reaped_and_forgetting_a_node_removes_all_of_it() {
        let start = Instant::now();
        let mut state = ClusterState::default();
        state.apply(node_delta(1, 1, false), start).unwrap();
        state.apply(endpoint_delta(1, 2, "a", true), start).unwrap();
        state.apply(endpoint_delta(1, 3, "a", false), start).unwrap();
        state.apply(endpoint_delta(1, 4, "b", true), start).unwrap();
        assert_eq!(state.reap(start + Duration::from_secs(1), Duration::from_secs(60)), 0);
        assert_eq!(state.reap(start + Duration::from_secs(61), Duration::from_secs(60)), 1);
        assert_eq!(state.endpoints.len(), 1);
        state.forget_node(&id(1));
        assert!(state.nodes.is_empty() && state.endpoints.is_empty());
    }
}
