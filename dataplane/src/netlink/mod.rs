//! The rtnetlink side of the kernel-facing layer: links, addresses, routes and neighbours of the
//! node's network namespace. Everything goes through the `rtnetlink` crate, never `ip` commands.

pub mod addresses;
pub mod links;
