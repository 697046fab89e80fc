//! meshd's command line, parsed and validated into a [`Config`] before anything touches the
//! kernel, the state directory or a socket.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::api::DEFAULT_SOCKET;
use crate::discovery::serve::DnsSettings;
use crate::docker::driver::config::{DockerArgs, DockerConfigError, DockerSettings};
use crate::gossip::GossipConfig;
use crate::identity::{JoinToken, ParseTokenError, RequestedSettings, SettingsError};
use crate::util::duration::within;

/// The gossip port (UDP + TCP), as in Docker Swarm.
pub const DEFAULT_GOSSIP_PORT: u16 = 7946;

#[derive(Debug, Parser)]
#[command(
    name = "meshd",
    version,
    about = "The meshd node agent: overlay networks, service discovery and a routing mesh for network namespaces",
    long_about = None,
    // The configuration file's settings come first as arguments; the last occurrence wins.
    args_override_self = true
)]
pub struct DaemonArgs {
    /// Configuration file: keys are these flags' long names (default: /etc/meshd/meshd.toml if
    /// it exists); flags and environment variables override it
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Directory for the node's identity and cluster secrets (created with mode 0700)
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// This node's underlay address; must be assigned to an interface in this network namespace
    #[arg(long, value_name = "IP")]
    pub advertise_addr: IpAddr,
    /// Gossip port (UDP and TCP)
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_GOSSIP_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub listen_port: u16,
    /// Address of a manager of the cluster to join (default port: 7946)
    #[arg(long, value_name = "IP[:PORT]")]
    pub join: Option<String>,
    /// Join token printed by `meshctl join-token worker|manager` on a manager, from the
    /// MESHD_TOKEN environment variable or the configuration file. On the command line (where
    /// every local user reads it) only with --insecure-token-arg: use --token-file
    #[arg(long, value_name = "TOKEN", env = "MESHD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Accept --token on the command line, where every local user can read it (tests only)
    #[arg(long)]
    pub insecure_token_arg: bool,
    /// File holding the join token (e.g. a systemd credential); mode 0600 or stricter advised
    #[arg(long, value_name = "PATH", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// How long the node certificates this node issues (as a manager) are valid; every node
    /// renews its certificate two thirds of the way through
    #[arg(long, value_name = "DURATION", default_value = "90d", value_parser = within(secs(30), days(3650)))]
    pub cert_expiry: Duration,
    /// Path of the local API socket
    #[arg(long, value_name = "PATH", env = "MESHD_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Name shown in `node ls` (default: the host name)
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Log format
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// How often this node probes a random member (SWIM)
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = within(ms(10), secs(60)))]
    pub gossip_probe_interval: Duration,
    /// How long a probe may take before indirect probes are tried
    #[arg(long, value_name = "DURATION", default_value = "200ms", value_parser = within(ms(10), secs(60)))]
    pub gossip_probe_timeout: Duration,
    /// How long a member stays suspect before it is declared down
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = within(ms(100), secs(600)))]
    pub gossip_suspect_timeout: Duration,
    /// How often a full state exchange (push-pull over TCP) runs with a random member
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = within(secs(1), secs(3600)))]
    pub gossip_push_pull_interval: Duration,
    /// Upstream resolvers for names the embedded DNS does not answer itself
    #[arg(long, value_name = "PATH", default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// TTL of the embedded DNS's own answers, in seconds (short: clients never hold stale ones)
    #[arg(long, value_name = "SECONDS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub dns_ttl: u32,
    /// Answer the names meshd owns over UDP on the DNS fast path (answers prepared when the
    /// names change, batched receive and send on one thread per core); `off` serves every query
    /// through hickory-server as before
    #[arg(long, value_enum, value_name = "on|off", default_value_t = OnOff::On)]
    pub dns_fast_path: OnOff,
    /// How long an idle load-balanced flow keeps its backend; after that it is balanced afresh
    /// (Maglev gives the same backend while the backends are unchanged, so idle connections
    /// survive, unlike IPVS's 900 s timeout)
    #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = within(secs(1), days(30)))]
    pub lb_idle_timeout: Duration,
    /// The overlay fast path: VXLAN encapsulated and decapsulated by the eBPF programs, without
    /// the VXLAN device on the data path (docs/overlay.md). `off`: every packet takes the VXLAN
    /// device, as before
    #[arg(long, value_enum, value_name = "on|off", default_value_t = OnOff::On)]
    pub overlay_fast_path: OnOff,
    /// Socket-level load balancing: a container's connect() to a VIP of its network goes to a
    /// backend chosen once, so no packet of the connection is translated (docs/services.md).
    /// `off`: every packet to a VIP is translated at the container's veth, as before
    #[arg(long, value_enum, value_name = "on|off", default_value_t = OnOff::On)]
    pub socket_lb: OnOff,
    /// The cgroup v2 directory the socket programs attach to (default: the hierarchy's root, so
    /// every process of the machine is seen). A sub-tree covers only its processes: for meshd
    /// in a container with a delegated cgroup, or many nodes on one machine (the kernel allows
    /// 64 programs per cgroup and hook)
    #[arg(long, value_name = "DIR", value_parser = cgroup2_dir)]
    pub cgroup_root: Option<PathBuf>,
    /// Serve Prometheus metrics (/metrics) and the web view (/) on this address, e.g.
    /// 127.0.0.1:9646. Off unless given: it is plain HTTP without authentication and shows
    /// the cluster's layout, so keep it on localhost or a management network
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_addr: Option<SocketAddr>,
    /// Monitor events each CPU may send per second, per type (drops, flows): the kernel
    /// suppresses (and counts) the rest, so a flood costs meshd a bounded amount of work
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub monitor_rate: u32,
    /// How long departed and dead nodes, and deleted entries, are remembered
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = within(secs(60), days(365)))]
    pub gossip_reap_after: Duration,
    #[command(flatten)]
    pub docker: DockerArgs,
    /// Cluster creation only (Swarm's `swarm init --default-addr-pool`): a pool that networks
    /// created without --subnet get theirs from, e.g. 10.20.0.0/16; repeat for more pools
    /// (default: 10.0.0.0/8). A joining node takes the cluster's; given there with another
    /// value, it is refused
    #[arg(long, value_name = "CIDR", action = clap::ArgAction::Append)]
    pub default_addr_pool: Vec<String>,
    /// Cluster creation only (Swarm's `--default-addr-pool-mask-length`): the prefix length of
    /// the subnets cut from the pools, 8 to 28 (default: 24)
    #[arg(long, value_name = "N")]
    pub default_addr_pool_mask_length: Option<u8>,
    /// Cluster creation only (Swarm's `--data-path-port`): the overlay's VXLAN UDP port on every
    /// node, 1024 to 49151 (default: 4789)
    #[arg(long, value_name = "PORT")]
    pub data_path_port: Option<u16>,
    /// Worst day only (Swarm's `swarm init --force-new-cluster`): on a surviving manager when
    /// most managers are lost for good, restart the managers' group with this node as its only
    /// manager, keeping every network, service, address and the CA. Refused while a majority of
    /// the managers still answer. Promote managers again afterwards (docs/consistency.md)
    #[arg(long, conflicts_with = "join")]
    pub force_new_cluster: bool,
    /// Worst day only: before starting, fill an empty --state-dir from FILE, a backup written by
    /// `meshctl backup` (its checksum checked first); start with --force-new-cluster with it
    #[arg(long, value_name = "FILE", conflicts_with = "join", requires = "force_new_cluster")]
    pub restore: Option<PathBuf>,
}

