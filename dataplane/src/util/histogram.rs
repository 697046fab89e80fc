//! A histogram of durations in atomics: one relaxed add per observation, no lock, so the code
//! that observes (the reconcile loop) never waits for a scrape. Read as Prometheus buckets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in seconds, for durations from a millisecond to half a minute.
pub const SECONDS_BOUNDS: [f64; 12] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

#[derive(Debug, Default)]
pub struct DurationHistogram {
    /// Per bucket (not cumulative); the last is +Inf.
    buckets: [AtomicU64; SECONDS_BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

/// The histogram at one moment: sum in seconds, count, and (bound, cumulative count) pairs
/// ending with +Inf.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub sum: f64,
    pub count: u64,
    pub buckets: Vec<(f64, u64)>,
}

impl DurationHistogram {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = SECONDS_BOUNDS.iter().position(|b| seconds <= *b).unwrap_or(SECONDS_BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(took.as_nanos().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut count = 0;
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (i, bucket) in self.buckets.iter().enumerate() {
            count += bucket.load(Ordering::Relaxed);
            buckets.push((SECONDS_BOUNDS.get(i).copied().unwrap_or(f64::INFINITY), count));
        }
        HistogramSnapshot { sum: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9, count, buckets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let h = DurationHistogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], (0.001, 1));
        assert_eq!(s.buckets[5], (0.05, 2));
        assert_eq!(s.buckets.last().unwrap().1, 3);
        assert!((s.sum - 60.0305).abs() < 1e-9);
    }
}
