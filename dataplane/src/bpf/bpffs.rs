//! bpffs: where meshd pins its maps (and later its links) so they outlive the agent process.
//!
//! bpffs is one shared tree for every network namespace on the machine, so each node pins under
//! a directory of its own, `/sys/fs/bpf/meshd/<node-id>/`: several nodes on one machine (the
//! tests, the demo) never see each other's maps.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::statfs::{statfs, FsType};

use super::BpfError;
use crate::identity::NodeId;

/// Where bpffs is expected to be mounted.
pub const ROOT: &str = "/sys/fs/bpf";
/// `BPF_FS_MAGIC` from linux/magic.h.
const BPF_FS_MAGIC: FsType = FsType(0xcafe_4a11);

/// The mount's options: only root may look inside (1700; the kernel's default is 1777: any local
/// user could create pins there and list every node's directory).
const MOUNT_OPTIONS: &str = "mode=0700";

/// Mounts bpffs at `root` unless one is mounted there already. Returns true if it mounted one.
/// A bpffs mounted by someone else keeps its mode (the system's choice).
pub fn ensure_mounted(root: &Path) -> Result<bool, BpfError> {
    let err = |source: nix::Error| BpfError::Bpffs { path: root.to_path_buf(), source: source.into() };
    if statfs(root).map_err(err)?.filesystem_type() == BPF_FS_MAGIC {
        return Ok(false);
    }
    mount(
        Some("bpf"),
        root,
        Some("bpf"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(MOUNT_OPTIONS),
    )
    .map_err(err)?;
    Ok(true)
}

/// The pin directory of one node under `root`.
pub fn node_pin_dir(root: &Path, node: &NodeId) -> PathBuf {
    root.join("meshd").join(node.to_string())
}

/// Creates `dir` (and its parents) with mode 0700 if missing.
pub fn create_pin_dir(dir: &Path) -> Result<(), BpfError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| BpfError::PinDir { path: dir.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Set in the copy of this test that runs in a private mount namespace.
    const INSIDE: &str = "MESHD_TEST_PRIVATE_MOUNTS";

    /// Mounting needs root and a mount namespace of its own (so nothing leaks onto the machine):
    /// the test runs itself again under `unshare -m`, where it mounts bpffs on a fresh directory.
    #[test]
    fn bpffs_that_meshd_mounts_is_closed_to_other_users() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        if std::env::var_os(INSIDE).is_none() {
            let exe = std::env::current_exe().unwrap();
            let out = std::process::Command::new("unshare")
                .args(["-m", "--propagation", "private"])
                .arg(exe)
                .args(["--exact", "bpf::bpffs::tests::bpffs_that_meshd_mounts_is_closed_to_other_users"])
                .env(INSIDE, "1")
                .output()
                .expect("run unshare");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
            assert!(text.contains("1 passed"), "the copy ran: {text}");
            return;
        }
        let dir = std::env::temp_dir().join(format!("meshd-bpffs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(ensure_mounted(&dir).unwrap(), "mounted");
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert!(!ensure_mounted(&dir).unwrap(), "a bpffs already there is left alone");
        nix::mount::umount(&dir).unwrap();
        std::fs::remove_dir(&dir).unwrap();
        // The kernel always adds the sticky bit to bpffs's root (1700); what matters is 700.
        assert_eq!(mode & 0o777, 0o700, "mode {mode:o}");
    }
}
