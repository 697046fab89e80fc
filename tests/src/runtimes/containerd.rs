//! containerd (1.6) private to one test node, and `ctr` with its CNI networking. ctr runs the
//! CNI plugins itself, from the fixed paths /etc/cni/net.d (the lexically first file) and
//! /opt/cni/bin:/usr/lib/cni, with no flag to change them; so every `ctr` runs in a private
//! mount namespace with this node's configuration bound over /etc/cni/net.d and its plugin
//! directory as /opt/cni/bin (a tmpfs over /opt). The machine's own files are never touched
//! (podman's package puts 87-podman-bridge.conflist there).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::global::GlobalFiles;
use super::mounts;
use crate::binaries;
use crate::command::describe_failure;
use crate::process::Process;

pub struct Containerd {
    dir: PathBuf,
    node_netns: String,
    daemon: Option<Process>,
    _global: GlobalFiles,
}

impl Containerd {
    /// Starts containerd under `dir` in the namespace at `node_netns`, with `conflist` as the
    /// only CNI configuration ctr sees; returns once it answers.
    pub fn start(dir: &Path, node_netns: &str, conflist: &Value) -> Containerd {
        let global = GlobalFiles::new();
        for sub in ["net.d", "cni-bin", "root", "state", "opt", "fifo", "runc-root"] {
            std::fs::create_dir_all(dir.join(sub)).expect("containerd dirs");
        }
        let _ = std::os::unix::fs::symlink(binaries::meshd_cni(), dir.join("cni-bin/meshd-cni"));
        let name = conflist["name"].as_str().unwrap_or("meshd");
        std::fs::write(dir.join("net.d").join(format!("{name}.conflist")), conflist.to_string()).unwrap();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             # The CRI plugin would watch /etc/cni/net.d and open a stream server.\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{d}/containerd.sock\"\n[ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
             [debug]\n  address = \"\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n",
            d = dir.display()
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={node_netns}"))
            .arg("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"));
        let daemon = Process::spawn(command, &dir.join("containerd.log"), "containerd");
        let containerd = Containerd {
            dir: dir.to_path_buf(),
            node_netns: node_netns.to_string(),
            daemon: Some(daemon),
            _global: global,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !containerd.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not answer: {}",
                std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        containerd
    }

    /// `ctr ARGS` against this containerd, with the node's CNI configuration in place.
    pub fn ctr<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        let d = self.dir.display();
        let mut all: Vec<std::ffi::OsString> = args.iter().map(|a| a.as_ref().to_os_string()).collect();
        if all.first().is_some_and(|a| a == "run") {
            // Otherwise ctr keeps fifos and runc state under /run/containerd.
            let private = [
                "--fifo-dir".into(),
                format!("{d}/fifo").into(),
                "--runc-root".into(),
                format!("{d}/runc-root").into(),
            ];
            all.splice(1..1, private);
        }
        let script = format!(
            "mount --bind {d}/net.d /etc/cni/net.d && mount -t tmpfs tmpfs /opt && mkdir -p /opt/cni && \
             ln -s {d}/cni-bin /opt/cni/bin && exec ctr -a {d}/containerd.sock \"$@\""
        );
        Command::new("nsenter")
            .arg(format!("--net={}", self.node_netns))
            .args(["unshare", "--mount", "--propagation", "private", "sh", "-c", &script, "ctr"])
            .args(all)
            .output()
            .expect("nsenter/unshare/ctr (apt-get install containerd)")
    }

    /// `ctr ARGS`, its stdout; panics with its output on failure.
    pub fn ctr_ok<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> String {
        let out = self.ctr(args);
        if !out.status.success() {
            let shown: Vec<String> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
            panic!("{}", describe_failure(&format!("ctr {}", shown.join(" ")), &out));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The pid of task `id` (its namespace is /proc/PID/ns/net).
    pub fn task_pid(&self, id: &str) -> Option<u32> {
        let out = self.ctr(&["tasks", "ls"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|pid| pid.parse().ok())
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let tasks = String::from_utf8_lossy(&self.ctr(&["tasks", "ls", "-q"]).stdout).into_owned();
        for id in tasks.lines() {
            let _ = self.ctr(&["tasks", "kill", "--signal", "SIGKILL", id]);
        }
        for id in tasks.lines() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !self.ctr(&["tasks", "rm", "--force", id]).status.success() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let containers = String::from_utf8_lossy(&self.ctr(&["containers", "ls", "-q"]).stdout).into_owned();
        for id in containers.lines() {
            let _ = self.ctr(&["containers", "rm", id]);
        }
        if let Some(mut daemon) = self.daemon.take() {
            daemon.stop();
        }
        mounts::kill_processes_using(&self.dir);
        mounts::unmount_below(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
