//! Where the socket programs attach: the root of the cgroup v2 hierarchy (every process of the
//! machine is under it), and the network namespace cookie that limits them to this node.

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

/// Where meshd mounts cgroup2 itself when the machine has not (cgroup v1-only hosts).
const OWN_MOUNT: &str = "/run/meshd/cgroup2";

/// The mount point of the cgroup v2 hierarchy: the first `cgroup2` mount in /proc/self/mounts
/// (`/sys/fs/cgroup` on unified hosts, `/sys/fs/cgroup/unified` on hybrid ones), or one meshd
/// mounts at /run/meshd/cgroup2 when there is none. There is only one v2 hierarchy per machine,
/// so any mount of it is its root.
pub fn cgroup2_root() -> io::Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    if let Some(path) = find_cgroup2(&mounts) {
        return Ok(path);
    }
    let own = Path::new(OWN_MOUNT);
    std::fs::create_dir_all(own)?;
    mount(Some("cgroup2"), own, Some("cgroup2"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, None::<&str>)
        .map_err(io::Error::from)?;
    Ok(own.to_path_buf())
}

fn find_cgroup2(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_source, path, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        // Paths with spaces are octal-escaped (\040); cgroup mount points do not have them.
        (fstype == "cgroup2" && !path.contains('\\')).then(|| PathBuf::from(path))
    })
}

/// `CGROUP2_SUPER_MAGIC` (linux/magic.h): the filesystem type of a cgroup v2 directory.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// `dir` if it is a directory of the cgroup v2 hierarchy (`--cgroup-root`).
pub fn check_cgroup2_dir(dir: &Path) -> io::Result<PathBuf> {
    let fs = nix::sys::statfs::statfs(dir).map_err(io::Error::from)?;
    if fs.filesystem_type().0 as i64 != CGROUP2_SUPER_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a directory of the cgroup v2 hierarchy",
        ));
    }
    Ok(dir.to_path_buf())
}

/// `SO_NETNS_COOKIE` (asm-generic/socket.h, the value on every architecture meshd builds for).
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The cookie of the current network namespace, as `bpf_get_netns_cookie()` returns it in the
/// socket programs (Linux 5.14 or later).
pub fn netns_cookie() -> io::Result<u64> {
    let socket =
        std::net::UdpSocket::bind("127.0.0.1:0").or_else(|_| std::net::UdpSocket::bind("[::1]:0"))?;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: the fd is a live socket owned by `socket`; the kernel writes at most `len` bytes
    // into `cookie`, which is that large, and reports the length it wrote.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<u64>() {
        return Err(io::Error::other("SO_NETNS_COOKIE returned an unexpected length"));
    }
    Ok(cookie)
}

/// The cookie of the network namespace at `path` (a `/run/netns/NAME` or `/proc/PID/ns/net`
/// file), read on a short-lived thread that enters it (setns moves only the calling thread).
pub fn netns_cookie_of(path: &Path) -> io::Result<u64> {
    let file = std::fs::File::open(path)?;
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        netns_cookie()
    })
    .join()
    .map_err(|_| io::Error::other("the thread reading the namespace's cookie panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_on_unified_and_hybrid_hosts() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
                      cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(find_cgroup2(hybrid), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(find_cgroup2("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"), Some("/sys/fs/cgroup".into()));
        assert_eq!(find_cgroup2("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n"), None);
    }

    #[test]
    fn the_netns_cookie_is_stable_within_a_namespace() {
        let a = netns_cookie().unwrap();
        assert_ne!(a, 0);
        assert_eq!(netns_cookie().unwrap(), a);
    }
}
