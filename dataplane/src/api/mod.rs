//! The local API: newline-delimited JSON over a Unix socket (mode 0600, root only).
//!
//! One request per line, one response per line, several requests per connection. JSON lines
//! rather than HTTP: `meshctl` needs no HTTP stack, the framing is one `read_until`, and a request
//! is still easy to send by hand (`echo '{"op":"node_ls"}' | socat - UNIX:/run/meshd/meshd.sock`).
//!
//! - [`request`], [`reply`], [`error`]: what crosses the socket, shared by server and client.
//! - [`views`]: the rows of replies, built from a cluster snapshot.
//! - [`server`]: the listener, framing, limits and timeouts (knows nothing of what requests do).
//! - [`client`]: the blocking client `meshctl` uses.

pub mod client;
pub mod error;
pub mod reply;
pub mod request;
pub mod server;
pub mod views;

/// Default socket path; `--socket` or `MESHD_SOCKET` override it.
pub const DEFAULT_SOCKET: &str = "/run/meshd/meshd.sock";
