//! What one namespace can take from the node's embedded DNS, and what the node gives in all:
//! bounds on forwarded queries in flight and on TCP connections, each with a counter when hit.
//!
//! Every attached namespace has its own listener, but they share one process, one forwarder and
//! one set of file descriptors. Without per-namespace bounds one container can take all of them
//! (its lookups to an upstream that never answers hold the forwarder's slots; its TCP
//! connections hold descriptors) and every other container's lookups fail. So:
//!
//! | bound | value | when hit |
//! |---|---|---|
//! | forwarded queries in flight, per namespace | [`FORWARD_PER_NAMESPACE`] | SERVFAIL at once, `forward_busy_namespace` |
//! | forwarded queries in flight, node | `forward::MAX_IN_FLIGHT` | SERVFAIL at once, `forward_busy_node` |
//! | TCP connections, per namespace | [`TCP_PER_NAMESPACE`] | REFUSED to its first query, then closed; `tcp_refused_namespace` |
//! | TCP connections, node | [`TCP_TOTAL`] | the same; `tcp_refused_node` |
//! | connections being refused at once | [`TCP_REFUSALS`] | closed without an answer; `tcp_dropped` |
//! | TCP connections to the node's DNS address from an address no namespace owns | none | REFUSED (within [`TCP_REFUSALS`]); `tcp_refused_unknown` |
//! | UDP datagrams waiting for the slow path, per namespace | `fast::slow::QUEUE` | dropped; `udp_slow_queue_full` |
//!
//! Local names never wait for anything, so they answer whatever the limits say.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Forwarded queries one namespace may have in flight (an upstream that never answers holds a
/// slot for the forwarder's timeout per upstream): a sixteenth of the node's.
pub const FORWARD_PER_NAMESPACE: usize = 64;
/// TCP connections one namespace may hold open (idle ones close after the listener's timeout).
pub const TCP_PER_NAMESPACE: usize = 16;
/// TCP connections all namespaces together may hold open.
pub const TCP_TOTAL: usize = 256;
/// Connections over a bound that get their REFUSED answer at the same time; more are closed.
pub const TCP_REFUSALS: usize = 8;

/// Counters of the embedded DNS, shared by every namespace of the node.
#[derive(Debug, Default)]
pub struct DnsCounters {
    pub forwarded: AtomicU64,
    pub forward_failed: AtomicU64,
    pub forward_busy_namespace: AtomicU64,
    pub forward_busy_node: AtomicU64,
    pub tcp_accepted: AtomicU64,
    pub tcp_refused_namespace: AtomicU64,
    pub tcp_refused_node: AtomicU64,
    pub tcp_dropped: AtomicU64,
    /// TCP connections to the node's DNS address from an address that no namespace owns.
    pub tcp_refused_unknown: AtomicU64,
    /// UDP datagrams the fast path could not hand to a namespace's full slow-path queue.
    pub udp_slow_queue_full: AtomicU64,
}

impl DnsCounters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// (name, value) of every counter, for `meshctl stats`.
    pub fn rows(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("forwarded", get(&self.forwarded)),
            ("forward_failed", get(&self.forward_failed)),
            ("forward_busy_namespace", get(&self.forward_busy_namespace)),
            ("forward_busy_node", get(&self.forward_busy_node)),
            ("tcp_accepted", get(&self.tcp_accepted)),
            ("tcp_refused_namespace", get(&self.tcp_refused_namespace)),
            ("tcp_refused_node", get(&self.tcp_refused_node)),
            ("tcp_dropped", get(&self.tcp_dropped)),
            ("tcp_refused_unknown", get(&self.tcp_refused_unknown)),
            ("udp_slow_queue_full", get(&self.udp_slow_queue_full)),
        ]
    }
}

/// The node's bounds (one per node, shared by every namespace's listener).
#[derive(Debug)]
pub struct NodeLimits {
    tcp: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    pub counters: DnsCounters,
}

