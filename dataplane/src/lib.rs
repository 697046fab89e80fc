//! meshd: the node agent and its kernel-facing layer.
//!
//! Floors, top to bottom; a module imports only from floors below it (docs/architecture.md has
//! the picture):
//!
//! 1. [`cli`] (`meshctl`'s grammar and tables) and [`daemon`] (the `meshd` process: flags,
//!    start-up order, the API handler).
//! 2. [`api`]: the local API's messages, its server and client, and the rows of its replies.
//! 3. [`agent`]: the node's operations (networks, services, attach/detach) and the loop that
//!    keeps the kernel equal to the cluster state.
//! 4. The rules, pure: [`reconcile`] (cluster state + local facts -> map contents),
//!    [`discovery`] (which names DNS answers, and serving them), [`service`] (validation,
//!    published ports, backend health, Maglev), [`network`] (validation, IPAM, attachments).
//! 5. [`gossip`]: membership and the replicated state on port 7946.
//! 6. [`state`]: the replicated tables, their records and merge rules, and the snapshot
//!    everyone reads.
//! 7. The kernel: [`bpf`] (aya: programs, links, maps), [`netlink`] (rtnetlink: links,
//!    addresses, routes, veths, the VXLAN device), [`host`] (sysctls, nftables).
//! 8. Foundations: [`identity`] (node ID, cluster secrets, join token), [`state_dir`], [`hash`],
//!    [`hex`], [`duration`], [`names`] (the rules for network, service and task names).

pub mod agent;
pub mod api;
pub mod bpf;
pub mod cli;
pub mod daemon;
pub mod discovery;
pub mod duration;
pub mod gossip;
pub mod hash;
pub mod hex;
pub mod host;
pub mod identity;
pub mod names;
pub mod netlink;
pub mod network;
pub mod reconcile;
pub mod service;
pub mod state;
pub mod state_dir;

#[cfg(test)]
mod fixture;
