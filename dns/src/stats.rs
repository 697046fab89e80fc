//! What the embedded DNS did: queries by outcome and how long answering took, as plain atomics
//! (one relaxed add per query and outcome, no lock, no allocation) that meshd reads for its
//! metrics. One [`DnsStats`] per node, shared by every namespace's handler through the
//! [`crate::Forwarder`] they all hold.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What became of one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered from the registry (records, or a name of ours without records of that type).
    Local,
    /// A name in one of our networks' domains that does not exist: NXDOMAIN.
    NxDomain,
    /// Forwarded upstream and answered.
    Forwarded,
    /// Forwarding failed: no upstream, every upstream failed, or too many in flight (SERVFAIL).
    ForwardFailed,
    /// Not a standard query with one question (REFUSED or FORMERR), or a local SERVFAIL.
    Refused,
}

impl Outcome {
    pub const ALL: [Outcome; 5] =
        [Outcome::Local, Outcome::NxDomain, Outcome::Forwarded, Outcome::ForwardFailed, Outcome::Refused];

    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Local => "local",
            Outcome::NxDomain => "nxdomain",
            Outcome::Forwarded => "forwarded",
            Outcome::ForwardFailed => "forward_failed",
            Outcome::Refused => "refused",
        }
    }
}

/// Upper bounds of the latency histogram's buckets, in seconds (the last bucket, +Inf, is
/// implied). From 50 µs (a local answer) to 2.5 s (past the forwarder's 2 s timeout).
pub const LATENCY_BOUNDS: [f64; 13] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

#[derive(Debug, Default)]
pub struct DnsStats {
    outcomes: [AtomicU64; 5],
    /// Queries per bucket (not cumulative; [`DnsStats::latency`] sums them); the last is +Inf.
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    latency_sum_ns: AtomicU64,
    /// Forwarded queries refused because [`crate::forward::MAX_IN_FLIGHT`] were in flight.
    pub busy: AtomicU64,
}

/// The latency histogram at one moment, in Prometheus' shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    pub sum_seconds: f64,
    pub count: u64,
    /// (upper bound, cumulative count), the last with bound +Inf.
    pub buckets: Vec<(f64, u64)>,
}

impl DnsStats {
    /// Counts one query, answered in `took`.
    pub fn record(&self, outcome: Outcome, took: Duration) {
        let index = Outcome::ALL.iter().position(|o| *o == outcome).expect("every outcome is in ALL");
        self.outcomes[index].fetch_add(1, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        let bucket =
            LATENCY_BOUNDS.iter().position(|bound| seconds <= *bound).unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ns.fetch_add(took.as_nanos().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    /// Counts `n` queries with the same outcome, each answered in `took` (a batch of the fast
    /// path: one add per counter instead of `n`).
    pub fn record_many(&self, outcome: Outcome, n: u64, took: Duration) {
        let index = Outcome::ALL.iter().position(|o| *o == outcome).expect("every outcome is in ALL");
        self.outcomes[index].fetch_add(n, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        let bucket =
            LATENCY_BOUNDS.iter().position(|bound| seconds <= *bound).unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[bucket].fetch_add(n, Ordering::Relaxed);
        let ns = took.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.latency_sum_ns.fetch_add(ns.saturating_mul(n), Ordering::Relaxed);
    }

    /// Queries with `outcome` so far.
    pub fn count(&self, outcome: Outcome) -> u64 {
        let index = Outcome::ALL.iter().position(|o| *o == outcome).expect("every outcome is in ALL");
        self.outcomes[index].load(Ordering::Relaxed)
    }

    pub fn latency(&self) -> Latency {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BOUNDS.len() + 1);
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            buckets.push((LATENCY_BOUNDS.get(i).copied().unwrap_or(f64::INFINITY), cumulative));
        }
        Latency {
            sum_seconds: self.latency_sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            count: cumulative,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets() {
        let stats = DnsStats::default();
        stats.record(Outcome::Local, Duration::from_micros(30));
        stats.record(Outcome::Forwarded, Duration::from_millis(3));
        stats.record(Outcome::ForwardFailed, Duration::from_secs(5));
        assert_eq!(stats.count(Outcome::Local), 1);
        assert_eq!(stats.count(Outcome::NxDomain), 0);
        let latency = stats.latency();
        assert_eq!(latency.count, 3);
        assert_eq!(latency.buckets[0], (0.00005, 1));
        assert_eq!(latency.buckets[6], (0.005, 2));
        assert_eq!(latency.buckets.last().unwrap().1, 3);
        assert!(latency.buckets.last().unwrap().0.is_infinite());
        assert!((latency.sum_seconds - 5.00303).abs() < 1e-9);
    }
}
