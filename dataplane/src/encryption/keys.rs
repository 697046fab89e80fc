//! The node's WireGuard key pair: made by the node itself on first start (`wg genkey`), kept in
//! its state directory (`wireguard.key`, 0600, written atomically), its public half derived with
//! `wg pubkey`. The private key only ever travels through files and pipes, never argv or logs.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::EncryptionError;
use crate::state::records::WireguardPeer;
use crate::state_dir::StateDir;

/// The private key's file in the state directory.
pub const PRIVATE_KEY_FILE: &str = "wireguard.key";

/// The node's key pair: where the private key is, and the public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeKeys {
    pub private_key_file: PathBuf,
    pub public_key: String,
}

/// Loads the key pair from the state directory, making one if there is none.
pub fn load_or_create(state: &StateDir) -> Result<NodeKeys, EncryptionError> {
    let path = state.path().join(PRIVATE_KEY_FILE);
    let key_err = |message: String| EncryptionError::Key { path: path.display().to_string(), message };
    let private = match state.read_bytes(PRIVATE_KEY_FILE).map_err(|e| key_err(e.to_string()))? {
        Some(bytes) => bytes,
        None => {
            let fresh = wg(&["genkey"], None, "genkey")?;
            state.write_bytes(PRIVATE_KEY_FILE, &fresh).map_err(|e| key_err(e.to_string()))?;
            tracing::info!(file = %path.display(), "made the node's WireGuard key pair");
            fresh
        }
    };
    let private = trim(&private);
    if !looks_like_key(private) {
        return Err(key_err("not a WireGuard key (44 characters of base64)".into()));
    }
    let public = wg(&["pubkey"], Some(private), "pubkey")?;
    let public_key = String::from_utf8_lossy(trim(&public)).into_owned();
    if !looks_like_key(public_key.as_bytes()) {
        return Err(key_err("wg pubkey gave no key".into()));
    }
    Ok(NodeKeys { private_key_file: path, public_key })
}

/// Whether `key` has the shape of a base64 WireGuard key.
fn looks_like_key(key: &[u8]) -> bool {
    WireguardPeer { public_key: String::from_utf8_lossy(key).into_owned(), port: 1, engine: String::new() }
        .is_valid()
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Runs `wg ARGS` with `input` on stdin; returns its stdout. The input (a private key) and the
/// output are never logged.
pub(super) fn wg(
    args: &[&str],
    input: Option<&[u8]>,
    what: &'static str,
) -> Result<Vec<u8>, EncryptionError> {
    let mut child = Command::new("wg")
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| EncryptionError::Spawn { program: "wg", what, source })?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(input).map_err(|source| EncryptionError::Spawn { program: "wg", what, source })?;
    }
    let output =
        child.wait_with_output().map_err(|source| EncryptionError::Spawn { program: "wg", what, source })?;
    if !output.status.success() {
        return Err(EncryptionError::Tool {
            program: "wg",
            what,
            message: String::from_utf8_lossy(&output.stderr).trim().chars().take(200).collect(),
        });
    }
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_base64_keys_of_32_bytes_pass() {
        assert!(looks_like_key(b"bqezk6yA7NSNhtpRFg3FnovCEzCYyOEIibE0XEkFjwo="));
        assert!(!looks_like_key(b"bqezk6yA7NSNhtpRFg3FnovCEzCYyOEIibE0XEkFjwo"));
        assert!(!looks_like_key(b"bqezk6yA7NSNhtpRFg3Fnov EzCYyOEIibE0XEkFjwo="));
        assert!(!looks_like_key(b"bqezk6yA7NSNhtpRFg3FnovCEzCYyOEIibE0XEkFjwo=\n--"));
        assert!(!looks_like_key(b""));
    }
}
