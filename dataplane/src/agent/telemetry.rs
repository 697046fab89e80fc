//! What the metrics read from the agent: how long reconciling takes and how far the kernel
//! lags behind the cluster state, how full the maps are, and the embedded DNS's counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meshd_dns::DnsStats;

use super::{Agent, AgentError};
use crate::bpf::pressure::{Usage, MIN_INTERVAL};
use crate::util::histogram::{DurationHistogram, HistogramSnapshot};

/// Reconcile rounds, timed.
#[derive(Debug, Default)]
pub struct ReconcileTiming {
    /// Every round (after a snapshot, or the periodic one).
    pub duration: DurationHistogram,
    /// From a new snapshot to the end of the reconcile that wrote it into the kernel: the
    /// node's part of convergence (the spread of deltas between nodes is gossip's part).
    pub lag: DurationHistogram,
    pub errors: AtomicU64,
    /// Unix time in ms of the last snapshot change (0: none since start).
    last_change_ms: AtomicU64,
}

impl ReconcileTiming {
    pub(super) fn state_changed(&self) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.last_change_ms.store(now.as_millis() as u64, Ordering::Relaxed);
    }

    pub(super) fn reconciled(&self, took: Duration, changed_at: Option<Instant>, ok: bool) {
        self.duration.observe(took);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        } else if let Some(changed_at) = changed_at {
            self.lag.observe(changed_at.elapsed());
        }
    }

    /// Unix time (seconds) of the last state change this node saw; None before the first.
    pub fn last_change(&self) -> Option<f64> {
        match self.last_change_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(ms as f64 / 1000.0),
        }
    }
}

/// What [`Agent::timing`] hands out.
#[derive(Debug, Clone)]
pub struct TimingSnapshot {
    pub duration: HistogramSnapshot,
    pub lag: HistogramSnapshot,
    pub errors: u64,
    pub last_change: Option<f64>,
}

/// The last map walk, shared between scrapes (see [`crate::bpf::pressure`]).
#[derive(Default)]
pub struct UsageCache {
    last: Mutex<Option<(Instant, Arc<Usage>)>>,
}

impl Agent {
    pub fn timing(&self) -> TimingSnapshot {
        TimingSnapshot {
            duration: self.timing.duration.snapshot(),
            lag: self.timing.lag.snapshot(),
            errors: self.timing.errors.load(Ordering::Relaxed),
            last_change: self.timing.last_change(),
        }
    }

    /// How full each map is, walked at most every [`MIN_INTERVAL`] (cached in `cache`).
    pub async fn map_usage(&self, cache: &UsageCache) -> Result<Arc<Usage>, AgentError> {
        if let Some((at, usage)) = cache.last.lock().expect("usage cache").as_ref() {
            if at.elapsed() < MIN_INTERVAL {
                return Ok(usage.clone());
            }
        }
        // The walk opens the pins itself: the agent's lock is held only to read where they are.
        let pin_dir = self.inner.lock().await.maps.pin_dir().to_path_buf();
        let usage = tokio::task::spawn_blocking(move || crate::bpf::pressure::usage(&pin_dir))
            .await
            .map_err(|e| AgentError::Kernel(format!("map walk: {e}")))??;
        let usage = Arc::new(usage);
        *cache.last.lock().expect("usage cache") = Some((Instant::now(), usage.clone()));
        Ok(usage)
    }

    /// The embedded DNS's counters and its forwarded queries in flight.
    pub fn dns(&self) -> (Arc<DnsStats>, usize) {
        let forwarder = self.discovery.forwarder();
        (forwarder.stats().clone(), forwarder.in_flight())
    }
}

impl Agent {
    /// This node's attachments: host-side interface name and the endpoint's address.
    pub async fn local_interfaces(&self) -> Vec<(String, std::net::Ipv4Addr)> {
        let inner = self.inner.lock().await;
        inner.attachments.iter().map(|a| (a.host_ifname.clone(), a.address)).collect()
    }
}
