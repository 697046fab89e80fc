//! Seeing the network from outside the node: Prometheus metrics, the web view and the JSON it
//! polls, all on `meshd --metrics-addr` (off unless given). Sits beside the daemon, above the
//! agent, the monitor and gossip, which it only reads.
//!
//! - [`metrics`]: `/metrics`, gathered at scrape time.
//! - [`cluster`]: `/api/cluster`, the picture's data.
//! - [`http`]: the axum server and the page (`webview.html`, compiled in).

pub mod cluster;
pub mod http;
pub mod metrics;

use std::sync::{Arc, Mutex};

use crate::agent::telemetry::UsageCache;
use crate::agent::Agent;
use crate::gossip::GossipHandle;
use crate::monitor::Monitor;

/// What the metrics and the web view read.
pub struct Sources {
    pub gossip: GossipHandle,
    pub agent: Arc<Agent>,
    pub monitor: Arc<Monitor>,
    /// The metrics listener's refusals.
    pub http: Arc<http::HttpCounters>,
    usage: UsageCache,
    verdicts: Mutex<metrics::VerdictTotals>,
}

impl Sources {
    pub fn new(gossip: GossipHandle, agent: Arc<Agent>, monitor: Arc<Monitor>) -> Sources {
        Sources {
            gossip,
            agent,
            monitor,
            http: Default::default(),
            usage: UsageCache::default(),
            verdicts: Mutex::default(),
        }
    }
}
