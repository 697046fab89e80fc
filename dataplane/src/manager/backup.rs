//! `meshctl backup FILE` and `meshd --restore FILE`: a manager's state in one file, to bring the
//! cluster back on a new machine (Swarm: copy `/var/lib/docker/swarm` of a stopped manager).
//!
//! What a backup holds: the managers' decided state as one Raft snapshot taken for the backup
//! (so it is consistent: one applied index, every record as of it, taken while the cluster
//! runs), and the manager's identity and cluster material (its node key, the CA's certificate
//! and key, its certificate, the gossip keys, the signed gossip state). Restored into an empty
//! state directory and followed by `--force-new-cluster`, it is the same manager of the same
//! cluster (same CA, same cluster and node IDs) with every network, service, VIP, published
//! port and address block.
//!
//! The file: `| magic "MESHDBAK" | version (u32 BE) | body length (u64 BE) | body (postcard) |
//! SHA-256 of everything before it |`. A restore checks all of it (length first: a truncated
//! copy is named as such) before it writes anything. It holds the CA key and the node key in
//! clear (there is no autolock yet): keep it as you keep the CA key (mode 0600, offline).

use std::time::Duration;

use openraft::type_config::async_runtime::watch::WatchReceiver;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::raft_state_machine::SNAPSHOT_FILE;
use super::{ManagerError, Managers};
use crate::identity::NodeId;
use crate::state_dir::StateDir;

pub const MAGIC: &[u8; 8] = b"MESHDBAK";
pub const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8;
const CHECKSUM: usize = 32;
/// The largest backup accepted (the decided state and gossip state of a large cluster fit
/// many times over): a restore never reads an unbounded file into memory.
pub const MAX_BACKUP: u64 = 256 * 1024 * 1024;
/// How long the snapshot a backup takes may take.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);

/// The state directory's files a backup carries, and the only ones a restore writes: the node's
/// key and ID (`state_dir`), the cluster, CA key, gossip keys and gossip state (`gossip::persist`,
/// `gossip::held_keys`), and the Raft snapshot taken for the backup.
pub const FILES: &[&str] =
    &["node.key", "node.json", "cluster.json", "ca.key", "gossip-keys.json", "state.json", SNAPSHOT_FILE];
/// Without these, a restore cannot be this manager of this cluster.
const REQUIRED: &[&str] = &["node.key", "cluster.json", "ca.key", SNAPSHOT_FILE];

