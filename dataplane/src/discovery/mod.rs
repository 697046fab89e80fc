//! Name discovery: the embedded DNS at 127.0.0.11 in every attached namespace.
//!
//! - [`names`]: which names exist and what they answer, built from a snapshot (pure).
//! - [`serve`]: the listeners, one per namespace, and the upstream resolvers for everything else.
//! - [`node`]: one listener on the node, scoped by the asker's address (Docker containers).
//!
//! The DNS server itself (handler, forwarder, listener) is the `meshd-dns` crate.

pub mod names;
pub mod node;
pub mod serve;

pub use serve::Discovery;
