//! The tables meshd replicates and the rules that merge deltas into them.
//!
//! | table | key | written by | merge |
//! |---|---|---|---|
//! | nodes | node ID | that node only | LWW |
//! | availability | node ID | any node (`node update`) | LWW |
//! | secrets | (one register) | any node (`join-token --rotate`) | LWW |
//! | endpoints | (owner node, endpoint ID) | the owner only | LWW; hidden while the owner is down, removed when it leaves |
//! | networks | name | any node (`network create/rm`) | LWW |
//! | address blocks | (network, block) | managers (the Raft leader's grants) | LWW; see `network::ipam` |
//! | services | name | any node (`service create/rm`) | LWW; a published port goes to its earliest claim |
//!
//! | roles | node ID | managers (`node promote/demote`) | LWW |
//! | revocations | node ID | managers (`node rm`) | never reaped; everything the node wrote goes |
//! | managers | node ID | that manager only (its view of the Raft group) | LWW |
//!
//! Cluster-wide records (networks, services, blocks, availability, secrets, roles, revocations)
//! are decided by the managers' Raft group (`manager`) and written here by its leader: gossip
//! only spreads them.
//!
//! Ownership is checked here too (a node-owned entry names its owner as writer), but what makes
//! it hold against a hostile member is `trust::admission`, which checks every delta's signature
//! against its writer's certified key, and the writer's role, before it is merged.

use std::time::{Duration, Instant};

use super::delta::{Change, Delta, DeltaError, DeltaKey, SignedDelta};
use super::records::{
    Availability, BlockClaim, ClusterSecrets, EndpointRecord, Liveness, ManagerStatus, NetworkRecord,
    NodeRecord, Revocation, Role, RoleRecord, ServiceRecord,
};
use super::signature::Signature;
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
    pub roles: Table<NodeId, RoleRecord>,
    pub revocations: Table<NodeId, Revocation>,
    pub managers: Table<NodeId, ManagerStatus>,
}

impl ClusterState {
    /// Merges one delta that carries no signature (the merge rules' own tests).
    pub fn apply(&mut self, delta: Delta, now: Instant) -> Result<Applied, DeltaError> {
        self.apply_signed(SignedDelta { delta, signature: Signature::NONE }, now)
    }

    /// Merges one delta, keeping its signature with the entry so it can be passed on as it
    /// came. Idempotent and order-independent (see [`Table`]). The signature is not checked
    /// here: `trust::admission` does that before anything reaches the state.
    pub fn apply_signed(&mut self, signed: SignedDelta, now: Instant) -> Result<Applied, DeltaError> {
        let SignedDelta { delta: Delta { version, change }, signature } = signed;
        if self.revocations.get(&version.node).is_some() {
            return Err(DeltaError::Revoked(version.node));
        }
        match change {
            Change::Node { id, record } => {
                check_owner(id, &version)?;
                let applied = self.nodes.apply(id, Entry { version, value: record, signature }, now);
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
                Ok(self.availability.apply(id, Entry { version, value, signature }, now))
            }
            Change::Secrets { value } => Ok(self.secrets.apply((), Entry { version, value, signature }, now)),
            Change::Endpoint { owner, id, record } => {
                check_owner(owner, &version)?;
                if self.departure(&owner).is_some_and(|departed| departed > version) {
                    return Err(DeltaError::OwnerLeft { owner, id });
                }
                Ok(self.endpoints.apply((owner, id), Entry { version, value: record, signature }, now))
            }
            Change::Network { name, record } => {
                Ok(self.networks.apply(name, Entry { version, value: record, signature }, now))
            }
            Change::Block { network, index, claim } => {
                // Granted by the managers (or, before them, claimed by the node it names):
                // trust::admission decides who may write it.
                Ok(self.blocks.apply((network, index), Entry { version, value: claim, signature }, now))
            }
            Change::Service { name, record } => {
                Ok(self.services.apply(name, Entry { version, value: record, signature }, now))
            }
            Change::Role { id, record } => {
                let demoted = record.is_some_and(|r| r.role == Role::Worker);
                let applied = self.roles.apply(id, Entry { version, value: record, signature }, now);
                if applied == Applied::Newer && demoted {
                    // What it wrote as a manager after the demotion (a write racing the news of
                    // it) does not stand, wherever it was merged first.
                    self.forget_cluster_wide_since(&id, version);
                }
                Ok(applied)
            }
            Change::Revocation { id, record } => {
                let applied = self.revocations.apply(id, Entry { version, value: record, signature }, now);
                if self.revocations.get(&id).is_some() {
                    // Removed: its own records go, and so does anything it was the last to write
                    // (the manager that removed it wrote again whatever must stay).
                    self.forget_node(&id);
                    self.forget_writer(&id);
                }
                Ok(applied)
            }
            Change::Manager { id, status } => {
                check_owner(id, &version)?;
                Ok(self.managers.apply(id, Entry { version, value: status, signature }, now))
            }
        }
    }