impl NodeLimits {
    pub fn new() -> Arc<NodeLimits> {
        Arc::new(NodeLimits {
            tcp: Arc::new(Semaphore::new(TCP_TOTAL)),
            refusals: Arc::new(Semaphore::new(TCP_REFUSALS)),
            counters: DnsCounters::default(),
        })
    }

    /// The bounds of one more namespace.
    pub fn namespace(self: &Arc<Self>) -> Arc<NamespaceLimits> {
        Arc::new(NamespaceLimits {
            node: self.clone(),
            forward: Semaphore::new(FORWARD_PER_NAMESPACE),
            tcp: Arc::new(Semaphore::new(TCP_PER_NAMESPACE)),
        })
    }
}

/// One namespace's bounds.
#[derive(Debug)]
pub struct NamespaceLimits {
    pub node: Arc<NodeLimits>,
    forward: Semaphore,
    tcp: Arc<Semaphore>,
}

/// Why a TCP connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpRefusal {
    Namespace,
    Node,
}

/// The two permits an admitted TCP connection holds until it closes.
#[derive(Debug)]
pub struct TcpPermit {
    _namespace: OwnedSemaphorePermit,
    _node: OwnedSemaphorePermit,
}

impl NamespaceLimits {
    pub fn counters(&self) -> &DnsCounters {
        &self.node.counters
    }

    /// A forwarding slot of this namespace, or None (counted) when it has them all in flight.
    pub fn forward_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let slot = self.forward.try_acquire().ok();
        if slot.is_none() {
            DnsCounters::add(&self.node.counters.forward_busy_namespace);
        }
        slot
    }

    /// Admits one more TCP connection of this namespace, or says which bound it hit (counted).
    pub fn admit_tcp(&self) -> Result<TcpPermit, TcpRefusal> {
        let counters = &self.node.counters;
        let Ok(namespace) = self.tcp.clone().try_acquire_owned() else {
            DnsCounters::add(&counters.tcp_refused_namespace);
            return Err(TcpRefusal::Namespace);
        };
        let Ok(node) = self.node.tcp.clone().try_acquire_owned() else {
            DnsCounters::add(&counters.tcp_refused_node);
            return Err(TcpRefusal::Node);
        };
        DnsCounters::add(&counters.tcp_accepted);
        Ok(TcpPermit { _namespace: namespace, _node: node })
    }

    /// A permit to answer one refused connection, or None (counted: it is closed unanswered).
    pub fn refusal(&self) -> Option<OwnedSemaphorePermit> {
        self.node.refusal()
    }
}

impl NodeLimits {
    /// A permit to answer one refused connection, or None (counted: it is closed unanswered).
    pub fn refusal(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.refusals.clone().try_acquire_owned().ok();
        if permit.is_none() {
            DnsCounters::add(&self.counters.tcp_dropped);
        }
        permit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_namespace_cannot_take_the_nodes_share() {
        let node = NodeLimits::new();
        let greedy = node.namespace();
        let other = node.namespace();
        let slots: Vec<_> = (0..FORWARD_PER_NAMESPACE).map(|_| greedy.forward_slot().unwrap()).collect();
        assert!(greedy.forward_slot().is_none());
        assert!(other.forward_slot().is_some(), "another namespace still forwards");
        drop(slots);
        let held: Vec<_> = (0..TCP_PER_NAMESPACE).map(|_| greedy.admit_tcp().unwrap()).collect();
        assert_eq!(greedy.admit_tcp().unwrap_err(), TcpRefusal::Namespace);
        assert!(other.admit_tcp().is_ok());
        let rows: std::collections::HashMap<_, _> = node.counters.rows().into_iter().collect();
        assert_eq!((rows["forward_busy_namespace"], rows["tcp_refused_namespace"]), (1, 1));
        drop(held);
        // The node's bound holds across namespaces.
        let many: Vec<_> = (0..TCP_TOTAL / TCP_PER_NAMESPACE)
            .flat_map(|_| {
                let ns = node.namespace();
                (0..TCP_PER_NAMESPACE).map(move |_| ns.admit_tcp().unwrap()).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(node.namespace().admit_tcp().unwrap_err(), TcpRefusal::Node);
        drop(many);
    }
}
