//! The narrow ports through which the agent changes the node: [`Links`] (veth pairs wired into
//! namespaces), [`Maps`] (the datapath's maps and program links), [`Host`] (nftables, sysctls,
//! routes, the node's addresses), [`NamespaceDns`] (the DNS listener inside a namespace), and the
//! cluster it publishes to ([`ClusterState`] for gossip, [`Decisions`] for the managers). Each
//! holds only what the agent calls; the real implementations wrap `netlink`, `bpf`, `host`,
//! `discovery`, `gossip` and `manager` unchanged. Unit tests of `agent` give it in-memory fakes.
//!
//! The agent takes them as trait objects, not type parameters: `Agent` is named by the API, the
//! CNI and Docker servers and the daemon, and a parameter would spread into all of them for no
//! gain (one boxed future per call costs nothing next to a netlink round trip or a gossip write).
//! Async methods return [`BoxFuture`] so the traits stay object safe without another crate.

pub mod cluster;
pub mod dns;
pub mod host;
pub mod links;
pub mod maps;

use std::future::Future;
use std::pin::Pin;

pub use cluster::{ClusterState, Decisions};
pub use dns::NamespaceDns;
pub use host::Host;
pub use links::Links;
pub use maps::Maps;

/// A boxed future the agent's tasks can move between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
