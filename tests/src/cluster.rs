//! A test cluster: an underlay bridge in its own namespace, node namespaces wired to it, a real
//! `meshd` in each node namespace, and container namespaces wired to nodes.
//!
//! ```text
//!   [ <prefix>-ul: br0 ] --u1-- eth0 [ <prefix>-n1: meshd ] --vc0-- eth0 [ <prefix>-c0 ]
//!                        --u2-- eth0 [ <prefix>-n2: meshd ]
//! ```
//!
//! meshd runs under `nsenter --net`, which switches the network namespace only. (`ip netns exec`
//! would also give it a private mount namespace without the machine's bpffs, so its pins would
//! vanish with the process, and an agent restart could not find them.)

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::binaries;
use crate::command::{describe_failure, stdout, try_run};
use crate::names::unique_prefix;
use crate::netns::Netns;
use crate::process::Process;

/// Underlay subnet: node i (from 1) is 10.77.0.i/24. Each test has its own underlay namespace,
/// so every test can use the same addresses.
pub const UNDERLAY_PREFIX_LEN: u8 = 24;

pub fn node_underlay_addr(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, index as u8)
}

/// The kernel's ARP table is one table for every namespace on the machine, with a global limit
/// (gc_thresh3, 1024 by default). A cluster of n nodes on one machine needs about n^2 entries, so
/// from about 30 nodes ARP starts failing ("neighbor table overflow"). Real nodes are separate
/// machines; only single-machine clusters need this, and it only ever raises the limits.
fn ensure_neighbour_capacity(nodes: usize) {
    let needed = (nodes * nodes * 2).max(1024);
    for (name, value) in [("gc_thresh1", needed / 4), ("gc_thresh2", needed / 2), ("gc_thresh3", needed)] {
        let path = format!("/proc/sys/net/ipv4/neigh/default/{name}");
        let current: usize =
            std::fs::read_to_string(&path).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        if current < value {
            let _ = std::fs::write(&path, value.to_string());
        }
    }
}

/// How long a node may take to answer its API after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Cluster {
    prefix: String,
    work_dir: PathBuf,
    containers: Vec<Container>,
    namespaces: Vec<Netns>,
    clients: Vec<UnderlayClient>,
    nodes: Vec<Node>,
    underlay: Option<Netns>,
}

impl Cluster {
    /// Builds the underlay and `nodes` node namespaces; meshd is not started yet.
    pub fn new(tag: &str, nodes: usize) -> Cluster {
        crate::require_root();
        ensure_neighbour_capacity(nodes);
        let prefix = unique_prefix(tag);
        let work_dir = std::env::temp_dir().join("meshd-tests").join(&prefix);
        std::fs::create_dir_all(&work_dir).expect("create work dir");
        // The nodes' DNS upstreams: none, so nothing a test does is ever forwarded off the
        // machine. A test that wants an upstream writes its own namespaced resolver here.
        std::fs::write(work_dir.join("resolv.conf"), "# meshd tests: no upstream resolver\n")
            .expect("resolv.conf");
        let mut cluster = Cluster {
            prefix: prefix.clone(),
            work_dir,
            containers: Vec::new(),
            namespaces: Vec::new(),
            clients: Vec::new(),
            nodes: Vec::new(),
            underlay: None,
        };

        let underlay = Netns::new(&format!("{prefix}-ul"));
        underlay.ip(["link", "add", "br0", "type", "bridge"]);
        underlay.ip(["link", "set", "br0", "up"]);
        cluster.underlay = Some(underlay);
        for index in 1..=nodes {
            cluster.add_node(index);
        }
        cluster
    }

