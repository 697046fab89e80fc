//! The identity foca gossips about: a node ID, where to reach it, and a generation.
//!
//! foca keys members by [`Identity::addr`], which for us is the node ID: a node that restarts
//! (new generation, maybe a new address) replaces its own stale incarnation instead of appearing
//! twice. The generation is the start time in milliseconds, so a restarted node always wins the
//! conflict; `renew` bumps it when foca learns this node was declared down and must rejoin.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::identity::NodeId;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberId {
    pub node: NodeId,
    pub addr: SocketAddr,
    pub generation: u64,
}

impl foca::Identity for MemberId {
    type Addr = NodeId;

    fn renew(&self) -> Option<Self> {
        Some(MemberId { generation: self.generation + 1, ..self.clone() })
    }

    fn addr(&self) -> NodeId {
        self.node
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    #[test]
    fn a_renewed_or_restarted_identity_wins() {
        let old = MemberId {
            node: NodeId::from_bytes([1; 16]),
            addr: "10.0.0.1:7946".parse().unwrap(),
            generation: 10,
        };
        let renewed = old.renew().unwrap();
        assert_eq!(renewed.addr(), old.addr());
        assert!(renewed.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&renewed));
    }
}
