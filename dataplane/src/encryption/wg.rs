//! The engine's configuration through `wg` (wireguard-tools), which speaks to either engine: the
//! kernel's over generic netlink, `wireguard-go` over its control socket. Only public keys,
//! addresses and ports are ever arguments; the private key goes as a file name.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::process::Stdio;

use super::EncryptionError;

/// A peer as the engine should have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub public_key: String,
    /// Its engine's underlay address and port.
    pub endpoint: SocketAddrV4,
    /// Its underlay address: the one inner (VXLAN) source and destination its tunnel carries.
    pub allowed: Ipv4Addr,
}

/// Runs `wg ARGS` and returns stdout; None when the interface has no engine answering.
async fn run(args: &[&str], what: &'static str) -> Result<Option<String>, EncryptionError> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    // `wg` answers in milliseconds; a blocking thread keeps it off the runtime's workers.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("wg").args(&args).stdin(Stdio::null()).output()
    })
    .await
    .map_err(|e| EncryptionError::Spawn { program: "wg", what, source: std::io::Error::other(e) })?
    .map_err(|source| EncryptionError::Spawn { program: "wg", what, source })?;
    if output.status.success() {
        return Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()));
    }
    let message: String = String::from_utf8_lossy(&output.stderr).trim().chars().take(200).collect();
    // `wg` says so when there is no such device (no kernel link, no live control socket).
    if message.contains("No such device") || message.contains("Unable to access interface") {
        return Ok(None);
    }
    Err(EncryptionError::Tool { program: "wg", what, message })
}

/// Whether an engine answers for `iface`, and its public key if a private key is set.
pub async fn public_key(iface: &str) -> Result<Option<String>, EncryptionError> {
    Ok(run(&["show", iface, "public-key"], "show public-key").await?.map(|out| out.trim().to_string()))
}

/// The peers the engine has: public key -> allowed IPs (as `wg` prints them).
pub async fn peers(iface: &str) -> Result<Option<BTreeMap<String, String>>, EncryptionError> {
    let Some(out) = run(&["show", iface, "allowed-ips"], "show allowed-ips").await? else {
        return Ok(None);
    };
    Ok(Some(
        out.lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(key, ips)| (key.to_string(), ips.trim().to_string()))
            .collect(),
    ))
}

/// Sets the listen port and the private key (read by `wg` from `key_file`).
pub async fn set_device(iface: &str, key_file: &Path, port: u16) -> Result<(), EncryptionError> {
    let port = port.to_string();
    let key_file = key_file.to_string_lossy();
    run(&["set", iface, "listen-port", &port, "private-key", &key_file], "set device")
        .await?
        .map(|_| ())
        .ok_or(EncryptionError::Tool { program: "wg", what: "set device", message: "no such device".into() })
}

/// Adds or updates a peer.
pub async fn set_peer(iface: &str, peer: &Peer) -> Result<(), EncryptionError> {
    let endpoint = peer.endpoint.to_string();
    let allowed = format!("{}/32", peer.allowed);
    run(&["set", iface, "peer", &peer.public_key, "endpoint", &endpoint, "allowed-ips", &allowed], "set peer")
        .await?
        .map(|_| ())
        .ok_or(EncryptionError::Tool { program: "wg", what: "set peer", message: "no such device".into() })
}

/// Removes a peer by public key.
pub async fn remove_peer(iface: &str, public_key: &str) -> Result<(), EncryptionError> {
    run(&["set", iface, "peer", public_key, "remove"], "remove peer").await.map(|_| ())
}
