//! The monitor's fan-out: a bounded history of recent events (what `meshctl monitor` without
//! `--follow` prints, as `hubble observe` does), and the live subscribers, each with a bounded
//! queue. A subscriber that does not keep up loses events (counted, and told), never slows the
//! reader or grows meshd's memory. Flow events are switched on in the kernel only while a
//! subscriber asks for them; drop events are always on (rate-limited in the kernel).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::event::{EventKind, MonitorEvent};
use crate::bpf::events::{EventControl, EventSettings, EventTotals};
use crate::bpf::BpfError;

/// Events kept for `monitor` without `--follow`.
pub const HISTORY: usize = 1024;
/// Live subscribers at once; one more is refused.
pub const MAX_SUBSCRIBERS: usize = 16;
/// Events queued per subscriber before it starts losing them.
pub const SUBSCRIBER_QUEUE: usize = 1024;

/// Which events a subscriber wants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// drop, flow, or both (empty: both).
    #[serde(default)]
    pub types: Vec<EventKind>,
    /// Either end (or the backend) on this network.
    #[serde(default)]
    pub network: Option<String>,
    /// Either end (or the backend) of this service.
    #[serde(default)]
    pub service: Option<String>,
}

impl Filter {
    pub fn wants(&self, kind: EventKind) -> bool {
        self.types.is_empty() || self.types.contains(&kind)
    }

    pub fn matches(&self, event: &MonitorEvent) -> bool {
        let peers =
            || [Some(&event.source), Some(&event.destination), event.backend.as_ref()].into_iter().flatten();
        self.wants(event.kind)
            && self.network.as_ref().is_none_or(|net| peers().any(|p| p.network.as_ref() == Some(net)))
            && self.service.as_ref().is_none_or(|svc| peers().any(|p| p.service.as_ref() == Some(svc)))
    }
}

/// Counters of the monitor in meshd (the kernel's are in [`EventTotals`]).
#[derive(Debug, Default)]
pub struct MonitorStats {
    /// Events read from the ring buffer.
    pub received: AtomicU64,
    /// Records that were not a whole event of a known type (a bug or a version mismatch).
    pub malformed: AtomicU64,
    /// Events a subscriber lost because its queue was full.
    pub subscriber_dropped: AtomicU64,
    /// Subscriptions refused at [`MAX_SUBSCRIBERS`].
    pub subscribers_refused: AtomicU64,
}

struct Subscriber {
    id: u64,
    filter: Filter,
    queue: mpsc::Sender<Arc<MonitorEvent>>,
    dropped: Arc<AtomicU64>,
}

/// Services counted per event type, at most; events of further services are not counted.
pub const MAX_COUNTED_SERVICES: usize = 4096;

struct Inner {
    history: VecDeque<Arc<MonitorEvent>>,
    /// Events per service that either end (or the backend) belongs to, by type: what the web
    /// view turns into drop and flow rates. Drops are rate-limited in the kernel: under a flood
    /// these are lower bounds (the kernel's `suppressed` counter says by how much).
    per_service: std::collections::HashMap<(String, EventKind), u64>,
    subscribers: Vec<Subscriber>,
    next_id: u64,
    control: Option<EventControl>,
    settings: EventSettings,
}

/// A live subscription: events as they come, and how many this subscriber lost.
pub struct Subscription {
    pub events: mpsc::Receiver<Arc<MonitorEvent>>,
    pub dropped: Arc<AtomicU64>,
    /// Matching events from the history, oldest first, taken when the subscription began.
    pub history: Vec<Arc<MonitorEvent>>,
    id: u64,
    hub: Arc<Monitor>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.id);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{MAX_SUBSCRIBERS} monitors are running on this node already")]
    TooMany,
    #[error(transparent)]
    Kernel(#[from] BpfError),
}

/// The hub; one per node.
pub struct Monitor {
    inner: Mutex<Inner>,
    pub stats: MonitorStats,
}

impl Monitor {
    /// A hub over the kernel's event switch (None: events are not available, e.g. in tests),
    /// with `rate` events per second per CPU and type. Turns drop events on.
    pub fn new(control: Option<EventControl>, rate: u32) -> Result<Arc<Monitor>, MonitorError> {
        let settings = EventSettings { drops: true, flows: false, rate, burst: rate.clamp(1, 1000) };
        let monitor = Monitor {
            inner: Mutex::new(Inner {
                history: VecDeque::with_capacity(HISTORY),
                per_service: std::collections::HashMap::new(),
                subscribers: Vec::new(),
                next_id: 0,
                control,
                settings,
            }),
            stats: MonitorStats::default(),
        };
        monitor.apply(&mut monitor.inner.lock().expect("monitor lock"))?;
        Ok(Arc::new(monitor))
    }

    fn apply(&self, inner: &mut Inner) -> Result<(), BpfError> {
        let flows = inner.subscribers.iter().any(|s| s.filter.wants(EventKind::Flow));
        let settings = EventSettings { flows, ..inner.settings };
        if let Some(control) = inner.control.as_mut() {
            control.apply(settings)?;
        }
        inner.settings = settings;
        Ok(())
    }

