//! Counters of what the gossip layer received, sent and dropped, and why.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::crypto::OpenError;

macro_rules! counters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        /// Live counters, shared by the gossip tasks.
        #[derive(Debug, Default)]
        pub struct Stats {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        /// A copy of the counters at one moment, for the API.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct StatsSnapshot {
            $(#[doc = $doc] pub $name: u64,)*
        }

        impl Stats {
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl StatsSnapshot {
            /// (name, value) pairs in declaration order, for tables.
            pub fn rows(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
        }
    };
}

counters! {
    udp_received: "datagrams received on the gossip port",
    udp_sent: "datagrams sent",
    dropped_oversized: "datagrams larger than the limit",
    dropped_truncated: "datagrams or frames too short or of an unknown version",
    dropped_unknown_key: "sealed with a key not in the keyring (wrong cluster or stale key)",
    dropped_forged: "failed authentication: forged or corrupted",
    dropped_stale: "timestamp outside the replay window",
    dropped_replayed: "nonce already seen within the window",
    dropped_malformed: "authentic but undecodable (a bug or a version mismatch)",
    deltas_applied: "state deltas that changed the local state",
    deltas_rejected: "state deltas refused (ownership rules)",
    tcp_accepted: "TCP connections served",
    tcp_rejected: "TCP connections closed for bad frames, size or timeouts",
    joins_accepted: "nodes admitted",
    joins_refused: "join attempts refused (wrong token)",
    push_pulls: "completed full state exchanges",
}

impl Stats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a frame that did not open, under its reason.
    pub fn count_open_error(&self, error: OpenError) {
        let counter = match error {
            OpenError::Truncated | OpenError::Version(_) => &self.dropped_truncated,
            OpenError::UnknownKey => &self.dropped_unknown_key,
            OpenError::Forged => &self.dropped_forged,
            OpenError::Stale => &self.dropped_stale,
            OpenError::Replayed => &self.dropped_replayed,
        };
        Stats::bump(counter);
    }

    /// Sum of every drop counter.
    pub fn dropped(&self) -> u64 {
        let s = self.snapshot();
        s.dropped_oversized
            + s.dropped_truncated
            + s.dropped_unknown_key
            + s.dropped_forged
            + s.dropped_stale
            + s.dropped_replayed
            + s.dropped_malformed
    }
}
