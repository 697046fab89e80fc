//! `meshd --force-new-cluster`: a surviving manager restarts the managers' group with itself as
//! its only member, from everything its own state directory holds, when most managers are lost
//! for good (Swarm's `docker swarm init --force-new-cluster`, etcd's `--force-new-cluster`).
//!
//! How: before this node's Raft member starts, its saved snapshot and every entry of its log are
//! applied, offline, into one `Decided` (the same pure rules every manager applies). That state
//! becomes a new snapshot whose membership is this node alone, taken at the log's last entry; the
//! log is then purged up to that entry. When the member starts, it is the only voter: it elects
//! itself in one election timeout and decides alone. Every record is kept: networks, services
//! with their VIPs and published ports, address blocks, availability, secrets, the cluster
//! settings; the CA, the cluster ID and every node ID are untouched (they live outside the
//! group). The other managers become workers (marked `previously_manager`): the dead ones stop
//! counting towards any majority, and a survivor that is still up follows its new role (it
//! leaves its old group and forgets its log, `lifecycle`), and can be promoted again.
//!
//! Why a seeded snapshot and not a membership entry: openraft (0.10 alpha) appends a membership
//! change only on a leader, and a leader needs the majority that is gone. A snapshot is the
//! storage-level state openraft itself restarts from (`applied_state` gives the membership), so
//! no openraft internals are touched. The entries after the last committed one this node knew of
//! are applied too, as etcd does: this node is now the only copy of the truth, and an entry it
//! holds may have been committed by the lost majority.
//!
//! Refused, before anything is written, when this node is not a voter of a group, or when a
//! majority of the group's voters (this node included) still answer on the managers' mutual-TLS
//! channel ([`Request::Probe`]): forcing then would fork a cluster that can still decide.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::alias::{EntryOf, LeaderIdOf, LogIdOf, SnapshotMetaOf, StoredMembershipOf, VoteOf};
use openraft::storage::RaftLogStorage;
use openraft::vote::{RaftLeaderId, RaftVote};
use openraft::{EntryPayload, Membership, RaftLogReader};

use super::decisions::Decided;
use super::raft_log::LogStore;
use super::raft_state_machine::StateMachine;
use super::transport::{self, Request, Response};
use super::types::{ManagerNode, RaftTypes};
use crate::gossip::GossipHandle;
use crate::identity::NodeId;
use crate::state::{Role, RoleRecord};
use crate::state_dir::StateDir;
use crate::tls_channel::client::Channel;

type Entry = EntryOf<RaftTypes>;
type LogId = LogIdOf<RaftTypes>;
type Meta = SnapshotMetaOf<RaftTypes>;
type StoredMembership = StoredMembershipOf<RaftTypes>;

/// How long each other member has to answer the probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("--force-new-cluster: this node's state directory holds no managers' group (it was never a manager, or was demoted): there is nothing to recover from here; run it on a surviving manager")]
    NoGroup,
    #[error("--force-new-cluster: this node is not a voter of its managers' group (voters: {voters}): run it on a surviving manager")]
    NotAVoter { voters: String },
    #[error("--force-new-cluster refused: {answering} of the group's {total} managers answer ({names}), a majority: the cluster can still decide, and forcing would fork it. Stop the other managers for good first, or let the majority go on (it needs no recovery)")]
    MajorityReachable { answering: usize, total: usize, names: String },
    #[error("--force-new-cluster: cannot read or rewrite the managers' state in {dir}: {error}")]
    Storage { dir: String, error: std::io::Error },
}

/// What the forced group starts from.
#[derive(Debug, Clone, PartialEq)]
pub struct Forced {
    pub decided: Decided,
    /// The last entry this node held: the new snapshot is taken there.
    pub last: LogId,
    /// The voters of the old group.
    pub old_voters: BTreeSet<NodeId>,
    /// Where the old group's members listened.
    pub old_nodes: BTreeMap<NodeId, ManagerNode>,
    /// Where this node's Raft listens (from the old membership).
    pub node: ManagerNode,
}

