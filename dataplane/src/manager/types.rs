//! The managers' Raft group as openraft sees it: what the log carries (a [`Command`]), what
//! applying one answers (a [`Decision`]), who the members are (meshd's own node IDs, with the
//! address their TCP 7946 listens on), and the timings.
//!
//! Every openraft type meshd touches is named here or in the files of this folder, so a move to
//! the next openraft release (it is pinned to an exact alpha: its API changes between them)
//! stays inside `manager/`.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::decisions::{Command, Decision};
use crate::identity::NodeId;

/// A member of the Raft group: where to reach it (its gossip address: Raft runs over the same
/// mutual-TLS port as push-pull).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagerNode {
    pub addr: SocketAddr,
}

openraft::declare_raft_types!(
    /// The type configuration of the managers' group.
    pub RaftTypes:
        D = Command,
        R = Decision,
        NodeId = NodeId,
        Node = ManagerNode,
);

/// Election timeout 1–2 s, heartbeat 200 ms: a lost leader is replaced in one to three seconds
/// (a follower waits out the old leader's lease, then its own timeout). Shorter timings (150–300
/// ms, 50 ms heartbeats) made a loaded host elect again and again: a follower's fsync or a busy
/// core took longer than a heartbeat's deadline, the channel was torn down and built again, and
/// no leader held a quorum long enough to decide anything. Swarm waits 10 s; etcd 1 s.
/// Pre-vote keeps a manager that was cut off from forcing an election when it comes back. A snapshot every 1000
/// entries keeps the log file short (the state machine is small: the cluster-wide records).
pub fn config() -> Arc<openraft::Config> {
    let config = openraft::Config {
        cluster_name: "meshd-managers".into(),
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        heartbeat_interval: HEARTBEAT_MS,
        enable_pre_vote: Some(true),
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
        max_in_snapshot_log_to_keep: 100,
        ..Default::default()
    };
    Arc::new(config.validate().expect("the managers' Raft configuration is valid"))
}

pub const ELECTION_TIMEOUT_MIN_MS: u64 = 1000;
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 2000;
pub const HEARTBEAT_MS: u64 = 200;
