//! Overlay networks: what a network is, who may use which addresses, attaching namespaces, and
//! turning the cluster state into the forwarding maps.
//!
//! - [`network`]: names, subnets and VNIs, validated before anything is written.
//! - [`ipam`]: per-node address blocks claimed through the cluster state.
//! - [`service`]: service names, modes and VIPs; [`maglev`]: the consistent-hash tables.
//! - [`reconcile`]: the desired contents of the forwarding maps (pure) and the diff applied.
//! - [`attach`]: veth pairs, addresses and routes in the node's and the container's namespace.
//! - [`discovery`]: the embedded DNS of every attached namespace, fed from the state.
//! - [`manager`]: the API-facing operations, serialised, and the reconcile loop.

pub mod attach;
pub mod discovery;
pub mod ipam;
pub mod maglev;
pub mod manager;
pub mod network;
pub mod reconcile;
pub mod service;
pub mod vxlan;
