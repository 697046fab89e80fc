//! The `meshctl` command line. Only verbs that work are here; later ones arrive with their
//! features, never as stubs.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use clap::builder::PossibleValuesParser;

use crate::api::DEFAULT_SOCKET;
use crate::state::{Availability, EndpointMode};

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
    /// Show counters: gossip traffic, eBPF verdicts, and what was dropped, and why
    Stats,
    /// Show drop and flow events from the eBPF programs on this node: the recent ones, or with
    /// --follow every new one until Ctrl-C. Events are rate-limited in the kernel (see
    /// `meshd --monitor-rate`); lost ones are counted
    Monitor {
        /// Which events: drops, new balanced flows (to a VIP or a published port), or both
        #[arg(long = "type", value_enum, default_value_t = EventType::All)]
        kind: EventType,
        /// Only events with an end (or the backend) on this network
        #[arg(long, value_name = "NET")]
        network: Option<String>,
        /// Only events with an end (or the backend) in this service
        #[arg(long, value_name = "SVC")]
        service: Option<String>,
        /// Keep printing new events until interrupted
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Manage overlay networks
    Network {
        #[command(subcommand)]
        command: NetworkCommand,
    },
    /// Manage services (VIPs balanced in eBPF over their tasks)
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// Attach a network namespace to a network; prints its address
    Attach {
        /// Namespace name (under /run/netns) or path
        #[arg(long, value_name = "NAME|PATH")]
        netns: String,
        /// Network to attach to
        #[arg(long, value_name = "NET")]
        network: String,
        /// Make this endpoint a task of this service
        #[arg(long, value_name = "SVC")]
        service: Option<String>,
        /// Task name (resolvable by DNS as TASK and TASK.NET)
        #[arg(long, value_name = "TASK")]
        name: Option<String>,
        /// Do not write /etc/netns/NAME/resolv.conf (the DNS at 127.0.0.11 still answers)
        #[arg(long)]
        no_resolv_conf: bool,
    },
    /// Detach a network namespace from a network (or from all)
    Detach {
        #[arg(long, value_name = "NAME|PATH")]
        netns: String,
        #[arg(long, value_name = "NET")]
        network: Option<String>,
        /// Keep the tasks terminating this long first (at most 1h): no new flows, open ones
        /// finish
        #[arg(long, value_name = "DURATION", value_parser = crate::duration::within(std::time::Duration::from_millis(1), std::time::Duration::from_secs(3600)))]
        grace: Option<std::time::Duration>,
    },
}

/// `monitor --type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventType {
    Drop,
    Flow,
    All,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a service on a network (vip mode: gets a VIP from the network's subnet)
    Create {
        name: String,
        #[arg(long, value_name = "NET")]
        network: String,
        /// PUBLISHED:TARGET[/tcp|/udp]: every node answers on PUBLISHED and forwards to TARGET
        /// on a task (repeatable)
        #[arg(long, value_name = "PUBLISHED:TARGET")]
        publish: Vec<String>,
        #[arg(long, default_value = "vip", value_parser = one_of::<EndpointMode>(&["vip", "dnsrr"]))]
        endpoint_mode: EndpointMode,
    },
    /// List services: NAME, NETWORK, MODE, VIP, BACKENDS (healthy/all), PORTS
    #[command(visible_alias = "list")]
    Ls,
    /// List a service's tasks: TASK, ADDRESS, NODE, STATE
    Ps { name: String },
    /// Show the VIP's load balancing as this node's kernel holds it: Maglev slots and tracked
    /// flows per backend
    Inspect { name: String },
    /// Remove a service (its tasks stay attached to the network)
    Rm { name: String },
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create an overlay network (replicated cluster-wide)
    Create {
        name: String,
        /// IPv4 subnet, e.g. 10.10.0.0/24 (/8 to /28)
        #[arg(long, value_name = "CIDR")]
        subnet: String,
    },
    /// List networks: NAME, SUBNET, VNI, GATEWAY, ENDPOINTS
    #[command(visible_alias = "list")]
    Ls,
    /// Remove a network (refused while endpoints are attached)
    Rm { name: String },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List nodes: ID, NAME, ADDRESS, STATUS, AVAILABILITY
    #[command(visible_alias = "list")]
    Ls,
    /// Change a node's availability: `drain` takes its tasks out of load balancing
    Update {
        /// New availability
        #[arg(long, value_parser = one_of::<Availability>(&["active", "drain"]))]
        availability: Availability,
        /// Node name or ID (prefix)
        node: String,
    },
}

/// A parser that offers `names` (shown in `--help` and in errors) and parses the chosen one with
/// the domain type's `FromStr`.
fn one_of<T>(names: &'static [&'static str]) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    use clap::builder::TypedValueParser;
    PossibleValuesParser::new(names).try_map(|name| name.parse::<T>().map_err(|e| e.to_string()))
}
