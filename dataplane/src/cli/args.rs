//! The `meshctl` command line. Only verbs that work are here; later ones arrive with their
//! features, never as stubs.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::api::proto::Availability;
use crate::api::DEFAULT_SOCKET;

#[derive(Debug, Parser)]
#[command(name = "meshctl", version, about = "Control the meshd agent on this node", long_about = None)]
pub struct CtlArgs {
    /// Path of meshd's API socket
    #[arg(long, global = true, value_name = "PATH", env = "MESHD_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the token another node passes to `meshd --token` to join this cluster
    JoinToken {
        /// Replace the token first; the old one stops admitting nodes, members are unaffected
        #[arg(long)]
        rotate: bool,
    },
    /// Inspect and manage the cluster's nodes
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Leave the cluster on purpose: other nodes show this one as left and drop its endpoints;
    /// meshd then exits (SIGTERM is a restart, not a leave)
    Leave,
    /// Show counters: gossip traffic and what was dropped, and why
    Stats,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List nodes: ID, NAME, ADDRESS, STATUS, AVAILABILITY
    #[command(visible_alias = "list")]
    Ls,
    /// Change a node's availability: `drain` takes its tasks out of load balancing
    Update {
        /// New availability
        #[arg(long, value_enum)]
        availability: Availability,
        /// Node name or ID (prefix)
        node: String,
    },
}
