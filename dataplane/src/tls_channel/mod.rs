//! Lasting request/reply channels between members, over the mutual TLS of TCP 7946: what the
//! managers' Raft group (and the proposals workers send it) talks over. Gossip owns the port and
//! proves who is at the other end (the peer's certificate); this layer carries opaque request
//! and reply bytes, and what they mean is the business of the layer above (`manager`).
//!
//! - [`server`]: serving a channel a member opened, through a [`server::ChannelHandler`].
//! - [`client`]: the client end of a channel to one member, reconnected after any failure.

pub mod client;
pub mod server;
