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

/// Mounts bpffs at `root` unless one is mounted there already. Returns true if it mounted one.
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
        None::<&str>,
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
