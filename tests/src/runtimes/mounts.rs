//! Mounts a runtime may leave under its private directory (overlay layers, namespace files,
//! shm): unmounted deepest first before the directory is removed.

use std::path::Path;

/// Unmounts every mount point at or below `dir` (lazily, so a busy one still goes).
pub fn unmount_below(dir: &Path) {
    let Ok(text) = std::fs::read_to_string("/proc/self/mounts") else { return };
    let prefix = dir.display().to_string();
    let mut targets: Vec<String> = text
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(|target| target.replace("\\040", " "))
        .filter(|target| target == &prefix || target.starts_with(&format!("{prefix}/")))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for target in targets {
        let _ = nix::mount::umount2(target.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Kills (SIGKILL, by pid) every process whose command line mentions `dir`: what a runtime
/// left running for this test (conmon, shims), found by the private paths they were given.
pub fn kill_processes_using(dir: &Path) {
    let needle = dir.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else { continue };
        if pid == std::process::id() as i32 {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}