/// `--cgroup-root`: checked before anything is changed in the kernel.
fn cgroup2_dir(value: &str) -> Result<PathBuf, String> {
    crate::bpf::cgroup::check_cgroup2_dir(std::path::Path::new(value)).map_err(|e| e.to_string())
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// A switch given as `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub advertise_addr: IpAddr,
    pub listen_port: u16,
    pub join: Option<(SocketAddr, JoinToken)>,
    pub socket: PathBuf,
    pub node_name: String,
    pub log_format: LogFormat,
    pub gossip: GossipConfig,
    /// The embedded DNS: upstream resolvers and the TTL of its own answers.
    pub dns: DnsSettings,
    /// How long an idle load-balanced flow keeps its backend.
    pub lb_idle_timeout: Duration,
    /// The overlay fast path (`--overlay-fast-path`).
    pub overlay_fast_path: OnOff,
    /// Socket-level load balancing for the containers (`--socket-lb`).
    pub socket_lb: OnOff,
    /// Where the socket programs attach (`--cgroup-root`; None: the cgroup v2 root).
    pub cgroup_root: Option<PathBuf>,
    /// How long the certificates this node issues are valid.
    pub cert_expiry: Duration,
    /// The Docker network driver (`--docker-plugin`).
    pub docker: Option<DockerSettings>,
    /// Where metrics and the web view are served (None: not at all).
    pub metrics_addr: Option<SocketAddr>,
    /// Monitor events per second per CPU and type.
    pub monitor_rate: u32,
    /// The cluster-wide settings the flags give (a new cluster's; checked when joining).
    pub settings: RequestedSettings,
    /// `--force-new-cluster`: this manager restarts the managers' group alone.
    pub force_new_cluster: bool,
    /// `--restore FILE`: a backup to fill the empty state directory from first.
    pub restore: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--advertise-addr {0} cannot be advertised (unspecified, multicast or broadcast)")]
    BadAdvertise(IpAddr),
    #[error("--join {0:?} is not an IP address or IP:PORT")]
    BadJoin(String),
    #[error("the join token: {0}")]
    BadToken(ParseTokenError),
    #[error("cannot read the join token from {path}: {error}")]
    TokenFile { path: PathBuf, error: String },
    #[error("--token on the command line shows the join token to every local user (ps): use --token-file or MESHD_TOKEN (--insecure-token-arg accepts it anyway)")]
    TokenOnCommandLine,
    #[error("--join needs a join token (--token-file or MESHD_TOKEN)")]
    JoinWithoutToken,
    #[error("a join token is only used with --join")]
    TokenWithoutJoin,
    #[error("--node-name {0:?}: use 1 to 63 letters, digits, '.', '-' or '_'")]
    BadNodeName(String),
    #[error("--state-dir must not be empty")]
    EmptyStateDir,
    #[error("--gossip-probe-timeout must be shorter than --gossip-probe-interval")]
    ProbeTimeout,
    #[error(transparent)]
    Docker(#[from] DockerConfigError),
    #[error("--metrics-addr {0} needs a port other than 0")]
    MetricsPort(SocketAddr),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(
        "--data-path-port {0} is also --listen-port: the VXLAN and gossip sockets cannot share a UDP port"
    )]
    DataPathIsGossipPort(u16),
}

