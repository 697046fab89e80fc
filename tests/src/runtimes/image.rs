//! The test image: busybox-static in an otherwise empty root (`sh`, `httpd`, `wget`, `ping`,
//! `nslookup`, ...), imported into each runtime from a tarball. No registry is needed.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::command::run;

/// The busybox binary (the `busybox-static` package).
const BUSYBOX: &str = "/usr/bin/busybox";

/// Writes the root file system under `dir/rootfs` and a tarball of it; returns the tarball.
pub fn busybox_tarball(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for sub in ["bin", "etc", "tmp", "proc", "sys", "dev", "www"] {
        std::fs::create_dir_all(root.join(sub)).expect("create rootfs dir");
    }
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).expect("copy busybox (apt-get install busybox-static)");
    let list = run(BUSYBOX, ["--list"]);
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        // `busybox --list` names busybox itself: a link would replace the binary.
        if applet != "busybox" && !applet.is_empty() {
            let _ = symlink("busybox", root.join("bin").join(applet));
        }
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    let tarball = dir.join("busybox.tar");
    run("tar", ["-C".as_ref(), root.as_os_str(), "-cf".as_ref(), tarball.as_os_str(), ".".as_ref()]);
    tarball
}

/// The shell command a test container runs: an HTTP server on port 80 answering `name`.
pub fn http_server(name: &str) -> String {
    format!("echo {name} > /www/index.html && exec httpd -f -p 80 -h /www")
}

/// The command a test container runs to fetch `url` and print the body: busybox wget, bounded
/// by `timeout` rather than wget's own `-T`, which crashes the static busybox when the host is
/// a name (its alarm interrupts glibc's resolver).
pub fn http_get(url: &str) -> Vec<String> {
    ["timeout", "5", "wget", "-q", "-O", "-", url].iter().map(|s| s.to_string()).collect()
}
