//! Versions that order writes across the cluster without coordination.
//!
//! A version is `(lamport, node)`: compared by the counter first and the writer's ID second, so
//! two writes are never equal unless they are the same write, and every node orders them alike
//! (last writer wins). The counter is a Lamport clock that never falls behind wall-clock
//! milliseconds: a node that restarts with no memory of its old counter still writes versions
//! newer than its previous ones (as long as its clock does not jump back), and a write made later
//! in real time usually wins, which is what an operator expects of `node update`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::identity::NodeId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    pub lamport: u64,
    pub node: NodeId,
}

/// The local Lamport clock.
#[derive(Debug, Default)]
pub struct LamportClock {
    last: u64,
}

impl LamportClock {
    /// A version for a new local write: newer than anything seen and not behind the wall clock.
    pub fn tick(&mut self, node: NodeId) -> Version {
        self.tick_at(node, unix_millis())
    }

    /// [`tick`](Self::tick) with the wall clock given, for tests.
    pub fn tick_at(&mut self, node: NodeId, now_millis: u64) -> Version {
        self.last = (self.last + 1).max(now_millis);
        Version { lamport: self.last, node }
    }

    /// Takes note of a version seen from another node, so local writes order after it.
    pub fn observe(&mut self, version: &Version) {
        self.last = self.last.max(version.lamport);
    }
}

pub fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 16])
    }

    #[test]
    fn versions_order_by_counter_then_node() {
        let a = Version { lamport: 5, node: id(9) };
        let b = Version { lamport: 6, node: id(1) };
        let c = Version { lamport: 6, node: id(2) };
        assert!(a < b && b < c);
    }

    #[test]
    fn ticks_are_monotonic_and_follow_observed_versions() {
        let mut clock = LamportClock::default();
        let first = clock.tick_at(id(1), 100);
        let second = clock.tick_at(id(1), 50); // wall clock stepped back: still newer
        assert!(second > first);
        clock.observe(&Version { lamport: 1_000, node: id(2) });
        let third = clock.tick_at(id(1), 60);
        assert_eq!(third.lamport, 1_001);
    }
}
