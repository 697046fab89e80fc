//! Gossip: membership, failure detection and the replicated cluster state, on port 7946.
//!
//! - UDP 7946 carries SWIM (the `foca` crate: probes, suspicion, dissemination) with our state
//!   deltas piggybacked on its messages ([`broadcast`]).
//! - TCP 7946 carries the join handshake and periodic push-pull anti-entropy: a full state
//!   exchange that repairs whatever gossip missed ([`wire`], [`tcp`]).
//! - Every datagram and frame is sealed with the cluster's keys ([`crypto`]); nothing readable
//!   crosses the wire, and forged, replayed or malformed input is dropped and counted ([`stats`]).
//! - One task owns foca and the state ([`agent`]); it publishes an immutable [`Snapshot`] on a
//!   `watch` channel for everyone else (API, reconcilers, DNS).

pub mod agent;
pub mod broadcast;
pub mod config;
pub mod crypto;
pub mod member;
pub mod persist;
pub mod snapshot;
pub mod stats;
pub mod tcp;
pub mod wire;

pub use agent::{start, GossipHandle, StartError};
pub use config::GossipConfig;
pub use snapshot::Snapshot;