#[derive(Debug, Serialize, Deserialize)]
struct Body {
    node: NodeId,
    /// Seconds since the epoch when it was taken (for people).
    taken_unix: u64,
    /// The Raft index the snapshot is taken at.
    index: u64,
    files: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackupError {
    #[error("not a meshd backup (it does not start with {MAGIC:?})")]
    NotABackup,
    #[error("a backup of format version {0}; this meshd reads version {VERSION}")]
    Version(u32),
    #[error("the backup is truncated: {have} bytes of {want}")]
    Truncated { have: u64, want: u64 },
    #[error("the backup has {0} bytes after its end: not one whole backup")]
    Trailing(u64),
    #[error("the backup is larger than {MAX_BACKUP} bytes")]
    TooLarge,
    #[error("the backup's checksum does not match: it is corrupted")]
    Checksum,
    #[error("the backup's contents cannot be read: {0}")]
    Body(String),
    #[error("the backup lacks {0}: it is not a manager's backup")]
    Missing(&'static str),
    #[error("the backup names a file it may not write: {0:?}")]
    UnexpectedFile(String),
}

/// What a checked backup holds.
#[derive(Debug)]
pub struct Backup {
    pub node: NodeId,
    pub index: u64,
    pub taken_unix: u64,
    files: Vec<(String, Vec<u8>)>,
}

impl Backup {
    /// Checks `bytes` whole (magic, version, length, checksum, contents) before anything uses it.
    pub fn parse(bytes: &[u8]) -> Result<Backup, BackupError> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(BackupError::NotABackup);
        }
        if bytes.len() < HEADER {
            return Err(BackupError::Truncated { have: bytes.len() as u64, want: HEADER as u64 });
        }
        let version = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(BackupError::Version(version));
        }
        let body_len = u64::from_be_bytes(bytes[12..20].try_into().expect("8 bytes"));
        if body_len > MAX_BACKUP {
            return Err(BackupError::TooLarge);
        }
        let want = HEADER as u64 + body_len + CHECKSUM as u64;
        let have = bytes.len() as u64;
        if have < want {
            return Err(BackupError::Truncated { have, want });
        }
        if have > want {
            return Err(BackupError::Trailing(have - want));
        }
        let end = HEADER + body_len as usize;
        if Sha256::digest(&bytes[..end]).as_slice() != &bytes[end..] {
            return Err(BackupError::Checksum);
        }
        let body: Body =
            postcard::from_bytes(&bytes[HEADER..end]).map_err(|e| BackupError::Body(e.to_string()))?;
        for (name, _) in &body.files {
            if !FILES.contains(&name.as_str()) {
                return Err(BackupError::UnexpectedFile(name.clone()));
            }
        }
        for required in REQUIRED {
            if !body.files.iter().any(|(name, _)| name == required) {
                return Err(BackupError::Missing(required));
            }
        }
        Ok(Backup { node: body.node, index: body.index, taken_unix: body.taken_unix, files: body.files })
    }

    /// Writes the backup's files into `dir`, which must hold none of them.
    pub fn restore_into(&self, dir: &StateDir) -> Result<(), String> {
        let present: Vec<&str> =
            FILES.iter().copied().filter(|name| dir.path().join(name).exists()).collect();
        if !present.is_empty() {
            return Err(format!(
                "--restore needs an empty state directory; {} already holds {}",
                dir.path().display(),
                present.join(", ")
            ));
        }
        for (name, bytes) in &self.files {
            dir.write_bytes(name, bytes).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The file bytes of a backup of `files` taken by `node` at `index`.
fn encode(node: NodeId, index: u64, files: Vec<(String, Vec<u8>)>) -> Vec<u8> {
    let taken_unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let body =
        postcard::to_allocvec(&Body { node, taken_unix, index, files }).expect("postcard encodes a backup");
    let mut out = Vec::with_capacity(HEADER + body.len() + CHECKSUM);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend_from_slice(&body);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// What `meshctl backup` reports.
#[derive(Debug, Clone)]
pub struct Taken {
    pub bytes: Vec<u8>,
    pub index: u64,
    pub networks: usize,
    pub services: usize,
}

impl Managers {
    /// A backup of this manager, taken while the cluster runs: a fresh Raft snapshot (at least
    /// as new as everything this member had applied when asked), and the identity files.
    pub async fn backup(&self) -> Result<Taken, ManagerError> {
        let Some(raft) = self.raft() else {
            return Err(ManagerError::Refused(
                "this node runs no member of the managers' group: run `meshctl backup` on a manager".into(),
            ));
        };
        let internal = |e: String| ManagerError::Internal(format!("backup: {e}"));
        let applied = raft.metrics().borrow_watched().last_applied.map(|l| l.index);
        raft.trigger().snapshot().await.map_err(|e| internal(e.to_string()))?;
        raft.wait(Some(SNAPSHOT_TIMEOUT))
            .metrics(|m| m.snapshot.map(|s| s.index) >= applied, "a snapshot for the backup")
            .await
            .map_err(|e| internal(e.to_string()))?;
        let dir = &self.inner.state_dir;
        let mut files = Vec::new();
        for name in FILES {
            if let Some(bytes) = dir.read_bytes(name).map_err(|e| internal(e.to_string()))? {
                files.push((name.to_string(), bytes));
            }
        }
        for required in REQUIRED {
            if !files.iter().any(|(name, _)| name == required) {
                return Err(internal(format!("this manager's state directory lacks {required}")));
            }
        }
        let decided = self.decided();
        let index = raft.metrics().borrow_watched().snapshot.map(|s| s.index).unwrap_or(0);
        Ok(Taken {
            bytes: encode(self.node_id(), index, files),
            index,
            networks: decided.networks.len(),
            services: decided.services.len(),
        })
    }
}

/// Reads and checks the backup at `path` (bounded), for `meshd --restore`.
pub fn read(path: &std::path::Path) -> Result<Backup, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("--restore {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_BACKUP + (HEADER + CHECKSUM) as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("--restore {}: {e}", path.display()))?;
    Backup::parse(&bytes).map_err(|e| format!("--restore {}: {e}; nothing was restored", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let files = REQUIRED.iter().map(|n| (n.to_string(), n.as_bytes().to_vec())).collect();
        encode(NodeId::from_bytes([7; 16]), 42, files)
    }

    #[test]
    fn a_backup_reads_back_and_every_damage_is_named() {
        let bytes = sample();
        let backup = Backup::parse(&bytes).unwrap();
        assert_eq!((backup.node, backup.index), (NodeId::from_bytes([7; 16]), 42));

        let truncated = Backup::parse(&bytes[..bytes.len() - 10]).unwrap_err();
        assert!(matches!(truncated, BackupError::Truncated { .. }), "{truncated}");
        assert!(matches!(Backup::parse(&bytes[..15]).unwrap_err(), BackupError::Truncated { .. }));
        let mut flipped = bytes.clone();
        flipped[HEADER + 5] ^= 1;
        assert_eq!(Backup::parse(&flipped).unwrap_err(), BackupError::Checksum);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Backup::parse(&longer).unwrap_err(), BackupError::Trailing(1));
        assert_eq!(Backup::parse(b"hello").unwrap_err(), BackupError::NotABackup);
        let mut future = bytes.clone();
        future[11] = 9;
        assert_eq!(Backup::parse(&future).unwrap_err(), BackupError::Version(9));
        // A file name outside the list is refused even with a right checksum.
        let evil = encode(NodeId::from_bytes([7; 16]), 1, vec![("../../etc/passwd".into(), vec![])]);
        assert!(matches!(Backup::parse(&evil).unwrap_err(), BackupError::UnexpectedFile(_)));
    }
}
