//! Gossip: membership, failure detection and the replicated cluster state, on port 7946.
//!
//! - UDP 7946 carries SWIM (the `foca` crate: probes, suspicion, dissemination) with our state
//!   deltas piggybacked on its messages ([`broadcast`]).
//! - TCP 7946 carries the join handshake and periodic push-pull anti-entropy: a full state
//!   exchange that repairs whatever gossip missed ([`wire`], [`tcp`]).
//! - Every datagram and frame is sealed with the cluster's keys ([`crypto`]); nothing readable
//!   crosses the wire, and forged, replayed or malformed input is dropped and counted ([`stats`]).
//! - One task owns foca and the state ([`agent`], with [`membership`] housekeeping and
//!   [`publish`]ing); it publishes an immutable `state::Snapshot` on a `watch` channel for
//!   everyone else, who talk to it through a [`GossipHandle`] ([`handle`]). [`start`] creates,
//!   joins or rejoins the cluster; [`persist`] keeps it across restarts.

pub mod agent;
pub mod broadcast;
pub mod config;
pub mod crypto;
pub mod handle;
pub mod member;
pub mod membership;
pub mod persist;
pub mod publish;
pub mod start;
pub mod stats;
pub mod tcp;
pub mod wire;

pub use config::GossipConfig;
pub use handle::{Exit, GossipHandle};
pub use start::{start, StartError, StartParams};
