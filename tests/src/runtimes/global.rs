//! Global paths runtimes create despite private roots, removed again if they were not there
//! before the guard was made: files are deleted, directories only when empty (several tests
//! may share one, and another run may be using it).

use std::path::{Path, PathBuf};

/// Everything the runtime research saw appear (docs/runtimes.md), deepest first.
const PATHS: [&str; 14] = [
    "/etc/docker/key.json",
    "/run/docker/plugins",
    "/run/docker",
    "/run/containerd/s",
    "/run/containerd/fifo",
    "/run/containerd/runc",
    "/run/containerd",
    "/run/runc",
    "/run/crun",
    "/var/lib/cni/results",
    "/var/lib/cni/networks",
    "/var/lib/cni",
    "/run/containers",
    "/run/libpod",
];

pub struct GlobalFiles {
    absent: Vec<PathBuf>,
}

impl GlobalFiles {
    pub fn new() -> GlobalFiles {
        GlobalFiles { absent: PATHS.iter().map(PathBuf::from).filter(|p| !p.exists()).collect() }
    }
}

impl Default for GlobalFiles {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for GlobalFiles {
    fn drop(&mut self) {
        for path in &self.absent {
            remove_if_unused(path);
        }
    }
}

fn remove_if_unused(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let _ = std::fs::remove_dir(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}
