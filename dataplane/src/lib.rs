//! meshd: the node agent and its kernel-facing layer.
//!
//! Layers, top to bottom (see docs/architecture.md):
//! - [`api`]: the local API on a Unix socket, its protocol, and the client `meshctl` uses;
//! - [`daemon`]: start-up order, the API handler and shutdown;
//! - [`state_dir`], [`identity`], [`cluster_identity`]: what a node keeps across restarts;
//! - [`bpf`] (aya) and [`netlink`] (rtnetlink): everything that talks to the kernel.

pub mod api;
pub mod bpf;
pub mod cli;
pub mod cluster_identity;
pub mod config;
pub mod daemon;
pub mod gossip;
pub mod hex;
pub mod identity;
pub mod logging;
pub mod netlink;
pub mod overlay;
pub mod state;
pub mod state_dir;
