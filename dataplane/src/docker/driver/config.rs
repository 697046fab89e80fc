//! The Docker driver's flags (`--docker-plugin` and friends), validated into
//! [`DockerSettings`] with the rest of meshd's configuration, before anything binds.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::Args;

use crate::docker::{DEFAULT_DOCKER_HOST, DEFAULT_PLUGIN_SOCKET};

/// The node's DNS address for Docker containers (`docker run --dns 169.254.53.53`): link-local,
/// so it is outside every overlay subnet and never routed off the node.
pub const DEFAULT_DNS_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 53, 53);

#[derive(Debug, Clone, Args)]
pub struct DockerArgs {
    /// Serve the Docker network and IPAM driver (docker network create -d meshd --ipam-driver meshd NET)
    #[arg(long)]
    pub docker_plugin: bool,
    /// The driver's socket; Docker names the plugin after the file (meshd.sock: meshd)
    #[arg(long, value_name = "PATH", default_value = DEFAULT_PLUGIN_SOCKET)]
    pub docker_plugin_socket: PathBuf,
    /// Docker's API socket, for network and container names and stop events
    #[arg(long, value_name = "unix:///PATH", default_value = DEFAULT_DOCKER_HOST)]
    pub docker_host: String,
    /// The node address where Docker containers ask meshd's DNS (docker run --dns ADDR)
    #[arg(long, value_name = "IP", default_value_t = DEFAULT_DNS_ADDR)]
    pub docker_dns_addr: Ipv4Addr,
}

/// The Docker driver, when enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSettings {
    pub plugin_socket: PathBuf,
    /// Docker's API socket (a path).
    pub docker_host: PathBuf,
    pub dns_addr: Ipv4Addr,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DockerConfigError {
    #[error("--docker-plugin-socket {0:?} must be an absolute path ending in .sock (Docker finds plugins by that name)")]
    PluginSocket(String),
    #[error("--docker-host {0:?} must be unix:///PATH (meshd talks to Docker's local socket only)")]
    DockerHost(String),
    #[error("--docker-dns-addr {0} cannot be the node's DNS address (use a unicast address outside every subnet, e.g. 169.254.53.53)")]
    DnsAddr(Ipv4Addr),
}

impl DockerArgs {
    /// The settings, or None without `--docker-plugin`.
    pub fn settings(&self) -> Result<Option<DockerSettings>, DockerConfigError> {
        if !self.docker_plugin {
            return Ok(None);
        }
        let socket = &self.docker_plugin_socket;
        let name = socket.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if !socket.is_absolute() || !name.ends_with(".sock") || name.len() <= ".sock".len() {
            return Err(DockerConfigError::PluginSocket(socket.display().to_string()));
        }
        let host = self
            .docker_host
            .strip_prefix("unix://")
            .filter(|path| path.starts_with('/'))
            .ok_or_else(|| DockerConfigError::DockerHost(self.docker_host.chars().take(100).collect()))?;
        let dns = self.docker_dns_addr;
        // 127/8 is the container's own loopback: Docker's resolver would ask the container.
        if dns.is_loopback() || dns.is_unspecified() || dns.is_multicast() || dns.is_broadcast() {
            return Err(DockerConfigError::DnsAddr(dns));
        }
        Ok(Some(DockerSettings {
            plugin_socket: socket.clone(),
            docker_host: PathBuf::from(host),
            dns_addr: dns,
        }))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        docker: DockerArgs,
    }

    fn settings(argv: &[&str]) -> Result<Option<DockerSettings>, String> {
        let args = Args::try_parse_from(std::iter::once("meshd").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        args.docker.settings().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_refusals() {
        assert_eq!(settings(&[]).unwrap(), None);
        let on = settings(&["--docker-plugin"]).unwrap().unwrap();
        assert_eq!(on.plugin_socket, PathBuf::from("/run/docker/plugins/meshd.sock"));
        assert_eq!(on.docker_host, PathBuf::from("/var/run/docker.sock"));
        assert_eq!(on.dns_addr, DEFAULT_DNS_ADDR);
        for (argv, needle) in [
            (vec!["--docker-plugin", "--docker-plugin-socket", "rel.sock"], "--docker-plugin-socket"),
            (vec!["--docker-plugin", "--docker-plugin-socket", "/run/x/meshd"], ".sock"),
            (vec!["--docker-plugin", "--docker-host", "tcp://1.2.3.4:2375"], "--docker-host"),
            (vec!["--docker-plugin", "--docker-dns-addr", "127.0.0.1"], "--docker-dns-addr"),
        ] {
            let err = settings(&argv).unwrap_err();
            assert!(err.contains(needle), "{argv:?}: {err}");
        }
    }
}
