//! The node's state directory: identity and cluster secrets that must survive restarts.
//!
//! One meshd per state directory, enforced with an exclusive `flock` held for the life of the
//! process (released by the kernel even on `kill -9`, so a crash never leaves a stale lock).
//! Files are JSON, written atomically (temporary file, fsync, rename) with mode 0600: a crash
//! mid-write leaves the old content, never half a file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::identity::NodeId;
use crate::trust::keys::NodeKey;

const LOCK_FILE: &str = "meshd.lock";
const NODE_FILE: &str = "node.json";
const KEY_FILE: &str = "node.key";

#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("cannot create state directory {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("state directory {path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("cannot read state directory {path}: {source}")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("state directory {path} is in use by another meshd (lock held on {path}/{LOCK_FILE})")]
    InUse { path: PathBuf },
    #[error("cannot lock state directory {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} is corrupt ({reason}); {advice}")]
    Corrupt { path: PathBuf, reason: String, advice: &'static str },
    #[error("{dir} was made by an older meshd (a node ID without a node key); this node must join afresh: stop meshd, remove {dir}, and start it with --join and a current token")]
    OlderFormat { dir: PathBuf },
    #[error("cannot generate a key: {0}")]
    Random(String),
}

/// What `node.json` holds.
#[derive(Debug, Serialize, serde::Deserialize)]
struct NodeFile {
    id: NodeId,
}

/// An open, locked state directory.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
    _lock: Flock<File>,
}

impl StateDir {
    /// Opens `path`, creating it (mode 0700) if missing, and takes its lock.
    pub fn open(path: &Path) -> Result<StateDir, StateDirError> {
        let path = path.to_path_buf();
        match fs::metadata(&path) {
            Ok(meta) if !meta.is_dir() => return Err(StateDirError::NotADirectory { path }),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .map_err(|source| StateDirError::Create { path: path.clone(), source })?,
            Err(source) => return Err(StateDirError::Unreadable { path, source }),
        }
        // Listing proves the directory can be read at all before anything is written to it.
        fs::read_dir(&path).map_err(|source| StateDirError::Unreadable { path: path.clone(), source })?;

        let lock_path = path.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|source| StateDirError::Lock { path: path.clone(), source })?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                StateDirError::InUse { path: path.clone() }
            } else {
                StateDirError::Lock { path: path.clone(), source: errno.into() }
            }
        })?;
        Ok(StateDir { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The node's key pair (its ID is the key's), made and saved (0600) on first start.
    /// Returns the key and whether it was created now. `node.json` records the ID for people
    /// and scripts; the key is what counts.
    pub fn node_key(&self) -> Result<(NodeKey, bool), StateDirError> {
        let corrupt = |path: &Path, reason: String| StateDirError::Corrupt {
            path: path.to_path_buf(),
            reason,
            advice: "this node cannot be itself without it: remove the state directory and join afresh",
        };
        if let Some(der) = self.read_bytes(KEY_FILE)? {
            let key =
                NodeKey::from_pkcs8(&der).map_err(|e| corrupt(&self.path.join(KEY_FILE), e.to_string()))?;
            let id = key.node_id();
            if self.read_json::<NodeFile>(NODE_FILE)?.map(|f| f.id) != Some(id) {
                self.write_json(NODE_FILE, &NodeFile { id })?;
            }
            return Ok((key, false));
        }
        if self.path.join(NODE_FILE).exists() {
            return Err(StateDirError::OlderFormat { dir: self.path.clone() });
        }
        let key = NodeKey::generate().map_err(|e| StateDirError::Random(e.to_string()))?;
        self.write_bytes(KEY_FILE, key.pkcs8())?;
        self.write_json(NODE_FILE, &NodeFile { id: key.node_id() })?;
        Ok((key, true))
    }

    /// Reads `name` whole; `None` if the file does not exist.
    pub fn read_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, StateDirError> {
        let path = self.path.join(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateDirError::Read { path, source }),
        }
    }

    /// Writes `bytes` to `name` atomically, mode 0600.
    pub fn write_bytes(&self, name: &str, bytes: &[u8]) -> Result<(), StateDirError> {
        let path = self.path.join(name);
        let tmp = self.path.join(format!(".{name}.tmp"));
        let write = || -> io::Result<()> {
            let mut file =
                OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            // The rename is durable only once the directory entry is.
            File::open(&self.path)?.sync_all()
        };
        write().map_err(|source| StateDirError::Write { path, source })
    }

    /// Reads `name` as JSON; `None` if the file does not exist.
    pub fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StateDirError> {
        let path = self.path.join(name);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateDirError::Read { path, source }),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| StateDirError::Corrupt {
            path,
            reason: e.to_string(),
            advice: "fix or remove it (meshd will not overwrite it); see docs/security.md for what each file holds and how to recover",
        })
    }

    /// Removes `name` if it exists.
    pub fn remove(&self, name: &str) -> Result<(), StateDirError> {
        let path = self.path.join(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateDirError::Write { path, source }),
        }
    }

    /// Writes `value` as JSON to `name` atomically, mode 0600.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StateDirError> {
        let mut text = serde_json::to_vec_pretty(value)
            .map_err(|e| StateDirError::Write { path: self.path.join(name), source: io::Error::other(e) })?;
        text.push(b'\n');
        self.write_bytes(name, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "meshd-state-{tag}-{}-{}",
            std::process::id(),
            NodeId::random().unwrap().short()
        ));
        dir
    }

    #[test]
    fn the_node_key_is_created_once_and_kept_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("keep");
        let first = {
            let state = StateDir::open(&dir).unwrap();
            let (key, created) = state.node_key().unwrap();
            assert!(created);
            key.node_id()
        };
        let state = StateDir::open(&dir).unwrap();
        let (key, created) = state.node_key().unwrap();
        assert_eq!((key.node_id(), created), (first, false));
        assert_eq!(fs::metadata(dir.join(KEY_FILE)).unwrap().permissions().mode() & 0o777, 0o600);
        let recorded: NodeFile = state.read_json(NODE_FILE).unwrap().unwrap();
        assert_eq!(recorded.id, first);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_dir_of_an_older_meshd_says_how_to_recover() {
        let dir = temp_dir("older");
        let state = StateDir::open(&dir).unwrap();
        state.write_json(NODE_FILE, &NodeFile { id: NodeId::random().unwrap() }).unwrap();
        let err = state.node_key().unwrap_err();
        assert!(matches!(err, StateDirError::OlderFormat { .. }), "{err}");
        assert!(err.to_string().contains("--join"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn second_open_is_refused_while_locked() {
        let dir = temp_dir("lock");
        let _held = StateDir::open(&dir).unwrap();
        let err = StateDir::open(&dir).unwrap_err();
        assert!(matches!(err, StateDirError::InUse { .. }), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_is_not_a_state_dir() {
        let path = temp_dir("file");
        fs::write(&path, b"x").unwrap();
        let err = StateDir::open(&path).unwrap_err();
        assert!(matches!(err, StateDirError::NotADirectory { .. }), "{err}");
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_corrupt_node_key_is_reported_and_left_alone() {
        let dir = temp_dir("corrupt");
        let state = StateDir::open(&dir).unwrap();
        fs::write(dir.join(KEY_FILE), b"not a key").unwrap();
        let err = state.node_key().unwrap_err();
        assert!(matches!(err, StateDirError::Corrupt { .. }), "{err}");
        assert_eq!(fs::read(dir.join(KEY_FILE)).unwrap(), b"not a key");
        fs::remove_dir_all(&dir).unwrap();
    }
}
