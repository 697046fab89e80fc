//! Docker's remote network and IPAM driver protocol, and a client of the Docker Engine API:
//! what meshd needs to be a Docker network driver. Like [`crate::api`], this floor knows
//! nothing of the agent; the daemon's Docker driver (`daemon::docker`) joins the two.
//!
//! - [`protocol`]: Docker's calls, parsed and validated into [`protocol::Call`]s.
//! - [`server`]: the plugin socket, served with axum; the [`server::Driver`] trait.
//! - [`client`]: the Docker API (events, names) over its socket.
//! - [`error`]: a refused call.

pub mod client;
pub mod error;
pub mod protocol;
pub mod server;

/// Where Docker looks for plugins' sockets; the file's name (without `.sock`) is the plugin's.
pub const DEFAULT_PLUGIN_SOCKET: &str = "/run/docker/plugins/meshd.sock";
/// Docker's API socket.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
