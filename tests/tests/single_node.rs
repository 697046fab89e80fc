//! One node: it starts, lists itself, keeps its identity and token across restarts.

use meshd_tests::command::stdout;
use meshd_tests::Cluster;

#[test]
fn a_node_lists_itself_alive_in_table_and_json() {
    let mut cluster = Cluster::new("nodels", 1);
    cluster.start_all();
    let node = cluster.node(1);

    let table = node.meshctl_ok(&["node", "ls"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "NAME", "ADDRESS", "STATUS", "AVAILABILITY", "ROLE", "MANAGER", "STATUS", "ENCRYPTION"]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    let id = node.node_id().expect("node.json written");
    assert_eq!(
        row[..8],
        [&id[..12], "*", "n1", "10.77.0.1", "alive", "active", "manager", "leader"],
        "{table}"
    );
    assert_eq!(row.len(), 9, "the encryption engine column: {table}");

    let nodes = node.nodes_json();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["id"], id.as_str());
    assert_eq!(nodes[0]["name"], "n1");
    assert_eq!(nodes[0]["address"], "10.77.0.1");
    assert_eq!(nodes[0]["status"], "alive");
    assert_eq!(nodes[0]["availability"], "active");
    assert_eq!(nodes[0]["role"], "manager", "the node that founds a cluster is its first manager");
    assert_eq!(nodes[0]["self"], true);
}

#[test]
fn a_restart_keeps_the_node_id_the_token_and_the_pins() {
    let mut cluster = Cluster::new("restart", 1);
    cluster.start_all();
    let node = cluster.node_mut(1);
    let id = node.nodes_json()[0]["id"].as_str().unwrap().to_string();
    let token = node.meshctl_ok(&["join-token", "worker"]);
    assert!(token.starts_with("MESHTKN-1-"), "{token}");
    let pins = node.pin_dir().unwrap();
    assert!(pins.join("md_verdict_v1").exists(), "verdict map pinned under {}", pins.display());

    let status = node.stop().expect("meshd was running");
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    assert!(!node.socket().exists(), "socket removed on stop");
    assert!(pins.join("md_verdict_v1").exists(), "pins survive a stop");

    node.start();
    assert_eq!(node.nodes_json()[0]["id"], id.as_str());
    assert_eq!(node.meshctl_ok(&["join-token", "worker"]), token);
}

#[test]
fn join_token_rotation_persists() {
    let mut cluster = Cluster::new("rotate", 1);
    cluster.start_all();
    let node = cluster.node_mut(1);
    let before = node.meshctl_ok(&["join-token", "worker"]);
    let rotated = node.meshctl_ok(&["join-token", "worker", "--rotate"]);
    assert_ne!(before, rotated);
    // Same cluster: the fingerprint part stays, the secret changes.
    assert_eq!(before.split('-').nth(2), rotated.split('-').nth(2));
    assert_eq!(node.meshctl_ok(&["join-token", "worker"]), rotated);

    let json = stdout(&node.meshctl(&["--format", "json", "join-token", "worker"]));
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["token"].as_str().unwrap(), rotated.trim());

    node.stop();
    node.start();
    assert_eq!(node.meshctl_ok(&["join-token", "worker"]), rotated);
}

#[test]
fn nodes_in_separate_namespaces_run_side_by_side() {
    let mut cluster = Cluster::new("sidebyside", 3);
    cluster.start_all();
    let ids: Vec<String> = cluster.nodes().iter().map(|n| n.node_id().unwrap()).collect();
    for (i, node) in cluster.nodes().iter().enumerate() {
        let nodes = node.nodes_json();
        assert_eq!(nodes[0]["id"], ids[i].as_str());
        assert_eq!(nodes[0]["address"], format!("10.77.0.{}", i + 1));
        assert!(node.pin_dir().unwrap().exists());
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "every node has its own ID");
}

/// A cgroup v2 directory made for a test, removed on drop.
struct CgroupDir(std::path::PathBuf);

impl Drop for CgroupDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The program ids `bpftool cgroup show DIR` lists.
fn cgroup_programs(dir: &std::path::Path) -> Vec<u64> {
    let out = meshd_tests::command::run("bpftool", ["-j", "cgroup", "show", dir.to_str().unwrap()]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    shown.as_array().map(|a| a.iter().filter_map(|p| p["id"].as_u64()).collect()).unwrap_or_default()
}

#[test]
fn socket_programs_attach_where_cgroup_root_says_and_a_wrong_directory_is_refused() {
    let mut cluster = Cluster::new("cgroot", 1);
    let root = meshd::bpf::cgroup::cgroup2_root().expect("the cgroup v2 hierarchy");
    let dir = CgroupDir(root.join(format!("{}-n1", cluster.prefix())));
    std::fs::create_dir(&dir.0).expect("a cgroup of the test's own");

    // Not a cgroup directory: refused when the command line is read, nothing loaded.
    let mut args = cluster.node(1).base_args();
    args.extend(["--cgroup-root".to_string(), "/tmp".to_string()]);
    let out = cluster.node(1).meshd_command(&args).output().expect("run meshd");
    assert!(!out.status.success());
    let error = meshd_tests::command::stderr(&out);
    assert!(
        error.contains("--cgroup-root") && error.contains("not a directory of the cgroup v2 hierarchy"),
        "{error}"
    );
    assert!(cluster.node(1).pin_dir().is_none(), "nothing was made: no node identity, no pins");

    // Its own sub-tree: the five socket programs are attached there, none of them at the root.
    let mut args = cluster.node(1).base_args();
    args.extend(["--cgroup-root".to_string(), dir.0.display().to_string()]);
    cluster.node_mut(1).start_with(&args);
    let here = cgroup_programs(&dir.0);
    assert_eq!(here.len(), 5, "connect4, sendmsg4, recvmsg4, getpeername4, sock_release: {here:?}");
    let at_root = cgroup_programs(&root);
    assert!(here.iter().all(|id| !at_root.contains(id)), "{here:?} also at the root: {at_root:?}");
    // The node (and its pinned links) first, then the cgroup.
    drop(cluster);
    drop(dir);
}