    /// Subscribes with `filter`. The history that matches comes with it.
    pub fn subscribe(self: &Arc<Self>, filter: Filter) -> Result<Subscription, MonitorError> {
        let mut inner = self.inner.lock().expect("monitor lock");
        if inner.subscribers.len() >= MAX_SUBSCRIBERS {
            self.stats.subscribers_refused.fetch_add(1, Ordering::Relaxed);
            return Err(MonitorError::TooMany);
        }
        let (queue, events) = mpsc::channel(SUBSCRIBER_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let id = inner.next_id;
        inner.next_id += 1;
        let history = inner.history.iter().filter(|e| filter.matches(e)).cloned().collect();
        inner.subscribers.push(Subscriber { id, filter, queue, dropped: dropped.clone() });
        if let Err(error) = self.apply(&mut inner) {
            inner.subscribers.retain(|s| s.id != id);
            return Err(error.into());
        }
        Ok(Subscription { events, dropped, history, id, hub: self.clone() })
    }

    fn unsubscribe(&self, id: u64) {
        let mut inner = self.inner.lock().expect("monitor lock");
        inner.subscribers.retain(|s| s.id != id);
        if let Err(error) = self.apply(&mut inner) {
            tracing::warn!(%error, "cannot switch monitor events");
        }
    }

    /// Hands a batch of events to the history and the subscribers; never waits.
    pub fn publish(&self, events: Vec<MonitorEvent>) {
        let mut inner = self.inner.lock().expect("monitor lock");
        for event in events {
            let event = Arc::new(event);
            for subscriber in &inner.subscribers {
                if subscriber.filter.matches(&event) && subscriber.queue.try_send(event.clone()).is_err() {
                    subscriber.dropped.fetch_add(1, Ordering::Relaxed);
                    self.stats.subscriber_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            let mut services: Vec<&String> =
                [Some(&event.source), Some(&event.destination), event.backend.as_ref()]
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.service.as_ref())
                    .collect();
            services.dedup();
            for service in services {
                let key = (service.clone(), event.kind);
                let full = inner.per_service.len() >= MAX_COUNTED_SERVICES;
                match inner.per_service.get_mut(&key) {
                    Some(count) => *count += 1,
                    None if !full => {
                        inner.per_service.insert(key, 1);
                    }
                    None => {}
                }
            }
            if inner.history.len() == HISTORY {
                inner.history.pop_front();
            }
            inner.history.push_back(event);
        }
    }

    /// Events counted per (service, type) since meshd started.
    pub fn per_service(&self) -> Vec<(String, EventKind, u64)> {
        let inner = self.inner.lock().expect("monitor lock");
        inner.per_service.iter().map(|((s, k), n)| (s.clone(), *k, *n)).collect()
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.inner.lock().expect("monitor lock").subscribers.len()
    }

    /// The kernel's counters of drop events (index 0) and flow events (index 1).
    pub fn kernel_totals(&self) -> Option<[EventTotals; 2]> {
        let inner = self.inner.lock().expect("monitor lock");
        inner.control.as_ref().and_then(|c| c.totals().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::event::Peer;

    fn event(kind: EventKind, network: &str) -> MonitorEvent {
        let peer = |last| Peer {
            address: std::net::Ipv4Addr::new(10, 0, 0, last),
            port: None,
            network: Some(network.to_string()),
            service: None,
            task: None,
            node: None,
        };
        MonitorEvent {
            time: String::new(),
            kind,
            node: "n1".into(),
            interface: "x".into(),
            direction: "from-container".into(),
            verdict: "dropped".into(),
            reason: "drop-no-endpoint".into(),
            protocol: "icmp".into(),
            source: peer(1),
            destination: peer(2),
            backend: None,
            length: 64,
        }
    }

    #[tokio::test]
    async fn subscribers_get_what_they_filter_and_slow_ones_lose_and_count() {
        let hub = Monitor::new(None, 1000).unwrap();
        hub.publish(vec![event(EventKind::Drop, "front")]);
        let filter = Filter { types: vec![EventKind::Drop], network: Some("front".into()), service: None };
        let mut sub = hub.subscribe(filter).unwrap();
        assert_eq!(sub.history.len(), 1, "history matching the filter comes first");
        hub.publish(vec![event(EventKind::Drop, "back"), event(EventKind::Flow, "front")]);
        hub.publish(vec![event(EventKind::Drop, "front")]);
        let got = sub.events.recv().await.unwrap();
        assert_eq!(got.destination.network.as_deref(), Some("front"));
        assert!(sub.events.try_recv().is_err(), "other network and flows filtered out");

        // Never read: the queue fills, the rest is counted, memory stays bounded.
        hub.publish((0..SUBSCRIBER_QUEUE + 10).map(|_| event(EventKind::Drop, "front")).collect());
        assert_eq!(sub.dropped.load(Ordering::Relaxed), 10);
        assert_eq!(hub.stats.subscriber_dropped.load(Ordering::Relaxed), 10);
        drop(sub);
        assert_eq!(hub.subscribers(), 0);
        assert_eq!(hub.inner.lock().unwrap().history.len(), HISTORY);
    }

    #[test]
    fn subscribers_are_bounded() {
        let hub = Monitor::new(None, 1000).unwrap();
        let subs: Vec<_> = (0..MAX_SUBSCRIBERS).map(|_| hub.subscribe(Filter::default()).unwrap()).collect();
        assert!(matches!(hub.subscribe(Filter::default()), Err(MonitorError::TooMany)));
        assert!(hub.inner.lock().unwrap().settings.flows, "a subscriber of every type turns flows on");
        drop(subs);
        assert!(!hub.inner.lock().unwrap().settings.flows);
        assert!(hub.subscribe(Filter::default()).is_ok());
    }
}
