//! The managers' worst day (issue 26): most managers lost for good, and
//! `meshd --force-new-cluster` on a survivor. Real meshd on seven namespaces (five managers, two
//! workers with a service's tasks), real clients (wrk, curl, ping).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use meshd_tests::cluster::{node_underlay_addr, Cluster, Node};
use meshd_tests::command::stderr;
use meshd_tests::http::NamedServer;
use meshd_tests::load::wrk;
use serde_json::Value;

fn json(node: &Node, args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&node.meshctl_ok(&all)).expect("meshctl JSON")
}

/// The voters `node` reports.
fn voters(node: &Node) -> BTreeSet<String> {
    node.nodes_json()
        .iter()
        .filter(|n| n["voter"] == true)
        .filter_map(|n| n["name"].as_str().map(str::to_string))
        .collect()
}

/// Every address (endpoints and VIPs) a node's state holds, with its holders, and each
/// service's VIP and ports: what must survive the recovery unchanged and never be held twice.
fn holdings(node: &Node) -> BTreeMap<String, Vec<String>> {
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for network in json(node, &["network", "ls"]).as_array().expect("a list") {
        let name = network["name"].as_str().expect("a name");
        held.entry(format!("vni {}", network["vni"])).or_default().push(name.into());
        held.entry(format!("subnet {}", network["subnet"])).or_default().push(name.into());
        let detail = json(node, &["network", "inspect", name]);
        for endpoint in detail["endpoints"].as_array().expect("endpoints") {
            let address = endpoint["address"].as_str().expect("an address");
            held.entry(format!("address {address}")).or_default().push(endpoint["id"].to_string());
        }
    }
    for service in json(node, &["service", "ls"]).as_array().expect("a list") {
        let name = service["name"].as_str().expect("a name").to_string();
        if let Some(vip) = service["vip"].as_str() {
            held.entry(format!("address {vip}")).or_default().push(format!("vip of {name}"));
        }
        held.entry(format!("ports of {name}")).or_default().push(service["ports"].to_string());
    }
    held
}

fn assert_nothing_held_twice(node: &Node) {
    let twice: Vec<_> = holdings(node).into_iter().filter(|(_, holders)| holders.len() > 1).collect();
    assert!(twice.is_empty(), "{} holds these more than once: {twice:?}", node.name);
}

