//! The rtnetlink side of the kernel-facing layer: links, addresses and routes of the node's
//! network namespace, and of the namespaces it wires. Everything goes through the `rtnetlink`
//! crate, never `ip` commands.
//!
//! - [`links`]: look-ups, MACs, deletion, a handle opened inside another namespace.
//! - [`addresses`]: the addresses of this namespace.
//! - [`vxlan`]: the node's collect-metadata VXLAN device and the underlay interface.
//! - [`veth`]: wiring a namespace to the node with a veth pair.
//! - [`handover`]: a veth pair left in the node's namespace for a runtime (Docker) to move.
//! - [`local_address`]: the node's DNS address for Docker containers, on loopback.
//! - [`routes`]: the node's routes into the overlay.

pub mod addresses;
pub mod handover;
pub mod links;
pub mod local_address;
pub mod routes;
pub mod veth;
pub mod vxlan;