    /// Every entry (tombstones included) as deltas: what the merge rules' tests compare.
    pub fn dump(&self) -> Vec<Delta> {
        self.dump_signed().into_iter().map(|signed| signed.delta).collect()
    }

    /// Every entry (tombstones included) with its writer's signature: what a push-pull exchange
    /// and the state file carry. Nodes first: a receiver needs a writer's certificate (in its
    /// node record) before it can check anything that writer signed.
    pub fn dump_signed(&self) -> Vec<SignedDelta> {
        let mut out = Vec::with_capacity(self.len());
        fn push<K: Ord + Clone, V: Clone>(
            out: &mut Vec<SignedDelta>,
            table: &Table<K, V>,
            change: impl Fn(&K, Option<V>) -> Change,
        ) {
            for (key, e) in table.entries() {
                out.push(SignedDelta {
                    delta: Delta { version: e.version, change: change(key, e.value.clone()) },
                    signature: e.signature,
                });
            }
        }
        push(&mut out, &self.nodes, |id, record| Change::Node { id: *id, record });
        push(&mut out, &self.roles, |id, record| Change::Role { id: *id, record });
        push(&mut out, &self.revocations, |id, record| Change::Revocation { id: *id, record });
        push(&mut out, &self.availability, |id, value| Change::Availability { id: *id, value });
        push(&mut out, &self.secrets, |_, value| Change::Secrets { value });
        push(&mut out, &self.networks, |name, record| Change::Network { name: name.clone(), record });
        push(&mut out, &self.services, |name, record| Change::Service { name: name.clone(), record });
        push(&mut out, &self.blocks, |(network, index), claim| Change::Block {
            network: network.clone(),
            index: *index,
            claim,
        });
        push(&mut out, &self.endpoints, |(owner, id), record| Change::Endpoint {
            owner: *owner,
            id: id.clone(),
            record,
        });
        push(&mut out, &self.managers, |id, status| Change::Manager { id: *id, status });
        out
    }