    fn add_node(&mut self, index: usize) {
        let underlay = self.underlay.as_ref().expect("underlay exists");
        let ns = Netns::new(&format!("{}-n{index}", self.prefix));
        let uplink = format!("u{index}");
        underlay.ip(["link", "add", &uplink, "type", "veth", "peer", "name", "eth0", "netns", ns.name()]);
        underlay.ip(["link", "set", &uplink, "master", "br0", "up"]);
        let addr = node_underlay_addr(index);
        ns.ip(["addr", "add", &format!("{addr}/{UNDERLAY_PREFIX_LEN}"), "dev", "eth0"]);
        ns.ip(["link", "set", "eth0", "up"]);
        let dir = self.work_dir.join(format!("n{index}"));
        std::fs::create_dir_all(&dir).expect("create node dir");
        self.nodes.push(Node {
            resolv_conf: self.work_dir.join("resolv.conf"),
            name: format!("n{index}"),
            addr,
            state_dir: dir.join("state"),
            socket: dir.join("meshd.sock"),
            log: dir.join("meshd.log"),
            daemon: None,
            bin_dir: None,
            ns,
        });
    }

    /// Runs `meshd` and `meshctl` from `dir` on every node instead of the binaries under test
    /// (a benchmark's baseline: an older build).
    pub fn use_binaries(&mut self, dir: &Path) {
        for node in &mut self.nodes {
            node.bin_dir = Some(dir.to_path_buf());
        }
    }

    /// Starts meshd on every node as a cluster of its own and waits until each answers.
    pub fn start_all(&mut self) {
        for node in &mut self.nodes {
            node.start();
        }
    }

    /// Forms one cluster: n1 creates it, every other node joins through n1 with its token, the
    /// first five as managers (a small cluster of managers, as in a small Swarm: any of them can
    /// change it; Swarm advises against more than seven), the rest as workers. Returns once
    /// every node lists every node alive and every manager is a voter of the managers' group.
    pub fn form(&mut self) {
        self.form_with(&[] as &[&str]);
    }

    /// [`form`](Self::form) with extra meshd arguments for every node (e.g. gossip timings).
    pub fn form_with<S: AsRef<std::ffi::OsStr>>(&mut self, extra: &[S]) {
        let managers = self.nodes.len().min(5);
        self.form_roles(managers, extra);
    }

    /// Forms one cluster in which n1..n`managers` join as managers and the rest as workers.
    pub fn form_roles<S: AsRef<std::ffi::OsStr>>(&mut self, managers: usize, extra: &[S]) {
        let extra: Vec<std::ffi::OsString> = extra.iter().map(|a| a.as_ref().to_os_string()).collect();
        self.form_roles_per_node(managers, |_| extra.clone());
    }

    /// [`form`](Self::form) with extra meshd arguments per node (`extra(index)`, from 1).
    pub fn form_per_node(&mut self, extra: impl Fn(usize) -> Vec<String>) {
        let managers = self.nodes.len().min(5);
        self.form_roles_per_node(managers, |i| extra(i).into_iter().map(Into::into).collect());
    }

    fn form_roles_per_node(&mut self, managers: usize, extra: impl Fn(usize) -> Vec<std::ffi::OsString>) {
        let mut args: Vec<std::ffi::OsString> =
            self.nodes[0].base_args().into_iter().map(Into::into).collect();
        args.extend(extra(1));
        self.nodes[0].start_with(&args);
        let manager_token = self.nodes[0].meshctl_ok(&["join-token", "manager"]).trim().to_string();
        let worker_token = self.nodes[0].meshctl_ok(&["join-token", "worker"]).trim().to_string();
        let seed = self.nodes[0].addr.to_string();
        for (i, node) in self.nodes.iter_mut().enumerate().skip(1) {
            let token = if i < managers { &manager_token } else { &worker_token };
            let mut args: Vec<std::ffi::OsString> = node.base_args().into_iter().map(Into::into).collect();
            args.extend(node.join_args(&seed, token).into_iter().map(Into::into));
            args.extend(extra(i + 1));
            node.start_with(&args);
        }
        let expected = self.nodes.len();
        self.wait_for("every node to list every node alive", Duration::from_secs(30), |cluster| {
            cluster.nodes.iter().all(|n| n.count_status("alive") == expected)
        });
        self.wait_for(
            "every manager to be a voter of the managers' group",
            Duration::from_secs(30),
            |cluster| {
                let nodes = cluster.nodes[0].nodes_json();
                // A build from before the managers' group (a benchmark's baseline) has no voters.
                let raft = nodes.iter().any(|n| n.get("voter").is_some());
                let voters = nodes.iter().filter(|n| n["role"] == "manager" && n["voter"] == true).count();
                !raft
                    || (voters == managers.max(1)
                        && nodes.iter().all(|n| n["role"] == "manager" || n["voter"] == false))
            },
        );
    }

