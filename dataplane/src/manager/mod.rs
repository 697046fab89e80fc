//! The managers agree: cluster-wide decisions (networks and their VNIs, address blocks, services
//! with their VIPs and published ports, roles, removals, availability, secrets) go through a
//! Raft group of the managers, so two sides of a partition never both hand out the same thing.
//! Gossip still spreads everything, the decisions included, to every node; workers never talk
//! Raft, and nothing on the datapath waits for it.
//!
//! - [`machine`]: what is decided, as a pure state machine (the rules that keep things unique).
//! - [`types`]: the group as openraft sees it, and its timings; [`store`] and
//!   [`state_machine`]: the log, vote and snapshots, durable in the state directory ([`files`]).
//! - [`transport`]: Raft's messages over gossip's mutual-TLS channels; [`serve`]: answering
//!   them, proposals from other nodes, and manager joins.
//! - [`propose`]: getting a command decided from any node (to the leader, retried, with a clear
//!   error when no majority can be reached).
//! - [`lifecycle`]: joining and leaving the group as this node's role changes, founding it (or
//!   importing an older cluster's state), and the leader's duties: [`mirror`]ing decisions into
//!   gossip and keeping the group's voters equal to the managers ([`group`]).
//! - [`operations`]: the cluster-wide operations behind the API; [`key_rotation`]: the gossip
//!   key's.
//!
//! openraft is pinned to an exact alpha (`=0.10.0-alpha.37`): it refuses writes at once on a
//! leader that lost its majority (the minority's error is immediate) and has pre-vote (a manager
//! cut off does not depose the leader when it comes back); docs/consistency.md says more.

pub mod backup;
pub mod decisions;
pub mod error;
pub mod files;
pub mod group;
pub mod key_rotation;
pub mod lifecycle;
pub mod mirror;
pub mod operations;
pub mod propose;
pub mod raft_log;
pub mod raft_state_machine;
pub mod recovery;
pub mod serve;
pub mod transport;
pub mod types;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use tokio::sync::watch;

pub use decisions::{Action, Decided, Decision};
pub use error::ManagerError;

use crate::gossip::GossipHandle;
use crate::identity::NodeId;
use crate::state_dir::StateDir;
use crate::tls_channel::client::Channel;
use raft_state_machine::Raft;

/// This node's part in the managers' group: a Raft member while it is a manager, a client of
/// the group always. Cheap to clone.
#[derive(Clone)]
pub struct Managers {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: NodeId,
    gossip: GossipHandle,
    state_dir: Arc<StateDir>,
    /// The Raft member, while this node is a manager.
    raft: RwLock<Option<Raft>>,
    /// What the group decided, as this member last applied it (empty on a worker).
    decided: watch::Receiver<Arc<Decided>>,
    decided_tx: watch::Sender<Arc<Decided>>,
    /// Idle channels to other managers, for proposals.
    channels: tokio::sync::Mutex<HashMap<NodeId, Vec<Channel>>>,
    /// When this node was first seen a worker while still in the group (it waits to be taken
    /// out of the voters before it stops).
    demoted_since: Mutex<Option<Instant>>,
    /// When starting this manager's Raft member last failed (it is retried after a while).
    start_failed: Mutex<Option<Instant>>,
    /// Block owners the leader found gone from the state, and since when.
    missing_since: Mutex<BTreeMap<NodeId, Instant>>,
    started: Instant,
}

impl Managers {
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// The Raft member, if this node is one.
    fn raft(&self) -> Option<Raft> {
        self.inner.raft.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What the group decided, as this manager applied it last (empty on a worker).
    pub fn decided(&self) -> Arc<Decided> {
        self.inner.decided.borrow().clone()
    }

    fn gossip(&self) -> &GossipHandle {
        &self.inner.gossip
    }
}
