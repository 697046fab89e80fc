//! meshd: the node agent and its kernel-facing layer.
//!
//! Floors, top to bottom; a module imports only from floors below it (docs/architecture.md has
//! the picture):
//!
//! 1. [`cli`] (`meshctl`'s grammar and tables), [`daemon`] (the `meshd` process: flags,
//!    start-up order, the API handler), [`cni`] (the `meshd-cni` plugin) and [`observe`]
//!    (metrics and the web view, over HTTP).
//! 2. [`api`]: the local API's messages, its server and client, and the rows of its replies;
//!    [`docker`]: Docker's network driver protocol, its plugin socket, a Docker API client, and
//!    the driver that carries Docker's calls out with the agent (`docker::driver`).
//! 3. [`agent`]: the node's operations (networks, services, attach/detach) and the loop that
//!    keeps the kernel equal to the cluster state; [`monitor`]: drop and flow events from the
//!    programs, named and fanned out.
//! 4. [`manager`]: the managers' Raft group, which decides everything cluster-wide (networks,
//!    address blocks, services, roles, removals, secrets) and mirrors it into gossip;
//!    [`tls_channel`]: the lasting mutual-TLS request/reply channels Raft talks over.
//! 5. The rules, pure: [`reconcile`] (cluster state + local facts -> map contents),
//!    [`discovery`] (which names DNS answers, and serving them), [`service`] (validation,
//!    published ports, backend health, Maglev), [`network`] (validation, IPAM, attachments).
//! 6. [`gossip`]: membership and the replicated state on port 7946.
//! 7. [`state`]: the replicated tables, their records and merge rules, and the snapshot
//!    everyone reads; [`trust`]: node keys, the cluster CA, certificates, record signatures,
//!    mutual TLS.
//! 8. The kernel: [`bpf`] (aya: programs, links, maps), [`netlink`] (rtnetlink: links,
//!    addresses, routes, veths, the VXLAN device), [`host`] (sysctls, nftables).
//! 9. Foundations: [`identity`] (node ID, cluster secrets, join token), [`state_dir`] (the
//!    node's persistent directory), [`name_rules`] (the rules for network, service and task
//!    names), and [`util`] (hash, hex, durations, a histogram: helpers with no meshd concept).
//!
//! `fixture` (tests only) is a small cluster for the unit tests of the pure layers.

pub mod agent;
pub mod api;
pub mod bpf;
pub mod cli;
pub mod cni;
pub mod daemon;
pub mod discovery;
pub mod docker;
pub mod encryption;
pub mod gossip;
pub mod host;
pub mod identity;
pub mod manager;
pub mod monitor;
pub mod name_rules;
pub mod netlink;
pub mod network;
pub mod observe;
pub mod reconcile;
pub mod service;
pub mod state;
pub mod state_dir;
pub mod tls_channel;
pub mod trust;
pub mod util;

#[cfg(test)]
mod fixture;
