//! The `meshctl` command line. Only verbs that work are here; later ones arrive with their
//! features, never as stubs.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

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
    /// Inspect the cluster's nodes
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List nodes: ID, NAME, ADDRESS, STATUS, AVAILABILITY
    #[command(visible_alias = "list")]
    Ls,
}
