//! Naming network namespaces: `NAME` means `/run/netns/NAME`, anything with a slash is a path,
//! and two spellings of one namespace are the same namespace; a namespace whose path is gone
//! (or names another one now) is gone.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::AgentError;
use crate::network::attachment::NetnsId;

/// The path of the namespace `netns` names. It must exist.
pub fn resolve(netns: &str) -> Result<PathBuf, AgentError> {
    if netns.is_empty() {
        return Err(AgentError::Netns(netns.into(), "empty name".into()));
    }
    let path = if netns.contains('/') { PathBuf::from(netns) } else { Path::new("/run/netns").join(netns) };
    std::fs::metadata(&path).map_err(|e| AgentError::Netns(path.display().to_string(), e.to_string()))?;
    Ok(path)
}

/// Whether two paths name the same namespace (same device and inode), whatever the spelling.
pub fn same(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => a == b,
    }
}

/// The identity of the namespace at `path` now (None if there is none).
pub fn identify(path: &Path) -> Option<NetnsId> {
    std::fs::metadata(path).ok().map(|m| NetnsId { dev: m.dev(), ino: m.ino() })
}

/// Whether the namespace an attachment was made in is gone: its path names nothing, or another
/// namespace (a recycled `/proc/PID/ns/net`). Without a recorded identity nothing is known:
/// Docker's namespace file appears only after its Join (it is the container's own namespace,
/// bound there when the container starts).
pub fn is_gone(path: &Path, recorded: Option<NetnsId>) -> bool {
    match (recorded, identify(path)) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(then), Some(now)) => now != then,
    }
}