/// Runs meshd on `node` with `extra` flags until it exits (at most 60 s): its status and stderr.
fn meshd_to_exit(node: &Node, extra: &[&str]) -> (std::process::ExitStatus, String) {
    let mut args = node.base_args();
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut child =
        node.meshd_command(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn meshd");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("wait for meshd") {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut err).ok();
            return (status, err);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("meshd {extra:?} on {} did not exit within 60 s", node.name);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `meshctl ARGS` prints `needle` on each of the nodes `on` (the live ones).
fn wait_listed_on(cluster: &Cluster, on: &[usize], args: &[&str], needle: &str) {
    cluster.wait_for(&format!("{args:?} to show {needle}"), Duration::from_secs(15), |c| {
        on.iter().all(|&i| c.node(i).meshctl_ok(args).contains(needle))
    });
}

#[test]
fn force_new_cluster_on_a_survivor_keeps_everything_and_traffic_never_stops() {
    let mut cluster = Cluster::new("worst", 7);
    cluster.form_roles(5, &[] as &[&str]); // n1..n5 managers, n6 n7 workers
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "front", "--subnet", "10.91.0.0/24"]);
    n1.meshctl_ok(&["service", "create", "web", "--network", "front", "--publish", "8080:80"]);
    cluster.wait_listed(&["service", "ls"], "8080:80");
    let mut servers = Vec::new();
    for i in [6, 7] {
        let task = format!("web.{i}");
        let (ns, _) = cluster.attach_task(i, &format!("web{i}"), "front", "web", &task);
        servers.push(NamedServer::start(cluster.namespace(&ns), 80, &task));
    }
    let (c6, c7) = (cluster.add_namespace("c6"), cluster.add_namespace("c7"));
    cluster.node(6).meshctl_ok(&["attach", "--netns", &c6, "--network", "front"]);
    let c7_addr = cluster.node(7).meshctl_ok(&["attach", "--netns", &c7, "--network", "front"]);
    let c7_addr = c7_addr.trim().to_string();
    let outside = cluster.add_underlay_client();
    let url = |i: usize| format!("http://{}:8080/", node_underlay_addr(i));
    cluster.wait_for("the published port answering on the workers", Duration::from_secs(20), |c| {
        [6, 7].iter().all(|&i| {
            c.clients()[outside].ns.exec("curl", ["-s", "--max-time", "2", &url(i)]).status.success()
        })
    });
    let before = holdings(cluster.node(6));

    // With every other manager up, forcing is refused and changes nothing.
    cluster.node_mut(5).stop();
    let (status, err) = meshd_to_exit(cluster.node(5), &["--force-new-cluster"]);
    assert!(!status.success(), "forcing beside a live majority succeeded");
    assert!(err.contains("--force-new-cluster refused: 5 of the group's 5 managers answer"), "{err}");
    assert!(cluster.node(5).state_dir().join("raft-log").exists());

    // Load through both workers' published port for the whole worst day.
    let load: Vec<_> = [6, 7]
        .into_iter()
        .map(|i| {
            let (ns, url) = (cluster.clients()[outside].ns.name().to_string(), url(i));
            std::thread::spawn(move || wrk(&ns, &url, 75, false))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    // Three managers are lost for good (n5 stays stopped): no majority, no cluster-wide change.
    cluster.node_mut(3).kill();
    cluster.node_mut(4).kill();
    cluster.wait_for("n1 to see three managers down", Duration::from_secs(20), |c| {
        c.node(1).count_status("down") == 3
    });
    let refused = cluster.node(1).meshctl(&["network", "create", "lost", "--subnet", "10.92.0.0/24"]);
    assert!(!refused.status.success(), "a change without a majority succeeded");
    assert!(stderr(&refused).contains("no manager majority"), "{}", stderr(&refused));

    // Force a new cluster on n1: changes work again within seconds.
    let forced_at = Instant::now();
    cluster.node_mut(1).stop();
    let mut args = cluster.node(1).base_args();
    args.push("--force-new-cluster".into());
    cluster.node_mut(1).start_with(&args);
    let took = cluster.wait_for("a change decided again", Duration::from_secs(30), |c| {
        c.node(1).meshctl(&["network", "create", "after", "--subnet", "10.93.0.0/24"]).status.success()
            || c.node(1).meshctl_ok(&["network", "ls"]).contains("after")
    });
    eprintln!(
        "changes decided again {took:?} after n1 answered, {:?} after it was stopped",
        forced_at.elapsed()
    );
    let n1 = cluster.node(1);
    assert_eq!(voters(n1), BTreeSet::from(["n1".to_string()]));
    // Everything from before is still there, as it was.
    let after = holdings(n1);
    for (what, holders) in &before {
        assert_eq!(after.get(what), Some(holders), "{what} changed in the recovery");
    }
    // The dead managers stopped counting: they are workers now; so is the other survivor.
    let roles: BTreeMap<String, String> = n1
        .nodes_json()
        .iter()
        .map(|n| (n["name"].as_str().unwrap().to_string(), n["role"].as_str().unwrap().to_string()))
        .collect();
    for i in 2..=7 {
        assert_eq!(roles[&format!("n{i}")], "worker", "{roles:?}");
    }
    // Workers find the new leader by themselves: a new block of a new network for n7.
    wait_listed_on(&cluster, &[1, 2, 6, 7], &["network", "ls"], "after");
    let c7b = cluster.add_namespace("c7b");
    cluster.node(7).meshctl_ok(&["attach", "--netns", &c7b, "--network", "after"]);

    // The other survivor leaves its old group, and managers are promoted again.
    cluster.wait_for("n2 to drop its old Raft log", Duration::from_secs(30), |c| {
        !c.node(2).state_dir().join("raft-log").exists()
    });
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["node", "promote", "n2"]);
    n1.meshctl_ok(&["node", "promote", "n6"]);
    cluster.wait_for("n2 and n6 voters", Duration::from_secs(40), |c| {
        voters(c.node(1)) == BTreeSet::from(["n1".into(), "n2".into(), "n6".into()])
    });
    cluster.node(2).meshctl_ok(&["service", "create", "api", "--network", "after", "--publish", "9090:80"]);
    wait_listed_on(&cluster, &[1, 2, 6, 7], &["service", "ls"], "9090:80");

    // Traffic never stopped: containers talk, and no request failed.
    assert!(cluster.namespace(&c6).exec("ping", ["-c", "3", "-W", "1", &c7_addr]).status.success());
    for run in load {
        let run = run.join().unwrap();
        assert!(run.requests > 100, "{}", run.report);
        assert_eq!(run.errors, 0, "requests failed during the worst day:\n{}", run.report);
        eprintln!("wrk: {} requests, {} errors", run.requests, run.errors);
    }
    let live: Vec<usize> = vec![1, 2, 6, 7];
    cluster.wait_for("the live nodes to agree", Duration::from_secs(20), |c| {
        let views: Vec<_> = live.iter().map(|&i| holdings(c.node(i))).collect();
        views.iter().all(|v| v == &views[0])
    });
    for &i in &live {
        assert_nothing_held_twice(cluster.node(i));
    }
}

/// `meshd` args for a start of `node`'s namespace with another state directory and node name.
fn args_with_state_dir(node: &Node, dir: &std::path::Path, name: &str) -> Vec<String> {
    let mut args = node.base_args();
    let at = args.iter().position(|a| a == "--state-dir").expect("--state-dir") + 1;
    args[at] = dir.display().to_string();
    let at = args.iter().position(|a| a == "--node-name").expect("--node-name") + 1;
    args[at] = name.to_string();
    args
}

#[test]
fn a_backup_restored_on_a_fresh_state_dir_brings_back_the_cluster_and_damaged_ones_are_refused() {
    let mut cluster = Cluster::new("restore", 4);
    cluster.form_roles(2, &[] as &[&str]); // n1 n2 managers, n3 n4 workers
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "front", "--subnet", "10.94.0.0/24"]);
    n1.meshctl_ok(&["network", "create", "pooled"]);
    n1.meshctl_ok(&["service", "create", "web", "--network", "front", "--publish", "8080:80"]);
    wait_listed_on(&cluster, &[1, 2, 3, 4], &["service", "ls"], "8080:80");
    let mut servers = Vec::new();
    for i in [3, 4] {
        let task = format!("web.{i}");
        let (ns, _) = cluster.attach_task(i, &format!("web{i}"), "front", "web", &task);
        servers.push(NamedServer::start(cluster.namespace(&ns), 80, &task));
    }
    let outside = cluster.add_underlay_client();
    let url = format!("http://{}:8080/", node_underlay_addr(3));
    cluster.wait_for("the published port answering", Duration::from_secs(20), |c| {
        c.clients()[outside].ns.exec("curl", ["-s", "--max-time", "2", &url]).status.success()
    });

    // A backup on a running manager (not the founder).
    let file = cluster.work_dir().join("n2.backup");
    let out = json(cluster.node(2), &["backup", file.to_str().unwrap()]);
    assert_eq!((out["networks"].as_u64(), out["services"].as_u64()), (Some(2), Some(1)), "{out}");
    let before = holdings(cluster.node(3));
    let taken = std::fs::read(&file).expect("the backup file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let again = cluster.node(2).meshctl(&["backup", file.to_str().unwrap()]);
    assert!(!again.status.success(), "a backup overwrote an existing file");

    // The managers are lost for good; the workers keep serving.
    let load = {
        let (ns, url) = (cluster.clients()[outside].ns.name().to_string(), url.clone());
        std::thread::spawn(move || wrk(&ns, &url, 40, false))
    };
    cluster.node_mut(1).kill();
    cluster.node_mut(2).kill();

    // Damaged copies are refused with a clear word, and the fresh directory stays untouched.
    let fresh = cluster.work_dir().join("fresh-state");
    let truncated = cluster.work_dir().join("truncated.backup");
    std::fs::write(&truncated, &taken[..taken.len() / 2]).unwrap();
    let corrupted = cluster.work_dir().join("corrupted.backup");
    let mut bytes = taken.clone();
    bytes[taken.len() / 2] ^= 0x40;
    std::fs::write(&corrupted, &bytes).unwrap();
    for (path, words) in [(&truncated, "the backup is truncated"), (&corrupted, "checksum does not match")] {
        let mut args = args_with_state_dir(cluster.node(1), &fresh, "restored");
        args.extend(["--restore".into(), path.display().to_string(), "--force-new-cluster".into()]);
        let (status, err) = {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let node = cluster.node(1);
            let mut child =
                node.meshd_command(&refs).stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
            let status = child.wait().unwrap();
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).ok();
            (status, err)
        };
        assert!(!status.success(), "a damaged backup was restored");
        assert!(err.contains(words) && err.contains("nothing was restored"), "{err}");
        assert!(!fresh.exists(), "a refused restore created {}", fresh.display());
    }

    // Restored on a fresh state directory (a new disk in n1's place), forced: the same cluster.
    let mut args = args_with_state_dir(cluster.node(1), &fresh, "restored");
    args.extend(["--restore".into(), file.display().to_string(), "--force-new-cluster".into()]);
    cluster.node_mut(1).start_with(&args);
    let restored = cluster.node(1);
    let took = cluster.wait_for("the restored manager to decide", Duration::from_secs(30), |c| {
        c.node(1).meshctl(&["network", "create", "later", "--subnet", "10.95.0.0/24"]).status.success()
            || c.node(1).meshctl_ok(&["network", "ls"]).contains("later")
    });
    eprintln!("the restored manager decided {took:?} after it answered");
    assert_eq!(voters(restored), BTreeSet::from(["restored".to_string()]));
    let after = holdings(restored);
    for (what, holders) in &before {
        assert_eq!(after.get(what), Some(holders), "{what} changed in the backup and restore");
    }
    // The workers follow the restored manager: a block of the new network for n4.
    wait_listed_on(&cluster, &[1, 3, 4], &["network", "ls"], "later");
    let ns = cluster.add_namespace("late");
    cluster.node(4).meshctl_ok(&["attach", "--netns", &ns, "--network", "later"]);
    let run = load.join().unwrap();
    assert!(run.requests > 100, "{}", run.report);
    assert_eq!(run.errors, 0, "requests failed while the managers were lost:\n{}", run.report);
    eprintln!("wrk: {} requests, {} errors", run.requests, run.errors);
    for i in [1, 3, 4] {
        assert_nothing_held_twice(cluster.node(i));
    }
}
