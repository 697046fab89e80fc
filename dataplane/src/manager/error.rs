//! Why the managers did not decide what they were asked.

use crate::gossip::GossipError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManagerError {
    /// Fewer than a majority of the managers can reach each other from here: nothing
    /// cluster-wide can be decided until they can (what runs keeps running).
    #[error("no manager majority: {reachable} of {total} reachable; cluster-wide changes wait until a majority of the managers can reach each other (traffic, DNS and attaching from this node's address blocks go on)")]
    NoMajority { reachable: usize, total: usize },
    /// The managers decided against it (a name taken, a port held, the last manager...).
    #[error("{0}")]
    Refused(String),
    #[error("this node is a worker: only a manager can {what} (managers: {managers})")]
    NotManager { what: &'static str, managers: String },
    #[error("{0}")]
    NotFound(String),
    #[error("the managers' Raft group failed: {0}")]
    Internal(String),
    #[error(transparent)]
    Gossip(#[from] GossipError),
}
