//! Everything Docker: meshd as Docker's remote network and IPAM driver (`meshd --docker-plugin`).
//!
//! Two halves, kept apart so the protocol can be tested (and fuzzed) without an agent:
//!
//! - The protocol, which knows nothing of the agent (like [`crate::api`]):
//!   - [`protocol`]: Docker's calls, parsed and validated into [`protocol::Call`]s.
//!   - [`server`]: the plugin socket, served with axum; the [`server::Driver`] trait.
//!   - [`client`]: the Docker API (events, names) over its socket.
//!   - [`error`]: a refused call.
//! - [`driver`]: the driver itself, which carries the calls out with the agent (networks, IPAM,
//!   endpoints, Docker's events, the state kept across restarts, the flags).
//!
//! The daemon binds the plugin socket ([`server::PluginServer`]) and serves it with a
//! [`driver::DockerDriver`].

pub mod client;
pub mod driver;
pub mod error;
pub mod protocol;
pub mod server;

/// Where Docker looks for plugins' sockets; the file's name (without `.sock`) is the plugin's.
pub const DEFAULT_PLUGIN_SOCKET: &str = "/run/docker/plugins/meshd.sock";
/// Docker's API socket.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
