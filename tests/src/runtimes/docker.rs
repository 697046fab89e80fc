//! dockerd (20.10) private to one test node: its own data and exec roots, API socket, pid
//! file and (empty) daemon.json, no iptables, no bridge, run inside the node's network
//! namespace. Plugins are found in the global /run/docker/plugins only (no flag moves it), so
//! each test's meshd serves its driver under a test-unique name there.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::global::GlobalFiles;
use super::mounts;
use crate::command::describe_failure;
use crate::process::Process;

/// The daemon's own client: a newer `docker` may come first in PATH.
const DOCKER: &str = "/usr/bin/docker";

pub struct Dockerd {
    dir: PathBuf,
    daemon: Option<Process>,
    _global: GlobalFiles,
}

impl Dockerd {
    /// Starts dockerd under `dir` in the namespace at `node_netns`; returns once it answers.
    pub fn start(dir: &Path, node_netns: &str) -> Dockerd {
        let global = GlobalFiles::new();
        for sub in ["data", "exec", "client"] {
            std::fs::create_dir_all(dir.join(sub)).expect("dockerd dirs");
        }
        std::fs::write(dir.join("daemon.json"), "{}\n").unwrap();
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={node_netns}"))
            .arg("dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .args(["--iptables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none"]);
        let daemon = Process::spawn(command, &dir.join("dockerd.log"), "dockerd");
        let dockerd = Dockerd { dir: dir.to_path_buf(), daemon: Some(daemon), _global: global };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !dockerd.docker(&["info", "--format", "{{.ID}}"]).status.success() {
            assert!(Instant::now() < deadline, "dockerd did not answer:\n{}", dockerd.log());
            std::thread::sleep(Duration::from_millis(200));
        }
        dockerd
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// `docker ARGS` against this daemon, whatever its exit status.
    pub fn docker<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        Command::new(DOCKER)
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.join("client"))
            .output()
            .expect("docker (apt-get install docker.io)")
    }

    /// `docker ARGS`, its stdout; panics with its output on failure.
    pub fn ok<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> String {
        let out = self.docker(args);
        if !out.status.success() {
            let shown: Vec<String> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
            panic!(
                "{}\ndockerd log tail:\n{}",
                describe_failure(&format!("docker {}", shown.join(" ")), &out),
                self.log_tail()
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Imports the image tarball as `local/busybox`.
    pub fn import(&self, tarball: &Path) {
        self.ok(&["import".as_ref(), tarball.as_os_str(), "local/busybox:latest".as_ref()]);
    }

    /// A container's address on `network`.
    pub fn address(&self, container: &str, network: &str) -> String {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
        self.ok(&["inspect", "--format", &format, container]).trim().to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().rev().take(20).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Stops dockerd (SIGTERM), as a restart would.
    pub fn stop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.stop_with(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(30));
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            let ids = String::from_utf8_lossy(&self.docker(&["ps", "-aq"]).stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "--force"];
                args.extend(ids);
                let _ = self.docker(&args);
            }
        }
        self.stop();
        // Its containerd and shims name the exec root (meshd names the API socket: spared).
        mounts::kill_processes_using(&self.dir.join("exec"));
        mounts::unmount_below(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
