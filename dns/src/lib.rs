//! meshd's embedded DNS: what every attached namespace asks at 127.0.0.11.
//!
//! Three layers, as in hickory-dns itself:
//! - [`registry`]: the names (pure data, rebuilt from the cluster state, swapped atomically);
//! - [`handler`]: answers one request from the registry, scoped to the asking namespace's
//!   networks, or hands it to the [`forward`]er; it knows nothing of sockets;
//! - [`listener`]: UDP and TCP sockets on 127.0.0.11:53 inside a namespace, served by
//!   hickory-server with per-connection timeouts;
//! - [`by_source`]: one address on the node, each query scoped by its source address (Docker
//!   containers, whose 127.0.0.11 is Docker's resolver).
//! - [`stats`]: queries by outcome and a latency histogram, atomics that meshd reads.
//! - [`fast`]: the fast path for the names meshd owns over UDP (answers prepared when the
//!   registry changes, batched receive and send on per-core sockets), in front of the listener;
//!   everything else still goes through hickory and the handler ([`udp_size`]: one rule for
//!   the size of UDP answers on both paths).
//!
//! No unsafe code.

#![forbid(unsafe_code)]

pub mod by_source;
pub mod fast;
pub mod forward;
pub mod handler;
pub mod limits;
pub mod listener;
pub mod public;
pub mod registry;
pub mod stats;
pub mod udp_size;

pub use forward::Forwarder;
pub use handler::MeshHandler;
pub use registry::{Lookup, Registry};
pub use stats::{DnsStats, Outcome};
