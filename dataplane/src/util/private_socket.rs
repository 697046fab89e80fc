//! Binding a Unix socket only its owner may use (the API socket, the Docker plugin socket): one
//! way for both, so they cannot drift apart on the details that matter.
//!
//! - The parent directory is created with mode 0700 if it is missing.
//! - A file that is not a socket is never replaced (a typo must not delete someone's file).
//! - A socket somebody answers on is refused: two daemons never fight over one socket. A stale
//!   one (nobody listening: the last owner was killed) is replaced.
//! - The socket is created with mode 0600 under a umask of 0177, so it is never reachable by
//!   others, not even between bind and chmod.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{umask, Mode};
use tokio::net::UnixListener;

/// Why a private socket could not be bound; each server turns it into its own error (with its
/// own words for what the socket is).
#[derive(Debug)]
pub enum BindFailure {
    Directory { path: PathBuf, source: io::Error },
    InUse { path: PathBuf },
    NotASocket { path: PathBuf },
    Bind { path: PathBuf, source: io::Error },
}

/// Binds `path` as described above. Needs a Tokio runtime (the listener is registered with it).
pub fn bind(path: &Path) -> Result<UnixListener, BindFailure> {
    let path = path.to_path_buf();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| BindFailure::Directory { path: dir.to_path_buf(), source })?;
    }
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if !meta.file_type().is_socket() => return Err(BindFailure::NotASocket { path }),
        Ok(_) => {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(BindFailure::InUse { path });
            }
            std::fs::remove_file(&path).map_err(|source| BindFailure::Bind { path: path.clone(), source })?;
        }
        Err(_) => {}
    }
    // The socket file takes its mode from the umask at bind time; setting it first means the
    // socket is never reachable by others, not even between bind and chmod.
    let old_mask = umask(Mode::from_bits_truncate(0o177));
    let bound = std::os::unix::net::UnixListener::bind(&path);
    umask(old_mask);
    let fail = |source| BindFailure::Bind { path: path.clone(), source };
    let listener = bound.map_err(fail)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    UnixListener::from_std(listener).map_err(fail)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("meshd-private-socket-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test]
    async fn binds_owner_only_in_a_new_private_directory() {
        let dir = temp_dir("mode");
        let path = dir.join("sub").join("s.sock");
        let _listener = bind(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777, 0o700);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn replaces_a_stale_socket_and_refuses_a_live_one() {
        let dir = temp_dir("stale");
        let path = dir.join("s.sock");
        // Stale: bound, then closed, the file left behind (as after a kill -9).
        drop(bind(&path).unwrap());
        assert!(path.exists());
        let live = bind(&path).unwrap();
        assert!(matches!(bind(&path), Err(BindFailure::InUse { .. })));
        drop(live);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn never_replaces_a_file_that_is_not_a_socket() {
        let dir = temp_dir("file");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        std::fs::write(&path, b"keep me").unwrap();
        assert!(matches!(bind(&path), Err(BindFailure::NotASocket { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
