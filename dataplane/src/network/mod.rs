//! Overlay networks as the cluster decides them (pure: no I/O).
//!
//! - [`plan`]: names, subnets and VNIs, validated before anything is written.
//! - [`ipam`]: per-node address blocks claimed through the cluster state, and which address a
//!   node hands out next.
//! - [`pool`]: the next free subnet of the cluster's default address pools.
//! - [`attachment`]: a namespace this node attached (the local facts the maps need).
//! - [`ifname`]: interface names a runtime may ask for.
//!
//! Wiring a namespace (the veth pair) is kernel work: `netlink::veth`; doing it on request is
//! the agent's: `agent::attachments`.

pub mod attachment;
pub mod ifname;
pub mod ipam;
pub mod plan;
pub mod pool;

pub use attachment::LocalAttachment;
pub use plan::NetworkError;