    /// Waits until `meshctl ARGS` prints `needle` on every node (a network, a service, ...).
    pub fn wait_listed(&self, args: &[&str], needle: &str) {
        let what = format!("`{}` to show {needle:?} on every node", args.join(" "));
        self.wait_for(&what, Duration::from_secs(10), |c| {
            c.nodes().iter().all(|n| n.meshctl_ok(args).contains(needle))
        });
    }

    /// Polls `condition` every 50 ms until it holds; panics (with every node's view and log
    /// tail) after `timeout`. Returns how long it took.
    pub fn wait_for(&self, what: &str, timeout: Duration, condition: impl Fn(&Cluster) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            if condition(self) {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                let mut report = format!("timed out after {timeout:?} waiting for {what}\n");
                for node in &self.nodes {
                    let view = node.meshctl(&["node", "ls"]);
                    report.push_str(&format!(
                        "--- {} sees:\n{}{}",
                        node.name,
                        stdout(&view),
                        crate::command::stderr(&view)
                    ));
                    let log = node.log();
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    report.push_str(&format!(
                        "--- {} log tail:\n{}\n",
                        node.name,
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    ));
                }
                panic!("{report}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Node `index`, counted from 1 like the names (`n1`, `n2`, ...).
    pub fn node(&self, index: usize) -> &Node {
        &self.nodes[index - 1]
    }

    pub fn node_mut(&mut self, index: usize) -> &mut Node {
        &mut self.nodes[index - 1]
    }

    /// A container namespace wired to node `node` by a plain veth pair with point-to-point
    /// addresses and a default route through the node (no meshd attach involved). Returns its
    /// index in [`containers`](Self::containers).
    pub fn add_plain_container(&mut self, node: usize) -> usize {
        let index = self.containers.len();
        let node_ns = &self.nodes[node - 1].ns;
        let ns = Netns::new(&format!("{}-c{index}", self.prefix));
        let host_ifname = format!("vc{index}");
        node_ns.ip(["link", "add", &host_ifname, "type", "veth", "peer", "name", "eth0", "netns", ns.name()]);
        let host_addr = Ipv4Addr::new(10, 201, index as u8, 1);
        let addr = Ipv4Addr::new(10, 201, index as u8, 2);
        node_ns.ip(["addr", "add", &format!("{host_addr}/30"), "dev", &host_ifname]);
        node_ns.ip(["link", "set", &host_ifname, "up"]);
        ns.ip(["addr", "add", &format!("{addr}/30"), "dev", "eth0"]);
        ns.ip(["link", "set", "eth0", "up"]);
        ns.ip(["route", "add", "default", "via", &host_addr.to_string()]);
        self.containers.push(Container { ns, addr, host_addr, host_ifname, node });
        index
    }

    pub fn containers(&self) -> &[Container] {
        &self.containers
    }

    /// An empty namespace (loopback up), to be attached with `meshctl attach`. Returns its name.
    pub fn add_namespace(&mut self, tag: &str) -> String {
        let ns = Netns::new(&format!("{}-{tag}", self.prefix));
        let name = ns.name().to_string();
        self.namespaces.push(ns);
        name
    }

    /// A new namespace (`tag`) attached on `node` to `network` as task `task` of `service`, the
    /// way a runtime would start a task. Returns the namespace's name and the task's address.
    pub fn attach_task(
        &mut self,
        node: usize,
        tag: &str,
        network: &str,
        service: &str,
        task: &str,
    ) -> (String, Ipv4Addr) {
        let ns = self.add_namespace(tag);
        let address = self.node(node).meshctl_ok(&[
            "attach",
            "--netns",
            &ns,
            "--network",
            network,
            "--service",
            service,
            "--name",
            task,
        ]);
        let address = address.trim().parse().unwrap_or_else(|_| panic!("attach printed {address:?}"));
        (ns, address)
    }

    /// A namespace made by [`add_namespace`](Self::add_namespace), by name.
    pub fn namespace(&self, name: &str) -> &Netns {
        self.namespaces.iter().find(|n| n.name() == name).expect("a namespace of this cluster")
    }

    /// The underlay bridge's namespace (for captures with tcpdump on `br0`).
    pub fn underlay(&self) -> &Netns {
        self.underlay.as_ref().expect("underlay exists")
    }

    /// A host on the underlay that is not a node (a client, or an attacker): its own namespace
    /// on the bridge with address 10.77.0.(200 + n). Returns its index in
    /// [`clients`](Self::clients).
    pub fn add_underlay_client(&mut self) -> usize {
        let index = self.clients.len();
        let underlay = self.underlay.as_ref().expect("underlay exists");
        let ns = Netns::new(&format!("{}-x{index}", self.prefix));
        let uplink = format!("x{index}");
        underlay.ip(["link", "add", &uplink, "type", "veth", "peer", "name", "eth0", "netns", ns.name()]);
        underlay.ip(["link", "set", &uplink, "master", "br0", "up"]);
        let addr = Ipv4Addr::new(10, 77, 0, 200 + index as u8);
        ns.ip(["addr", "add", &format!("{addr}/{UNDERLAY_PREFIX_LEN}"), "dev", "eth0"]);
        ns.ip(["link", "set", "eth0", "up"]);
        self.clients.push(UnderlayClient { ns, addr });
        index
    }

    pub fn clients(&self) -> &[UnderlayClient] {
        &self.clients
    }
}

/// A host on the underlay that is not a node.
pub struct UnderlayClient {
    pub ns: Netns,
    pub addr: Ipv4Addr,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A failed test shows what each meshd said (its log goes with the work directory).
        if std::thread::panicking() {
            for node in &self.nodes {
                let log = node.log();
                let tail: Vec<&str> = log.lines().rev().take(200).collect();
                eprintln!(
                    "--- {} log tail:\n{}",
                    node.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        // Order matters: containers, then nodes (their processes, pins and namespaces), then the
        // underlay; a namespace still used by a process would linger.
        self.containers.clear();
        self.namespaces.clear();
        self.clients.clear();
        self.nodes.clear();
        self.underlay = None;
        let _ = std::fs::remove_dir_all(&self.work_dir);
    }
}

/// A node namespace and (when started) its meshd.
pub struct Node {
    pub name: String,
    pub addr: Ipv4Addr,
    pub ns: Netns,
    state_dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    resolv_conf: PathBuf,
    daemon: Option<Process>,
    /// Binaries other than the ones under test (a benchmark's baseline build).
    bin_dir: Option<PathBuf>,
}

impl Node {
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The arguments every start passes; tests add more through [`start_with`](Self::start_with).
    pub fn base_args(&self) -> Vec<String> {
        vec![
            "--state-dir".into(),
            self.state_dir.display().to_string(),
            "--advertise-addr".into(),
            self.addr.to_string(),
            "--socket".into(),
            self.socket.display().to_string(),
            "--node-name".into(),
            self.name.clone(),
            "--resolv-conf".into(),
            self.resolv_conf.display().to_string(),
        ]
    }

    /// `--join SEED --token-file FILE`, with `token` written to FILE (mode 0600) in the node's
    /// directory: meshd refuses a token on its command line, where every local user can read it.
    pub fn join_args(&self, seed: &str, token: &str) -> Vec<String> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.state_dir.parent().expect("a node directory").join("join-token");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        std::io::Write::write_all(&mut file, token.as_bytes()).expect("write the join token");
        vec!["--join".into(), seed.into(), "--token-file".into(), path.display().to_string()]
    }

    /// A `Command` that runs meshd inside this node's network namespace.
    pub fn meshd_command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new("nsenter");
        let meshd = self.bin_dir.as_ref().map_or_else(binaries::meshd, |dir| dir.join("meshd"));
        cmd.arg(format!("--net={}", self.ns.path())).arg(meshd).args(args);
        cmd
    }

    /// Starts meshd and waits until its API answers.
    pub fn start(&mut self) {
        let args = self.base_args();
        self.start_with(&args);
    }

    pub fn start_with<S: AsRef<std::ffi::OsStr>>(&mut self, args: &[S]) {
        assert!(self.daemon.is_none(), "{} is already running", self.name);
        let what = format!("meshd on {}", self.name);
        self.daemon = Some(Process::spawn(self.meshd_command(args), &self.log, &what));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.meshctl(&["node", "ls"]).status.success() {
                return;
            }
            if let Some(status) = self.daemon.as_mut().and_then(|d| d.try_wait()) {
                self.daemon = None;
                panic!("{what} exited during start ({status}):\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!("{what} did not answer within {START_TIMEOUT:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `meshd` and `meshctl` from `dir` (None: the binaries under test) from the next start
    /// on: an upgrade, node by node.
    pub fn use_binaries(&mut self, dir: Option<&Path>) {
        self.bin_dir = dir.map(Path::to_path_buf);
    }

    /// Cuts this node off from `peers`: nftables rules in its namespace drop everything to and
    /// from their addresses (a partition, as the network would make it). [`heal`](Self::heal)
    /// removes them.
    pub fn isolate_from(&self, peers: &[&Node]) {
        let set = peers.iter().map(|p| p.addr.to_string()).collect::<Vec<_>>().join(", ");
        let rules = format!(
            "table inet meshtest {{\n chain in {{ type filter hook input priority 0; ip saddr {{ {set} }} drop; }}\n \
             chain out {{ type filter hook output priority 0; ip daddr {{ {set} }} drop; }}\n}}\n"
        );
        let path = std::env::temp_dir().join(format!("{}-partition.nft", self.ns.name()));
        std::fs::write(&path, rules).expect("write the partition rules");
        let out = self.ns.exec("nft", ["-f", path.to_str().expect("a UTF-8 path")]);
        std::fs::remove_file(&path).ok();
        assert!(out.status.success(), "nft: {}", crate::command::stderr(&out));
    }

    /// Undoes [`isolate_from`](Self::isolate_from).
    pub fn heal(&self) {
        let out = self.ns.exec("nft", ["delete", "table", "inet", "meshtest"]);
        assert!(out.status.success(), "nft: {}", crate::command::stderr(&out));
    }

    /// SIGTERM: a restart from the cluster's point of view, not a leave.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.daemon.take().and_then(|mut d| d.stop())
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.daemon.take().and_then(|mut d| d.kill())
    }

    /// The processes named `wireguard-go` in this node's namespace: the engine meshd started for
    /// encrypted networks (a process of its own that outlives meshd).
    pub fn wireguard_pids(&self) -> Vec<u32> {
        let out = try_run("ip", ["netns", "pids", self.ns.name()]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|pid| pid.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "wireguard-go")
            })
            .collect()
    }

    /// meshd's process ID (nsenter execs it, so this is meshd itself).
    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().and_then(|d| d.pid())
    }

    pub fn is_running(&mut self) -> bool {
        match self.daemon.as_mut() {
            Some(d) => d.try_wait().is_none(),
            None => false,
        }
    }

    /// Runs meshctl against this node's socket.
    pub fn meshctl<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Output {
        let mut all: Vec<std::ffi::OsString> = vec!["--socket".into(), self.socket.clone().into()];
        all.extend(args.iter().map(|a| a.as_ref().to_os_string()));
        let meshctl = self.bin_dir.as_ref().map_or_else(binaries::meshctl, |dir| dir.join("meshctl"));
        try_run(meshctl.to_str().expect("utf-8 path"), all)
    }

    /// Runs meshctl and returns its stdout; panics (with meshd's log) if it fails.
    pub fn meshctl_ok<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> String {
        let output = self.meshctl(args);
        if !output.status.success() {
            panic!("{}\nmeshd log:\n{}", describe_failure("meshctl", &output), self.log());
        }
        stdout(&output)
    }

    /// `meshctl --format json node ls`, parsed.
    pub fn nodes_json(&self) -> Vec<Value> {
        let text = self.meshctl_ok(&["--format", "json", "node", "ls"]);
        match serde_json::from_str(&text) {
            Ok(Value::Array(nodes)) => nodes,
            other => panic!("node ls --format json is not an array: {other:?}\n{text}"),
        }
    }

    /// `name -> status` as this node sees the cluster; empty if meshd does not answer.
    pub fn statuses(&self) -> std::collections::BTreeMap<String, String> {
        let output = self.meshctl(&["--format", "json", "node", "ls"]);
        if !output.status.success() {
            return Default::default();
        }
        let nodes: Vec<Value> = serde_json::from_str(&stdout(&output)).unwrap_or_default();
        nodes
            .iter()
            .map(|n| {
                (
                    n["name"].as_str().unwrap_or("?").to_string(),
                    n["status"].as_str().unwrap_or("?").to_string(),
                )
            })
            .collect()
    }

    /// How many nodes this node sees with `status`.
    pub fn count_status(&self, status: &str) -> usize {
        self.statuses().values().filter(|s| *s == status).count()
    }

    /// The status this node sees for node `name`.
    pub fn status_of(&self, name: &str) -> Option<String> {
        self.statuses().get(name).cloned()
    }

    /// How many backends of `service` hold Maglev slots in this node's kernel (`service inspect`
    /// reads the map back; a drained backend is listed with its flows but owns no slot). Wait
    /// on this rather than on the cluster state, which is ahead of the maps by one reconcile.
    pub fn backends_in_table(&self, service: &str) -> usize {
        let inspect = self.meshctl_ok(&["--format", "json", "service", "inspect", service]);
        let inspect: Value = serde_json::from_str(&inspect).expect("service inspect JSON");
        inspect["backends"]
            .as_array()
            .map_or(0, |all| all.iter().filter(|b| b["slots"].as_u64() > Some(0)).count())
    }

    /// A gossip counter of `meshctl stats` on this node.
    pub fn gossip_stat(&self, counter: &str) -> u64 {
        let json: Value =
            serde_json::from_str(&self.meshctl_ok(&["--format", "json", "stats"])).expect("stats JSON");
        json["gossip"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["name"] == counter))
            .and_then(|c| c["value"].as_u64())
            .unwrap_or_else(|| panic!("no gossip counter {counter}"))
    }

    /// The node ID meshd persisted in its state directory.
    pub fn node_id(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.state_dir.join("node.json")).ok()?;
        let value: Value = serde_json::from_str(&text).ok()?;
        value["id"].as_str().map(str::to_string)
    }

    /// This node's pin directory on bpffs.
    pub fn pin_dir(&self) -> Option<PathBuf> {
        self.node_id().map(|id| PathBuf::from("/sys/fs/bpf/meshd").join(id))
    }

    /// meshd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let engines = self.wireguard_pids();
        self.stop();
        // The WireGuard engine meshd started for encrypted networks outlives meshd by design; it
        // would keep the node's namespace alive.
        for pid in engines {
            let _ = try_run("kill", ["-TERM", &pid.to_string()]);
        }
        if let Some(pins) = self.pin_dir() {
            let _ = std::fs::remove_dir_all(pins);
        }
    }
}

/// A container namespace wired to a node.
pub struct Container {
    pub ns: Netns,
    pub addr: Ipv4Addr,
    /// The node-side address of a plain veth (the container's gateway).
    pub host_addr: Ipv4Addr,
    /// Name of the host-side veth in the node's namespace.
    pub host_ifname: String,
    /// Index of the node (from 1).
    pub node: usize,
}