impl Config {
    pub fn from_args(args: DaemonArgs) -> Result<Config, ConfigError> {
        let advertise = args.advertise_addr;
        let unusable = advertise.is_unspecified()
            || advertise.is_multicast()
            || matches!(advertise, IpAddr::V4(v4) if v4.is_broadcast());
        if unusable {
            return Err(ConfigError::BadAdvertise(advertise));
        }
        if args.state_dir.as_os_str().is_empty() {
            return Err(ConfigError::EmptyStateDir);
        }
        let token = match (args.token, &args.token_file) {
            (Some(token), _) => Some(token),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::TokenFile { path: path.clone(), error: e.to_string() })?,
            ),
            (None, None) => None,
        };
        let join = match (args.join, token) {
            (Some(join), Some(token)) => {
                let addr = parse_join(&join, DEFAULT_GOSSIP_PORT)?;
                let token = token.trim().parse().map_err(ConfigError::BadToken)?;
                Some((addr, token))
            }
            (Some(_), None) => return Err(ConfigError::JoinWithoutToken),
            (None, Some(_)) => return Err(ConfigError::TokenWithoutJoin),
            (None, None) => None,
        };
        let node_name = match args.node_name {
            Some(name) => name,
            None => hostname(),
        };
        if !valid_node_name(&node_name) {
            return Err(ConfigError::BadNodeName(node_name));
        }
        if args.gossip_probe_timeout >= args.gossip_probe_interval {
            return Err(ConfigError::ProbeTimeout);
        }
        if let Some(addr) = args.metrics_addr {
            if addr.port() == 0 {
                return Err(ConfigError::MetricsPort(addr));
            }
        }
        let settings = RequestedSettings::parse(
            &args.default_addr_pool,
            args.default_addr_pool_mask_length,
            args.data_path_port,
        )?;
        if settings.data_path_port == Some(args.listen_port) {
            return Err(ConfigError::DataPathIsGossipPort(args.listen_port));
        }
        let gossip = GossipConfig {
            probe_interval: args.gossip_probe_interval,
            probe_timeout: args.gossip_probe_timeout,
            suspect_timeout: args.gossip_suspect_timeout,
            push_pull_interval: args.gossip_push_pull_interval,
            reap_after: args.gossip_reap_after,
            ..GossipConfig::default()
        };
        Ok(Config {
            state_dir: args.state_dir,
            advertise_addr: advertise,
            listen_port: args.listen_port,
            join,
            socket: args.socket,
            node_name,
            log_format: args.log_format,
            gossip,
            dns: DnsSettings {
                resolv_conf: args.resolv_conf,
                ttl: args.dns_ttl,
                fast_path: args.dns_fast_path == OnOff::On,
            },
            lb_idle_timeout: args.lb_idle_timeout,
            overlay_fast_path: args.overlay_fast_path,
            socket_lb: args.socket_lb,
            cgroup_root: args.cgroup_root,
            cert_expiry: args.cert_expiry,
            docker: args.docker.settings()?,
            metrics_addr: args.metrics_addr,
            monitor_rate: args.monitor_rate,
            settings,
            force_new_cluster: args.force_new_cluster,
            restore: args.restore,
        })
    }
}

