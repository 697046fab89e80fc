//! Gossip: membership, failure detection and the replicated cluster state, on port 7946.
//!
//! - UDP 7946 carries SWIM (the `foca` crate: probes, suspicion, dissemination) with our signed
//!   state deltas piggybacked on its messages ([`broadcast`]); every datagram is sealed with the
//!   cluster's gossip key ([`crypto`]), rotatable without a lost packet (`manager::key_rotation`);
//!   the key itself never travels in gossip ([`key_material`]).
//! - TCP 7946 carries mutual TLS between members (push-pull anti-entropy, certificate renewal,
//!   the CA key for a promoted manager) and the sealed join handshake ([`tcp`], [`wire`],
//!   [`join`]).
//! - Layers above talk over lasting mutual-TLS channels on the same port (the managers' Raft
//!   group): gossip accepts the connection and proves the peer, then hands it to the
//!   [`tcp::ChannelServer`] installed from above (`crate::tls_channel`).
//! - Every delta passes [`admission`] before it is merged: signature, writer's certificate and
//!   role, removal, clock skew, and content; refusals are counted by reason ([`stats`]).
//! - One task owns foca, the state and this node's [`credentials`] ([`engine`], with
//!   [`commands`], [`membership`] housekeeping, [`certificates`] renewal and [`publish`]ing); it
//!   publishes an immutable `state::Snapshot` on a `watch` channel for everyone else, who talk
//!   to it through a [`GossipHandle`] ([`handle`]). [`start`] creates, joins or rejoins the
//!   cluster; [`persist`] keeps it across restarts.

pub mod admission;
pub mod broadcast;
pub mod certificates;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod crypto;
pub mod engine;
pub mod handle;
pub mod held_keys;
pub mod join;
pub mod key_material;
pub mod member;
pub mod membership;
pub mod parked;
pub mod persist;
pub mod publish;
pub mod start;
pub mod stats;
pub mod tcp;
pub mod wire;

pub use config::GossipConfig;
pub use handle::{Exit, GossipError, GossipHandle};
pub use start::{start, StartError, StartParams};
