//! podman (4.3, CNI backend) private to one test node: its own containers.conf, storage,
//! network configurations and temporary directory, run inside the node's network namespace.
//! Its one CNI network is a meshd-cni configuration pointing at the node's meshd.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

use super::global::GlobalFiles;
use super::mounts;
use crate::binaries;
use crate::command::describe_failure;

pub struct Podman {
    dir: PathBuf,
    node_netns: String,
    /// The CNI network's name (what `--network` takes); unique per test, since libcni keeps
    /// its cache under the global /var/lib/cni/results/NAME-*.
    pub network: String,
    _global: GlobalFiles,
}

impl Podman {
    /// podman under `dir`, in the namespace at `node_netns`, with a CNI network `cni_name` of
    /// type meshd-cni on meshd network `network` through `socket`; `service` is the
    /// configuration's default service.
    pub fn new(
        dir: &Path,
        node_netns: &str,
        cni_name: &str,
        network: &str,
        socket: &Path,
        service: Option<&str>,
    ) -> Podman {
        let global = GlobalFiles::new();
        for sub in ["net.d", "tmp", "root", "runroot", "cni-bin"] {
            std::fs::create_dir_all(dir.join(sub)).expect("podman dirs");
        }
        let _ = std::os::unix::fs::symlink(binaries::meshd_cni(), dir.join("cni-bin/meshd-cni"));
        let conf = format!(
            "[containers]\n\
             # The host's hard nofile limit is below podman's default ulimits (runc refuses them).\n\
             default_ulimits = []\nlog_driver = \"k8s-file\"\n\
             [network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{bin}\", \"/usr/lib/cni\"]\n\
             network_config_dir = \"{d}/net.d\"\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nevents_logfile_path = \"{d}/events.log\"\n\
             tmp_dir = \"{d}/tmp\"\n\
             # crun cannot run on this hybrid cgroup host.\nruntime = \"runc\"\n",
            d = dir.display(),
            bin = dir.join("cni-bin").display()
        );
        std::fs::write(dir.join("containers.conf"), conf).unwrap();
        let storage = format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/runroot\"\n",
            d = dir.display()
        );
        std::fs::write(dir.join("storage.conf"), storage).unwrap();
        let mut plugin = json!({
            "type": "meshd-cni",
            "network": network,
            "socket": socket.display().to_string(),
            "capabilities": { "aliases": true, "portMappings": true },
        });
        if let Some(service) = service {
            plugin["service"] = json!(service);
        }
        // 1.0.0: podman 4.3 (libcni 1.1) cannot read 1.1.0 results.
        let conflist = json!({ "cniVersion": "1.0.0", "name": cni_name, "plugins": [plugin] });
        std::fs::write(dir.join("net.d").join(format!("{cni_name}.conflist")), conflist.to_string()).unwrap();
        Podman {
            dir: dir.to_path_buf(),
            node_netns: node_netns.to_string(),
            network: cni_name.to_string(),
            _global: global,
        }
    }

    /// `podman ARGS` in the node's namespace, whatever its exit status.
    pub fn cmd<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.node_netns))
            .arg("podman")
            .args(args)
            .env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .output()
            .expect("podman (apt-get install podman)")
    }

    /// `podman ARGS`, its stdout; panics with its output on failure.
    pub fn ok<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> String {
        let out = self.cmd(args);
        if !out.status.success() {
            let shown: Vec<String> = args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect();
            panic!("{}", describe_failure(&format!("podman {}", shown.join(" ")), &out));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Imports the image tarball as `localhost/busybox`.
    pub fn import(&self, tarball: &Path) {
        self.ok(&["import".as_ref(), tarball.as_os_str(), "localhost/busybox:latest".as_ref()]);
    }

    /// A container's address on the CNI network, as podman shows it.
    pub fn address(&self, container: &str) -> String {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", self.network);
        self.ok(&["inspect", "--format", &format, container]).trim().to_string()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "--all", "--force", "--time", "0"]);
        let _ = self.cmd(&["pod", "rm", "--all", "--force"]);
        mounts::kill_processes_using(&self.dir);
        mounts::unmount_below(&self.dir);
        // libcni's cache of this network's results (global path, test-unique name).
        if let Ok(entries) = std::fs::read_dir("/var/lib/cni/results") {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&format!("{}-", self.network)) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
