//! Counters of what the gossip layer received, sent and dropped, and why.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::admission::Rejection;
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
    dropped_over_share: "sealed frames from a source past its share of the replay window (a flood)",
    dropped_guard_full: "sealed frames refused: the replay guard is full (many sources flooding)",
    dropped_malformed: "authentic but undecodable (a bug or a version mismatch)",
    dropped_revoked: "datagrams from a removed node (it still held the key): dropped unanswered",
    not_sent_revoked: "datagrams membership addressed to a removed node: not sent",
    not_sent_no_key: "datagrams not sent: this node holds no key of the current ring yet",
    deltas_applied: "state deltas that changed the local state",
    deltas_rejected_future: "state deltas refused: versioned beyond the clock-skew window",
    deltas_rejected_revoked: "state deltas refused: written by a removed node",
    deltas_rejected_unknown_writer: "state deltas refused: the writer's certificate is not known here yet",
    deltas_rejected_certificate: "state deltas refused: the writer's certificate is not the CA's, expired, or not its own",
    deltas_rejected_signature: "state deltas refused: not signed by their writer",
    deltas_rejected_owner: "state deltas refused: a node-owned record written by another node",
    deltas_rejected_not_manager: "state deltas refused: a cluster-wide record written by a worker",
    deltas_rejected_invalid: "state deltas refused: a record no local create would accept",
    deltas_rejected_not_granted: "state deltas refused: an endpoint at an address not granted to its writer",
    deltas_rejected_over_bound: "state deltas refused: an endpoint beyond its writer's bound",
    deltas_held: "endpoint claims held until the grant that proves them arrives",
    deltas_held_expired: "held endpoint claims dropped: no grant proved them in time, or no room to hold them",
    tcp_accepted: "TCP connections served",
    tcp_rejected: "TCP connections closed for bad frames, size or timeouts",
    tcp_tls_refused: "TLS handshakes refused (not a certificate of this cluster, expired or revoked)",
    tcp_source_limited: "TCP connections closed at once: too many from one source address",
    tcp_members_full: "TCP connections from members' addresses closed at once: their pool was full",
    tcp_strangers_full: "TCP connections from other addresses (joiners, strangers) closed at once: their pool was full",
    tcp_frame_too_large: "member frames refused for announcing more than the largest state (wire::MAX_FRAME)",
    joins_accepted: "nodes admitted",
    joins_refused: "join attempts refused (wrong token)",
    push_pulls: "completed full state exchanges",
}

impl Stats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a delta admission refused, under its reason.
    pub fn count_rejection(&self, reason: Rejection) {
        Stats::bump(match reason {
            Rejection::FromTheFuture => &self.deltas_rejected_future,
            Rejection::Revoked => &self.deltas_rejected_revoked,
            Rejection::UnknownWriter => &self.deltas_rejected_unknown_writer,
            Rejection::BadCertificate => &self.deltas_rejected_certificate,
            Rejection::BadSignature => &self.deltas_rejected_signature,
            Rejection::NotOwner => &self.deltas_rejected_owner,
            Rejection::NotManager => &self.deltas_rejected_not_manager,
            Rejection::Invalid => &self.deltas_rejected_invalid,
            Rejection::NotGranted => &self.deltas_rejected_not_granted,
            Rejection::OverBound => &self.deltas_rejected_over_bound,
        });
    }

    /// Every delta refused, whatever the reason.
    pub fn deltas_rejected(&self) -> u64 {
        let s = self.snapshot();
        s.deltas_rejected_future
            + s.deltas_rejected_revoked
            + s.deltas_rejected_unknown_writer
            + s.deltas_rejected_certificate
            + s.deltas_rejected_signature
            + s.deltas_rejected_owner
            + s.deltas_rejected_not_manager
            + s.deltas_rejected_invalid
            + s.deltas_rejected_not_granted
            + s.deltas_rejected_over_bound
    }

    /// Counts a frame that did not open, under its reason.
    pub fn count_open_error(&self, error: OpenError) {
        let counter = match error {
            OpenError::Truncated | OpenError::Version(_) => &self.dropped_truncated,
            OpenError::UnknownKey => &self.dropped_unknown_key,
            OpenError::Forged => &self.dropped_forged,
            OpenError::Stale => &self.dropped_stale,
            OpenError::Replayed => &self.dropped_replayed,
            OpenError::OverShare => &self.dropped_over_share,
            OpenError::GuardFull => &self.dropped_guard_full,
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
            + s.dropped_over_share
            + s.dropped_guard_full
            + s.dropped_malformed
            + s.dropped_revoked
    }
}