    /// Entries in all tables, tombstones included.
    pub fn len(&self) -> usize {
        self.nodes.len()
            + self.availability.len()
            + self.secrets.len()
            + self.endpoints.len()
            + self.networks.len()
            + self.blocks.len()
            + self.services.len()
            + self.roles.len()
            + self.revocations.len()
            + self.managers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The role of `node`: its role record, or manager for the cluster's founder, or worker.
    pub fn role_of(&self, node: &NodeId) -> Role {
        match self.roles.get(node) {
            Some(record) => record.role,
            None if self.nodes.get(node).is_some_and(|n| n.founder.is_some()) => Role::Manager,
            None => Role::Worker,
        }
    }

    /// The version of the entry `key` names (tombstones too), if there is one: a delta no newer
    /// than it would change nothing, and need not be checked at all.
    pub fn version_of(&self, key: &DeltaKey) -> Option<Version> {
        match key {
            DeltaKey::Node(id) => self.nodes.entry(id).map(|e| e.version),
            DeltaKey::Availability(id) => self.availability.entry(id).map(|e| e.version),
            DeltaKey::Secrets => self.secrets.entry(&()).map(|e| e.version),
            DeltaKey::Endpoint(owner, id) => self.endpoints.entry(&(*owner, id.clone())).map(|e| e.version),
            DeltaKey::Network(name) => self.networks.entry(name).map(|e| e.version),
            DeltaKey::Block(network, index) => {
                self.blocks.entry(&(network.clone(), *index)).map(|e| e.version)
            }
            DeltaKey::Service(name) => self.services.entry(name).map(|e| e.version),
            DeltaKey::Role(id) => self.roles.entry(id).map(|e| e.version),
            DeltaKey::Revocation(id) => self.revocations.entry(id).map(|e| e.version),
            DeltaKey::Manager(id) => self.managers.entry(id).map(|e| e.version),
        }
    }

    /// Whether `node` has been removed from the cluster.
    pub fn is_revoked(&self, node: &NodeId) -> bool {
        self.revocations.get(node).is_some()
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
        reaped +=
            self.services.reap(now, after) + self.roles.reap(now, after) + self.managers.reap(now, after);
        // Revocations are never reaped: one must outlive the certificate it revokes.
        reaped
    }

    /// Removes every trace of `node` (its record, availability and endpoints). Used when a node
    /// that left, or has been down past the reap delay, is forgotten.
    pub fn forget_node(&mut self, node: &NodeId) {
        self.nodes.forget(node);
        self.availability.forget(node);
        self.roles.forget(node);
        self.managers.forget(node);
        self.forget_endpoints_of(node, None);
        let blocks: Vec<(String, u32)> =
            self.blocks.live().filter(|(_, claim)| claim.owner == *node).map(|(k, _)| k.clone()).collect();
        for key in blocks {
            self.blocks.forget(&key);
        }
    }

    /// Forgets every entry last written by `writer` (after its removal: nothing it signed
    /// stands; what must stay was written again by the manager that removed it).
    fn forget_writer(&mut self, writer: &NodeId) {
        for key in self.availability.written_by(writer) {
            self.availability.forget(&key);
        }
        for key in self.secrets.written_by(writer) {
            self.secrets.forget(&key);
        }
        for key in self.networks.written_by(writer) {
            self.networks.forget(&key);
        }
        for key in self.services.written_by(writer) {
            self.services.forget(&key);
        }
        for key in self.roles.written_by(writer) {
            self.roles.forget(&key);
        }
        for key in self.blocks.written_by(writer) {
            self.blocks.forget(&key);
        }
        for key in self.endpoints.written_by(writer) {
            self.endpoints.forget(&key);
        }
        for key in self.managers.written_by(writer) {
            self.managers.forget(&key);
        }
    }

    /// Forgets the cluster-wide entries `writer` wrote at `since` or later.
    fn forget_cluster_wide_since(&mut self, writer: &NodeId, since: Version) {
        fn forget<K: Ord + Clone, V: Clone>(table: &mut Table<K, V>, writer: &NodeId, since: Version) {
            let late: Vec<K> = table
                .written_by(writer)
                .into_iter()
                .filter(|k| table.entry(k).is_some_and(|e| e.version >= since))
                .collect();
            for key in late {
                table.forget(&key);
            }
        }
        forget(&mut self.availability, writer, since);
        forget(&mut self.secrets, writer, since);
        forget(&mut self.networks, writer, since);
        forget(&mut self.services, writer, since);
        forget(&mut self.roles, writer, since);
        forget(&mut self.revocations, writer, since);
        forget(&mut self.blocks, writer, since);
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
                    cert: Default::default(),
                    founder: None,
                    keyring: Default::default(),
                    wireguard: None,
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
                    aliases: Vec::new(),
                    health: Default::default(),
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
