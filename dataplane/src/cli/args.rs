//! The `meshctl` command line. Only verbs that work are here; later ones arrive with their
//! features, never as stubs.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use clap::builder::PossibleValuesParser;

use crate::api::DEFAULT_SOCKET;
use crate::state::{Availability, EndpointMode, Health, Role};

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
    /// Print the token a new node passes to `meshd --join` to join this cluster as a worker or
    /// as a manager (on a manager)
    JoinToken {
        /// The role the token admits a node as
        #[arg(value_parser = one_of::<Role>(&["worker", "manager"]))]
        role: Role,
        /// Replace that role's token first; the old one stops admitting nodes, members are
        /// unaffected
        #[arg(long)]
        rotate: bool,
    },
    /// Manage the cluster's gossip key
    Key {
        #[command(subcommand)]
        command: KeyCommand,
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
        /// Another name of this endpoint on the network (repeatable; resolves to every endpoint
        /// holding it, as Docker's --network-alias)
        #[arg(long = "alias", value_name = "NAME")]
        aliases: Vec<String>,
        /// The task's health from the start: `starting` takes no new flows and is in no service
        /// name until `meshctl task health TASK healthy`
        #[arg(long, value_name = "STATE", value_parser = one_of::<Health>(&["healthy", "starting", "unhealthy"]))]
        health: Option<Health>,
        /// Do not write /etc/netns/NAME/resolv.conf (the DNS at 127.0.0.11 still answers)
        #[arg(long)]
        no_resolv_conf: bool,
    },
    /// Tasks on this node: their health
    Task {
        #[command(subcommand)]
        command: TaskCommand,
    },
    /// This node's attachments, also those made by runtimes (meshd-cni, the Docker driver)
    Attachment {
        #[command(subcommand)]
        command: AttachmentCommand,
    },
    /// Print a shell completion script: `meshctl completion bash > /etc/bash_completion.d/meshctl`
    Completion {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Detach a network namespace from a network (or from all)
    Detach {
        #[arg(long, value_name = "NAME|PATH")]
        netns: String,
        #[arg(long, value_name = "NET")]
        network: Option<String>,
        /// Keep the tasks terminating this long first (at most 1h): no new flows, open ones
        /// finish
        #[arg(long, value_name = "DURATION", value_parser = crate::util::duration::within(std::time::Duration::from_millis(1), std::time::Duration::from_secs(3600)))]
        grace: Option<std::time::Duration>,
    },
    /// Write a consistent backup of the managers' state and this manager's identity and CA to
    /// FILE (a new file, mode 0600; on a manager). It holds the CA key: keep it offline.
    /// Restore with `meshd --restore FILE --force-new-cluster` on an empty state directory
    Backup {
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
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
pub enum TaskCommand {
    /// Set the health of a task on this node (the runtime's health check, for a runtime meshd
    /// does not read): only healthy tasks take new flows and are in their service's names;
    /// open connections are kept
    Health {
        /// The task's name (`attach --name`)
        task: String,
        #[arg(value_parser = one_of::<Health>(&["healthy", "starting", "unhealthy"]))]
        health: Health,
    },
}

#[derive(Debug, Subcommand)]
pub enum AttachmentCommand {
    /// List attachments: NETWORK, ADDRESS, SERVICE, TASK, VETH, NETNS, OWNER
    #[command(visible_alias = "list")]
    Ls {
        /// Only those whose owner key starts with this (`cni/`, `docker/`)
        #[arg(long, value_name = "PREFIX")]
        owner: Option<String>,
    },
}

/// Shells `meshctl completion` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a service on a network (vip mode: gets a VIP from the network's subnet)
    Create {
        name: String,
        #[arg(long, value_name = "NET")]
        network: String,
        /// PUBLISHED[-END]:TARGET[-END][/tcp|/udp], or Docker's long syntax
        /// published=..,target=..[,protocol=tcp|udp][,mode=ingress|host][,address=IP|CIDR]:
        /// the nodes answer on PUBLISHED and forward to TARGET on a task (repeatable)
        #[arg(long, value_name = "PUBLISHED:TARGET")]
        publish: Vec<String>,
        #[arg(long, default_value = "vip", value_parser = one_of::<EndpointMode>(&["vip", "dnsrr"]))]
        endpoint_mode: EndpointMode,
    },
    /// Change a service in place: open connections and the ports that stay are kept
    Update {
        name: String,
        /// Publish another port or range, as service create's --publish (repeatable)
        #[arg(long, value_name = "PUBLISHED:TARGET")]
        publish_add: Vec<String>,
        /// Stop publishing a port or range, PUBLISHED[-END][:TARGET[-END]][/tcp|/udp] or
        /// published=..[,target=..][,protocol=..][,address=..] (repeatable; applied before
        /// --publish-add)
        #[arg(long, value_name = "PUBLISHED")]
        publish_rm: Vec<String>,
        /// Switch between a VIP and DNS round robin
        #[arg(long, value_parser = one_of::<EndpointMode>(&["vip", "dnsrr"]))]
        endpoint_mode: Option<EndpointMode>,
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
        /// IPv4 subnet, e.g. 10.10.0.0/24 (/8 to /28); default: the next free subnet of the
        /// cluster's default address pools (meshd --default-addr-pool, as in Swarm)
        #[arg(long, value_name = "CIDR", value_parser = parse_subnet)]
        subnet: Option<ipnet::Ipv4Net>,
        /// The containers' gateway (default: the subnet's first address)
        #[arg(long, value_name = "IP")]
        gateway: Option<std::net::Ipv4Addr>,
        /// Hand out addresses only from this range inside the subnet
        #[arg(long = "ip-range", value_name = "CIDR")]
        ip_range: Option<ipnet::Ipv4Net>,
        /// An address never handed out (repeatable)
        #[arg(long = "aux-address", value_name = "NAME=IP", value_parser = parse_aux)]
        aux_addresses: Vec<(String, std::net::Ipv4Addr)>,
        /// No route off the overlay: containers reach only the network's peers; no published ports
        #[arg(long)]
        internal: bool,
        /// A driver option: mtu=N (or com.docker.network.driver.mtu=N), the containers' MTU;
        /// encrypted: WireGuard between nodes for this network's packets
        #[arg(long = "opt", short = 'o', value_name = "KEY[=VALUE]", value_parser = parse_pair_opt)]
        opts: Vec<(String, String)>,
        /// A label shown by network inspect (repeatable)
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_pair_label)]
        labels: Vec<(String, String)>,
    },
    /// List networks: NAME, SUBNET, VNI, GATEWAY, ENDPOINTS
    #[command(visible_alias = "list")]
    Ls,
    /// Show a network's address blocks (the node each was granted to) and its endpoints
    Inspect { name: String },
    /// Remove a network (refused while endpoints are attached)
    Rm { name: String },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List nodes: ID, NAME, ADDRESS, STATUS, AVAILABILITY, ROLE, MANAGER STATUS (leader,
    /// reachable or unreachable, as in Swarm)
    #[command(visible_alias = "list")]
    Ls,
    /// Make a worker a manager (on a manager)
    Promote {
        /// Node name or ID (prefix)
        node: String,
    },
    /// Make a manager a worker (on a manager; never the last manager)
    Demote {
        /// Node name or ID (prefix)
        node: String,
    },
    /// Remove a node from the cluster: its certificate is revoked, its tasks and records leave
    /// every node, and it cannot come back with its identity (on a manager)
    Rm {
        /// Remove it even though it is alive
        #[arg(long)]
        force: bool,
        /// Node name or ID (prefix)
        node: String,
    },
    /// Change a node's availability: `drain` takes its tasks out of load balancing
    Update {
        /// New availability
        #[arg(long, value_parser = one_of::<Availability>(&["active", "drain"]))]
        availability: Availability,
        /// Node name or ID (prefix)
        node: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Replace the gossip key: the new key is installed on every node, used, then the old one
    /// retired, without a lost packet (on a manager)
    Rotate,
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

fn parse_subnet(text: &str) -> Result<ipnet::Ipv4Net, String> {
    crate::network::plan::parse_subnet(text).map_err(|e| e.to_string())
}

fn parse_aux(text: &str) -> Result<(String, std::net::Ipv4Addr), String> {
    let (name, address) = crate::state::network_options::split_pair("--aux-address", text)?;
    let address =
        address.parse().map_err(|_| format!("--aux-address {name}={address:?}: not an IPv4 address"))?;
    Ok((name, address))
}

fn parse_pair_opt(text: &str) -> Result<(String, String), String> {
    // `--opt encrypted` is a flag with no value, as in Docker.
    if text == crate::state::network_options::ENCRYPTED_OPTION {
        return Ok((text.to_string(), String::new()));
    }
    crate::state::network_options::split_pair("--opt", text)
}

fn parse_pair_label(text: &str) -> Result<(String, String), String> {
    crate::state::network_options::split_pair("--label", text)
}
