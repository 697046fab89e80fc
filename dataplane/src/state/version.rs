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

/// How far ahead of this node's wall clock a version from another node may be (clock skew plus
/// bursts of writes, which advance a Lamport clock faster than the wall clock). A version
/// further ahead is refused: adopting it would pin every later write of the cluster to it (one
/// delta at u64::MAX would leave no version after it at all).
pub const MAX_AHEAD_MS: u64 = 10 * 60 * 1000;

/// Whether `version` is within [`MAX_AHEAD_MS`] of the wall clock `now_millis`.
pub fn within_skew(version: &Version, now_millis: u64) -> bool {
    version.lamport <= now_millis.saturating_add(MAX_AHEAD_MS)
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
        // Saturating: versions are checked against the wall clock before they are observed, so
        // this never comes near u64::MAX; if it did, the clock would stop rather than wrap.
        self.last = self.last.saturating_add(1).max(now_millis);
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
    fn versions_far_ahead_of_the_wall_clock_are_refused_and_the_clock_never_wraps() {
        let now = 1_000_000;
        assert!(within_skew(&Version { lamport: now + MAX_AHEAD_MS, node: id(1) }, now));
        assert!(!within_skew(&Version { lamport: now + MAX_AHEAD_MS + 1, node: id(1) }, now));
        assert!(!within_skew(&Version { lamport: u64::MAX, node: id(1) }, now));
        assert!(within_skew(&Version { lamport: u64::MAX, node: id(1) }, u64::MAX), "no overflow");
        let mut clock = LamportClock::default();
        clock.observe(&Version { lamport: u64::MAX, node: id(2) });
        assert_eq!(clock.tick_at(id(1), 5).lamport, u64::MAX, "saturates, never wraps or panics");
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
