//! nginx (Debian's nginx-light) in a namespace, serving a small page, with its access log in its
//! own directory; stopped and cleaned up on drop.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Nginx {
    /// Starts nginx inside namespace `ns` on port 80, with its files under `dir`. With
    /// `access_log`, every request is logged to `dir/access.log` (client address first).
    pub fn start(ns: &str, dir: PathBuf, access_log: bool) -> Nginx {
        std::fs::create_dir_all(dir.join("html")).unwrap();
        std::fs::write(dir.join("html/index.html"), "hello from a backend\n").unwrap();
        let log = if access_log {
            format!("access_log {}/access.log;", dir.display())
        } else {
            "access_log off;".into()
        };
        let conf = format!(
            "worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log; daemon off;\n\
             events {{ worker_connections 4096; }}\n\
             http {{ {log} keepalive_requests 1000000;\n\
               client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
               server {{ listen 80; root {d}/html; }} }}\n",
            d = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        // A process group of its own: the drop kills the master and its worker together (a
        // SIGKILL to the master alone left the worker running, orphaned, in a deleted namespace).
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "nginx", "-c"])
            .arg(dir.join("nginx.conf"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (apt-get install nginx-light)");
        std::thread::sleep(Duration::from_millis(500));
        Nginx { child, dir }
    }

    /// The access log so far (empty without `access_log`).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