/// The whole state of the old group as this node holds it: its snapshot, then every entry of
/// its log after it (pure).
pub fn replay(
    me: NodeId,
    snapshot: Option<(Meta, Decided)>,
    entries: Vec<Entry>,
) -> Result<Forced, RecoveryError> {
    let (mut decided, mut membership, mut last) = match snapshot {
        Some((meta, decided)) => (decided, meta.last_membership, meta.last_log_id),
        None => (Decided::default(), StoredMembership::default(), None),
    };
    let applied = last.map(|l| l.index);
    for entry in entries {
        if applied.is_some_and(|a| entry.log_id.index <= a) {
            continue;
        }
        last = Some(entry.log_id);
        match entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Normal(command) => {
                decided.apply(command);
            }
            EntryPayload::Membership(m) => membership = StoredMembership::new(Some(entry.log_id), m),
        }
    }
    let Some(last) = last else { return Err(RecoveryError::NoGroup) };
    let old_voters: BTreeSet<NodeId> = membership.membership().voter_ids().collect();
    if old_voters.is_empty() {
        return Err(RecoveryError::NoGroup);
    }
    let old_nodes: BTreeMap<NodeId, ManagerNode> =
        membership.membership().nodes().map(|(id, node)| (*id, node.clone())).collect();
    let node = match membership.membership().get_node(&me) {
        Some(node) if old_voters.contains(&me) => node.clone(),
        _ => {
            let voters = old_voters.iter().map(|v| v.short()).collect::<Vec<_>>().join(", ");
            return Err(RecoveryError::NotAVoter { voters });
        }
    };
    // The other managers stop counting; the survivors among them can be promoted again.
    for (id, role) in decided.roles.iter_mut() {
        if *id != me && role.role == Role::Manager {
            *role = RoleRecord { role: Role::Worker, previously_manager: true };
        }
    }
    decided.roles.insert(me, RoleRecord { role: Role::Manager, previously_manager: false });
    Ok(Forced { decided, last, old_voters, old_nodes, node })
}

/// The snapshot the forced member starts from: `forced.decided`, with this node the only voter.
pub fn forced_meta(me: NodeId, forced: &Forced) -> Meta {
    let membership = Membership::new(vec![BTreeSet::from([me])], BTreeMap::from([(me, forced.node.clone())]))
        .expect("one voter that is also a node is a valid membership");
    Meta {
        last_log_id: Some(forced.last),
        last_membership: StoredMembership::new(Some(forced.last), membership),
    }
}

/// Reads the group's state from `dir` (nothing running on it).
pub async fn read(me: NodeId, dir: &Arc<StateDir>) -> Result<Forced, RecoveryError> {
    let storage = |error| RecoveryError::Storage { dir: dir.path().display().to_string(), error };
    let mut log = LogStore::open(dir.clone()).map_err(storage)?;
    let entries = log.try_get_log_entries(..).await.map_err(storage)?;
    let snapshot = StateMachine::read_saved(dir).map_err(storage)?;
    replay(me, snapshot, entries)
}

/// Writes the forced state into `dir`: the snapshot first, then the commit point, then the log
/// purged up to it. A crash midway leaves a state this function reads back the same (the
/// snapshot already says "this node alone"), so running `--force-new-cluster` again finishes it.
pub async fn write(me: NodeId, dir: &Arc<StateDir>, forced: &Forced) -> Result<(), RecoveryError> {
    let storage = |error| RecoveryError::Storage { dir: dir.path().display().to_string(), error };
    StateMachine::save(dir, forced_meta(me, forced), &forced.decided).map_err(storage)?;
    let mut log = LogStore::open(dir.clone()).map_err(storage)?;
    log.save_committed(Some(forced.last)).await.map_err(storage)?;
    log.purge(forced.last).await.map_err(storage)?;
    // The vote must be newer than the last entry's leader: a restored directory has no vote at
    // all, and openraft refuses (panics) to lead in a term whose entries another leader wrote.
    // An uncommitted vote for this node one term later: its election takes the term after.
    let term = forced.last.leader_id.term + 1;
    let newer = log.read_vote().await.map_err(storage)?.is_none_or(|v| v.leader_id().term < term);
    if newer {
        let vote = VoteOf::<RaftTypes>::from_leader_id(LeaderIdOf::<RaftTypes>::new(term, me), false);
        log.save_vote(&vote).await.map_err(storage)?;
    }
    Ok(())
}

/// Which of `voters` (other than this node) answer on the managers' channel.
async fn answering(me: NodeId, gossip: &GossipHandle, forced: &Forced) -> Vec<NodeId> {
    let snapshot = gossip.snapshot();
    let tls = gossip.tls_shared();
    let probes = forced.old_voters.iter().filter(|id| **id != me).filter_map(|id| {
        // Where gossip says it is now, else where the group last knew it.
        let addr = snapshot
            .state
            .nodes
            .get(id)
            .map(|n| n.gossip_addr)
            .or_else(|| forced.old_nodes.get(id).map(|n| n.addr))?;
        let tls = tls.clone();
        let id = *id;
        Some(async move {
            let mut channel = Channel::new(addr, id);
            let answer = transport::call(&mut channel, &tls, &Request::Probe, PROBE_TIMEOUT).await;
            match answer {
                // Any answer (an older meshd refuses the request it cannot decode) is a live node.
                Ok(Response::Probe { .. } | Response::Refused(_)) | Ok(_) => Some(id),
                Err(error) => {
                    tracing::info!(node = %id, %error, "a manager of the old group does not answer");
                    None
                }
            }
        })
    });
    futures::future::join_all(probes).await.into_iter().flatten().collect()
}