/// Refuses a join token on the process's own command line (`argv` as the kernel shows it in
/// /proc/PID/cmdline, before the configuration file's settings join it), unless
/// `--insecure-token-arg` is there too.
pub fn refuse_token_arg(argv: &[std::ffi::OsString]) -> Result<(), ConfigError> {
    let flags = argv.iter().skip(1).take_while(|a| *a != "--").filter_map(|a| a.to_str());
    let (mut token, mut allowed) = (false, false);
    for flag in flags {
        token |= flag == "--token" || flag.starts_with("--token=");
        allowed |= flag == "--insecure-token-arg";
    }
    if token && !allowed {
        return Err(ConfigError::TokenOnCommandLine);
    }
    Ok(())
}

/// `IP` or `IP:PORT` (IPv6 with a port as `[IP]:PORT`).
fn parse_join(text: &str, default_port: u16) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        if addr.port() != 0 {
            return Ok(addr);
        }
    } else if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    Err(ConfigError::BadJoin(text.chars().take(100).collect()))
}

fn valid_node_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| valid_node_name(name))
        .unwrap_or_else(|| "node".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["meshd", "--state-dir", "/tmp/x", "--advertise-addr", "10.1.0.1"];
        argv.extend_from_slice(extra);
        let args = DaemonArgs::try_parse_from(argv).map_err(|e| e.to_string())?;
        Config::from_args(args).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let config = parse(&["--node-name", "n1"]).unwrap();
        assert_eq!(config.listen_port, 7946);
        assert_eq!(config.node_name, "n1");
        assert!(config.join.is_none());
    }

    #[test]
    fn a_token_on_the_command_line_needs_the_opt_in() {
        let argv = |args: &[&str]| args.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        let refused = |args: &[&str]| refuse_token_arg(&argv(args)) == Err(ConfigError::TokenOnCommandLine);
        assert!(refused(&["meshd", "--join", "10.1.0.2", "--token", "MESHTKN-1-x-y"]));
        assert!(refused(&["meshd", "--token=MESHTKN-1-x-y"]));
        assert!(!refused(&["meshd", "--join", "10.1.0.2", "--token-file", "/run/token"]));
        assert!(!refused(&["meshd", "--insecure-token-arg", "--token", "MESHTKN-1-x-y"]));
        assert!(!refused(&["meshd", "--state-dir", "/x"]));
        assert!(!refused(&["--token"]), "the program name is not a flag");
    }

    #[test]
    fn refuses_bad_values() {
        assert!(parse(&["--listen-port", "0"]).unwrap_err().contains("--listen-port"));
        assert!(parse(&["--listen-port", "70000"]).unwrap_err().contains("--listen-port"));
        assert!(parse(&["--node-name", "a b"]).unwrap_err().contains("--node-name"));
        assert!(parse(&["--node-name", ""]).unwrap_err().contains("--node-name"));
        assert!(parse(&["--join", "10.1.0.2"]).unwrap_err().contains("--token-file"));
        assert!(parse(&["--token", "x"]).unwrap_err().contains("--join"));
        assert!(parse(&["--cert-expiry", "1s"]).unwrap_err().contains("out of range"));
        assert!(parse(&["--lb-idle-timeout", "99999999999999999h"]).unwrap_err().contains("too long"));
        let err = parse(&["--join", "10.1.0.2", "--token-file", "/nonexistent/token"]).unwrap_err();
        assert!(err.contains("cannot read the join token from /nonexistent/token"), "{err}");
        assert!(parse(&["--bogus"]).unwrap_err().contains("--bogus"));
        let err = parse(&["--join", "nowhere", "--token", "MESHTKN-1-x-y"]).unwrap_err();
        assert!(err.contains("--join \"nowhere\""), "{err}");
        let err = parse(&["--join", "10.1.0.2", "--token", "garbage"]).unwrap_err();
        assert!(err.contains("the join token: not a meshd join token"), "{err}");
        let err =
            parse(&["--gossip-probe-interval", "100ms", "--gossip-probe-timeout", "200ms"]).unwrap_err();
        assert!(err.contains("shorter"), "{err}");
        assert!(parse(&["--metrics-addr", "127.0.0.1"]).unwrap_err().contains("--metrics-addr"));
        assert!(parse(&["--metrics-addr", "127.0.0.1:0"]).unwrap_err().contains("port other than 0"));
        assert_eq!(
            parse(&["--metrics-addr", "127.0.0.1:9646"]).unwrap().metrics_addr,
            Some("127.0.0.1:9646".parse().unwrap())
        );
        assert!(parse(&["--monitor-rate", "0"]).unwrap_err().contains("--monitor-rate"));
        assert!(parse(&["--gossip-suspect-timeout", "soon"])
            .unwrap_err()
            .contains("--gossip-suspect-timeout"));
    }

    #[test]
    fn cluster_settings_flags() {
        let config = parse(&[]).unwrap();
        assert!(config.settings.is_empty(), "no flag: nothing asked, the cluster's (or the defaults) apply");
        let config = parse(&[
            "--default-addr-pool",
            "10.20.0.0/16",
            "--default-addr-pool",
            "10.30.0.0/16",
            "--default-addr-pool-mask-length",
            "26",
            "--data-path-port",
            "4790",
        ])
        .unwrap();
        let founded = config.settings.founding();
        assert_eq!(founded.default_addr_pools.len(), 2, "the flag repeats");
        assert_eq!((founded.default_addr_pool_mask_length, founded.data_path_port), (26, 4790));
        let err = parse(&["--default-addr-pool", "10.20.0.0"]).unwrap_err();
        assert!(err.contains("--default-addr-pool \"10.20.0.0\" is not an IPv4 CIDR"), "{err}");
        let err = parse(&["--default-addr-pool", "10.20.0.0/16", "--default-addr-pool-mask-length", "12"])
            .unwrap_err();
        assert!(err.contains("shorter than pool 10.20.0.0/16"), "{err}");
        assert!(parse(&["--data-path-port", "99999"]).unwrap_err().contains("--data-path-port"));
        assert!(parse(&["--data-path-port", "1000"]).unwrap_err().contains("between 1024 and 49151"));
        let err = parse(&["--data-path-port", "7946"]).unwrap_err();
        assert!(err.contains("also --listen-port"), "{err}");
    }

    #[test]
    fn the_token_comes_from_a_file_without_entering_the_command_line() {
        let path = std::env::temp_dir().join(format!("meshd-token-{}", std::process::id()));
        let token = format!("MESHTKN-1-{}-{}\n", "ab".repeat(16), "cd".repeat(32));
        std::fs::write(&path, &token).unwrap();
        let config = parse(&["--join", "10.1.0.2", "--token-file", path.to_str().unwrap()]).unwrap();
        let (_, parsed) = config.join.unwrap();
        assert_eq!(parsed.to_string(), token.trim());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn refuses_unusable_advertise_addresses() {
        for addr in ["0.0.0.0", "255.255.255.255", "224.0.0.1", "::"] {
            let args =
                DaemonArgs::try_parse_from(["meshd", "--state-dir", "/x", "--advertise-addr", addr]).unwrap();
            assert!(matches!(Config::from_args(args), Err(ConfigError::BadAdvertise(_))), "{addr}");
        }
    }

    #[test]
    fn join_forms() {
        assert_eq!(parse_join("10.0.0.1", 7946).unwrap(), "10.0.0.1:7946".parse().unwrap());
        assert_eq!(parse_join("10.0.0.1:8000", 7946).unwrap(), "10.0.0.1:8000".parse().unwrap());
        assert_eq!(parse_join("[fd00::1]:8000", 7946).unwrap(), "[fd00::1]:8000".parse().unwrap());
        assert_eq!(parse_join("fd00::1", 7946).unwrap(), "[fd00::1]:7946".parse().unwrap());
        assert!(parse_join("10.0.0.1:0", 7946).is_err());
        assert!(parse_join("host:1", 7946).is_err());
    }
}
