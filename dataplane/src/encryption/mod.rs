//! Encrypted overlay networks (`network create --opt encrypted`): WireGuard between nodes.
//!
//! Each node runs one WireGuard interface (`md-wg-<first 8 hex of the node id>`; the name is
//! unique per machine because a userspace engine's control socket, `/var/run/wireguard/NAME.sock`,
//! is not per network namespace). The engine is the kernel's `wireguard` link where the kernel has
//! it, else `wireguard-go` on a TUN device, started by meshd as a process of its own that outlives
//! the agent (as the pinned maps do). Both are configured with `wg` (wireguard-tools): the private
//! key from a 0600 file in the state directory, never on a command line or in a log.
//!
//! Inside the tunnel the nodes keep their underlay addresses: a VXLAN packet of an encrypted
//! network leaves the VXLAN device for the peer's underlay address as usual, but carries a mark
//! (set by the eBPF programs, `ebpf/include/lib/encrypt.h`) that an `ip rule` sends to a table of
//! its own, whose routes are `default dev md-wg-…` and, behind it, `unreachable default`. WireGuard
//! encrypts it to the peer whose allowed IP is that underlay address; the peer's engine hands the
//! decrypted datagram to its stack, where the VXLAN socket and `vxlan_ingress` take it as if it had
//! come off the wire, from the same outer source. Nothing else in the datapath changes, and no
//! tunnel addresses have to be allocated. The WireGuard key of each peer is bound to its underlay
//! address (allowed-ips /32), so the outer source the VXLAN checks trust is authenticated.
//!
//! Fail closed, three ways: the programs drop (`drop-no-tunnel`) a packet of an encrypted network
//! when the peer has no tunnel entry, the engine has no interface, or the route into it is gone
//! (a route lookup per packet); the table's `unreachable` route stops anything the programs let
//! through if the interface vanishes; and the underlay program drops VXLAN of an encrypted
//! network that arrives in clear (`drop-clear-encrypted`).

pub mod engine;
pub mod keys;
pub mod maps;
pub mod supervisor;
pub mod wg;

use std::fmt;

use crate::identity::NodeId;

/// Defined with the network options, whose MTU rule (below every user of it) needs it.
pub use crate::state::network_options::WIREGUARD_OVERHEAD;
/// The UDP port of the node's engine on its underlay address (WireGuard's usual one).
pub const PORT: u16 = 51820;
/// The mark the programs put on an encrypted network's packets (`md_encrypt_v1`), and the table
/// the agent's rule sends it to. Chosen away from the bits Docker, kube-proxy and Cilium use.
pub const MARK: u32 = 0x6d64_0e00;
/// The routing table of encrypted traffic (the rule's target).
pub const TABLE: u32 = 0x6d64;
/// Priority of the rule: before the main table's (32766).
pub const RULE_PRIORITY: u32 = 1000;

/// Which WireGuard the node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// The kernel's `wireguard` link type.
    Kernel,
    /// `wireguard-go` on a TUN device.
    Userspace,
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EngineKind::Kernel => "kernel",
            EngineKind::Userspace => "userspace",
        })
    }
}

/// The node's WireGuard interface name: `md-wg-` and the first 8 hex digits of its ID.
pub fn interface_name(node: &NodeId) -> String {
    let hex = node.to_string();
    format!("md-wg-{}", &hex[..8.min(hex.len())])
}

/// Everything that can go wrong setting up or running the engine.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    #[error("cannot run {program} ({what}): {source}")]
    Spawn { program: &'static str, what: &'static str, source: std::io::Error },
    #[error("{program} {what} failed: {message}")]
    Tool { program: &'static str, what: &'static str, message: String },
    #[error("WireGuard key file {path}: {message}")]
    Key { path: String, message: String },
    #[error(transparent)]
    Link(#[from] crate::netlink::links::LinkError),
    #[error("map {map}: {message}")]
    Map { map: &'static str, message: String },
    #[error("the WireGuard engine did not come up within {0:?}")]
    NotUp(std::time::Duration),
}

/// Prepares the node's encryption at start: its key pair, its engine (adopted or started), and
/// the task that keeps them right. Returns the task (to run once gossip is up) and what the
/// node's record publishes. An error means this node cannot carry encrypted networks: meshd
/// runs on, its record names no key, and every encrypted packet to or from it is dropped.
pub async fn prepare(
    state: &crate::state_dir::StateDir,
    node: &NodeId,
    pin_dir: &std::path::Path,
    advertise: std::net::IpAddr,
) -> Result<(supervisor::Supervisor, crate::state::records::WireguardPeer), EncryptionError> {
    let keys = keys::load_or_create(state)?;
    let (connection, handle, _) = rtnetlink::new_connection().map_err(|source| EncryptionError::Spawn {
        program: "rtnetlink",
        what: "connect",
        source,
    })?;
    tokio::spawn(connection);
    let iface = interface_name(node);
    let underlay = crate::netlink::vxlan::underlay(&handle, advertise)
        .await?
        .ok_or_else(|| crate::netlink::links::LinkError::Missing(format!("interface of {advertise}")))?;
    // The tunnel map is left as it is: after an agent restart the engine it describes is still
    // running (adopted below) and its packets keep flowing; the supervisor's first round checks it.
    let maps = maps::EncryptMaps::open(pin_dir)?;
    let kind = supervisor::start_engine(&handle, &iface, state.path()).await?;
    let published = crate::state::records::WireguardPeer {
        public_key: keys.public_key.clone(),
        port: PORT,
        engine: kind.to_string(),
    };
    let task = supervisor::Supervisor {
        handle,
        iface,
        keys,
        state_dir: state.path().to_path_buf(),
        maps,
        underlay_mtu: underlay.mtu,
    };
    Ok((task, published))
}