/// `--force-new-cluster`, before this node's Raft member starts: refuses while a majority of the
/// old group answers, else rewrites the group's files so this node is its only member.
pub async fn force_new_cluster(
    me: NodeId,
    gossip: &GossipHandle,
    dir: &Arc<StateDir>,
) -> Result<Forced, RecoveryError> {
    let mut forced = read(me, dir).await?;
    // Where this node listens now (a restore on a new machine has a new address).
    if let Some(record) = gossip.snapshot().state.nodes.get(&me) {
        forced.node = ManagerNode { addr: record.gossip_addr };
    }
    let total = forced.old_voters.len();
    let others = answering(me, gossip, &forced).await;
    let answering_count = others.len() + 1;
    // A group of one (a restore of a single manager's backup) has nobody to fork from.
    if !others.is_empty() && answering_count * 2 > total {
        let state = &gossip.snapshot().state;
        let name = |id: &NodeId| state.nodes.get(id).map_or_else(|| id.short(), |n| n.name.clone());
        let mut names: Vec<String> = others.iter().map(name).collect();
        names.push("this one".into());
        return Err(RecoveryError::MajorityReachable {
            answering: answering_count,
            total,
            names: names.join(", "),
        });
    }
    write(me, dir, &forced).await?;
    tracing::warn!(
        old_voters = total,
        answering = answering_count,
        networks = forced.decided.networks.len(),
        services = forced.decided.services.len(),
        blocks = forced.decided.blocks.len(),
        last_index = forced.last.index,
        "forced a new managers' group with this node as its only member; the other managers are workers now (promote managers again with `meshctl node promote`)"
    );
    Ok(forced)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use arc_swap::ArcSwap;
    use tokio::sync::watch;

    use super::*;
    use crate::manager::decisions::{Action, Command};
    use crate::manager::raft_state_machine::Raft;
    use crate::manager::transport::Network;
    use crate::manager::types;
    use crate::state::validate::vni_for;
    use crate::state::NetworkRecord;
    use crate::trust::ca::ClusterCa;
    use crate::trust::certs::CaAnchor;
    use crate::trust::keys::NodeKey;
    use crate::trust::tls;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_forced_state_keeps_every_record_makes_this_node_the_only_voter_and_decides_again() {
        let path = std::env::temp_dir().join(format!(
            "meshd-force-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let ca = ClusterCa::create().unwrap();
        let key = NodeKey::generate().unwrap();
        let cert = ca.issue(&key.public(), 3600).unwrap();
        let revoked = Arc::new(ArcSwap::from_pointee(HashSet::new()));
        let configs = tls::configs(&CaAnchor::new(ca.cert()).unwrap(), &key, &cert.der, revoked).unwrap();
        let tls = Arc::new(ArcSwap::from_pointee(configs));
        let me = key.node_id();
        let other = NodeKey::generate().unwrap().node_id();
        let dir = Arc::new(StateDir::open(&path).unwrap());
        let start = || async {
            let (tx, decided) = watch::channel(Arc::new(Decided::default()));
            let log = LogStore::open(dir.clone()).unwrap();
            let machine = StateMachine::open(dir.clone(), tx).unwrap();
            let network = Network { tls: tls.clone() };
            (Raft::new(me, types::config(), network, log, machine).await.unwrap(), decided)
        };
        let wait = Some(Duration::from_secs(5));

        let (raft, _) = start().await;
        let node = ManagerNode { addr: "127.0.0.1:7946".parse().unwrap() };
        raft.initialize(BTreeMap::from([(me, node)])).await.unwrap();
        raft.wait(wait).current_leader(me, "leader").await.unwrap();
        let record = NetworkRecord {
            subnet: "10.9.0.0/24".parse().unwrap(),
            vni: vni_for("a"),
            options: Default::default(),
        };
        for (id, action) in [
            (1, Action::SetRole { node: me, role: Role::Manager }),
            (2, Action::SetRole { node: other, role: Role::Manager }),
            (3, Action::CreateNetwork { name: "a".into(), record }),
        ] {
            raft.client_write(Command { id, by: me, action }).await.unwrap();
        }
        raft.shutdown().await.unwrap();

        // Another node cannot force from this directory: it is not a voter of it.
        assert!(matches!(read(other, &dir).await, Err(RecoveryError::NotAVoter { .. })));
        let forced = read(me, &dir).await.unwrap();
        assert_eq!(forced.decided.networks.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(forced.decided.roles[&other], RoleRecord { role: Role::Worker, previously_manager: true });
        assert_eq!(forced.decided.managers(), BTreeSet::from([me]));
        write(me, &dir, &forced).await.unwrap();
        // Read back the same (running it twice is harmless).
        assert_eq!(read(me, &dir).await.unwrap().decided, forced.decided);

        let (raft, decided) = start().await;
        raft.wait(wait).current_leader(me, "the forced member leads").await.unwrap();
        assert_eq!(decided.borrow().networks.keys().collect::<Vec<_>>(), ["a"]);
        let answer = raft
            .client_write(Command { id: 4, by: me, action: Action::RemoveNetwork { name: "a".into() } })
            .await
            .unwrap();
        assert_eq!(answer.data, crate::manager::Decision::Done);
        raft.shutdown().await.unwrap();
        drop(dir);
        std::fs::remove_dir_all(&path).unwrap();
    }
}
