//! The one task that reads the kernel's event ring: it wakes when the ring has data, decodes
//! each record, resolves names against the latest snapshot and hands the batch to the hub.
//!
//! Its cost is bounded by the kernel's rate limit (events per second per CPU), not by the
//! traffic: a flood of drops reaches it as at most that many events.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use meshd_ebpf::events::{Event, TYPE_DROP, TYPE_FLOW};
use tokio::io::unix::AsyncFd;

use super::event::Directory;
use super::hub::Monitor;
use crate::bpf::events::EventRing;
use crate::gossip::GossipHandle;

/// Events taken from the ring in one go before they are handed on.
const BATCH: usize = 256;
/// Interface names remembered (ifindex -> name); the cache starts over when it is full, and
/// every minute so a reused ifindex is named afresh.
const NAME_CACHE: usize = 4096;
const NAME_CACHE_TTL: Duration = Duration::from_secs(60);

/// Reads the ring until meshd stops.
pub async fn run(ring: EventRing, monitor: Arc<Monitor>, gossip: GossipHandle) {
    // The safe constructor is deprecated for I/O safety (a descriptor closed while registered);
    // here the AsyncFd owns the RingBuf, which owns the descriptor, so it cannot be.
    #[allow(deprecated)]
    let fd = AsyncFd::new(ring.ring);
    let mut fd = match fd {
        Ok(fd) => fd,
        Err(error) => {
            tracing::warn!(%error, "cannot watch the monitor's ring buffer; no events");
            return;
        }
    };
    let mut snapshot = gossip.snapshot();
    let mut directory = Directory::new(&snapshot);
    let mut names = Names::default();
    loop {
        let mut guard = match fd.readable_mut().await {
            Ok(guard) => guard,
            Err(error) => {
                tracing::warn!(%error, "monitor ring buffer failed; no more events");
                return;
            }
        };
        loop {
            let mut raw = Vec::with_capacity(BATCH);
            {
                let ring = guard.get_inner_mut();
                while raw.len() < BATCH {
                    let Some(item) = ring.next() else { break };
                    match Event::from_bytes(&item) {
                        Some(event) if matches!(event.kind, TYPE_DROP | TYPE_FLOW) => raw.push(event),
                        _ => {
                            monitor.stats.malformed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            if raw.is_empty() {
                break;
            }
            monitor.stats.received.fetch_add(raw.len() as u64, Ordering::Relaxed);
            let latest = gossip.snapshot();
            if !Arc::ptr_eq(&latest, &snapshot) {
                snapshot = latest;
                directory = Directory::new(&snapshot);
            }
            let boot = boot_time();
            let events =
                raw.iter().map(|event| directory.describe(event, names.name(event.ifindex), boot)).collect();
            monitor.publish(events);
            if raw.len() < BATCH {
                break;
            }
        }
        guard.clear_ready();
    }
}

/// The wall-clock time at which CLOCK_MONOTONIC (the clock of `bpf_ktime_get_ns`) was zero.
fn boot_time() -> SystemTime {
    let now = SystemTime::now();
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(mono) => {
            let since =
                Duration::new(mono.tv_sec().max(0) as u64, mono.tv_nsec().clamp(0, 999_999_999) as u32);
            now.checked_sub(since).unwrap_or(now)
        }
        Err(_) => now,
    }
}

/// Interface names by index, in meshd's own namespace (the node's).
#[derive(Default)]
struct Names {
    cache: HashMap<u32, String>,
    since: Option<Instant>,
}

impl Names {
    fn name(&mut self, ifindex: u32) -> String {
        if self.cache.len() >= NAME_CACHE || self.since.is_none_or(|t| t.elapsed() > NAME_CACHE_TTL) {
            self.cache.clear();
            self.since = Some(Instant::now());
        }
        self.cache
            .entry(ifindex)
            .or_insert_with(|| {
                nix::net::if_::if_indextoname(ifindex)
                    .ok()
                    .and_then(|name| name.into_string().ok())
                    .unwrap_or_else(|| format!("if{ifindex}"))
            })
            .clone()
    }
}
