//! Gossip with real meshd processes in namespaces: forming a cluster, admission, failure
//! detection, restarts, partitions, drains and leaving.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use meshd_tests::command::{stderr, stdout};
use meshd_tests::{Cluster, Node};

/// `name -> status` as `node` sees the cluster.
fn view(node: &Node) -> BTreeMap<String, String> {
    node.statuses()
}

#[test]
fn five_nodes_form_a_cluster_and_all_list_five_alive() {
    let mut cluster = Cluster::new("form5", 5);
    cluster.form();
    for node in cluster.nodes() {
        let nodes = node.nodes_json();
        assert_eq!(nodes.len(), 5, "{} sees {nodes:?}", node.name);
        let mut names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["n1", "n2", "n3", "n4", "n5"]);
        assert!(nodes.iter().all(|n| n["status"] == "alive" && n["availability"] == "active"));
        assert_eq!(nodes.iter().filter(|n| n["self"] == true).count(), 1);
        // Every node shows the same IDs.
        assert_eq!(
            nodes
                .iter()
                .map(|n| n["id"].as_str().unwrap().to_string())
                .collect::<std::collections::BTreeSet<_>>(),
            cluster.nodes().iter().map(|n| n.node_id().unwrap()).collect()
        );
    }
}

#[test]
fn a_wrong_or_rotated_token_is_not_admitted() {
    let mut cluster = Cluster::new("badtoken", 3);
    cluster.node_mut(1).start();
    let good = cluster.node(1).meshctl_ok(&["join-token", "worker"]).trim().to_string();

    // Right cluster fingerprint, wrong secret.
    let (head, secret) = good.rsplit_once('-').unwrap();
    let flipped: String = secret.chars().map(|c| if c == '0' { '1' } else { '0' }).collect();
    let wrong = format!("{head}-{flipped}");
    let mut args = cluster.node(2).base_args();
    args.extend(cluster.node(2).join_args("10.77.0.1", &wrong));
    let out = cluster.node(2).meshd_command(&args).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot join the cluster") && err.contains("token is wrong"), "{err}");
    assert_eq!(cluster.node(1).statuses().len(), 1, "not admitted");
    assert!(cluster.node(1).gossip_stat("joins_refused") >= 1);

    // Rotation: the old token stops working, the new one admits, members are undisturbed.
    let rotated = cluster.node(1).meshctl_ok(&["join-token", "worker", "--rotate"]).trim().to_string();
    let mut args = cluster.node(3).base_args();
    args.extend(cluster.node(3).join_args("10.77.0.1", &good));
    let out = cluster.node(3).meshd_command(&args).output().unwrap();
    assert!(!out.status.success(), "old token refused after rotation");
    let mut args = cluster.node(3).base_args();
    args.extend(cluster.node(3).join_args("10.77.0.1", &rotated));
    cluster.node_mut(3).start_with(&args);
    cluster.wait_for("n1 and n3 to see each other", Duration::from_secs(10), |c| {
        c.node(1).count_status("alive") == 2 && c.node(3).count_status("alive") == 2
    });
}

#[test]
fn a_token_of_another_cluster_is_refused_by_fingerprint() {
    let mut cluster = Cluster::new("fingerprint", 2);
    cluster.node_mut(1).start();
    let good = cluster.node(1).meshctl_ok(&["join-token", "worker"]).trim().to_string();
    // Same secret, another cluster's fingerprint: the join proof names the cluster the joiner
    // means, so the manager refuses it; had it answered, the joiner would have checked the CA
    // certificate against its token and refused to join.
    let parts: Vec<&str> = good.split('-').collect();
    let other = format!("MESHTKN-1-{}-{}", "ab".repeat(16), parts[3]);
    let mut args = cluster.node(2).base_args();
    args.extend(cluster.node(2).join_args("10.77.0.1", &other));
    let out = cluster.node(2).meshd_command(&args).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("fingerprint mismatch") || err.contains("token is wrong"), "{err}");
    assert!(!cluster.node(2).state_dir().join("cluster.json").exists(), "the joiner did not join");
}

#[test]
fn a_killed_node_is_shown_down_everywhere_and_comes_back_with_its_id() {
    let mut cluster = Cluster::new("killnode", 5);
    cluster.form();
    let id = cluster.node(3).node_id().unwrap();

    cluster.node_mut(3).kill();
    let start = Instant::now();
    cluster.wait_for("every other node to show n3 down", Duration::from_secs(15), |c| {
        c.nodes().iter().filter(|n| n.name != "n3").all(|n| n.status_of("n3").as_deref() == Some("down"))
    });
    eprintln!("n3 shown down everywhere {:?} after kill -9", start.elapsed());
    for node in cluster.nodes().iter().filter(|n| n.name != "n3") {
        assert_eq!(node.count_status("alive"), 4, "{} sees {:?}", node.name, view(node));
    }

    // Back with the same state directory and no join flags: same ID, alive everywhere.
    cluster.node_mut(3).start();
    cluster.wait_for("n3 alive everywhere again", Duration::from_secs(15), |c| {
        c.nodes().iter().all(|n| n.count_status("alive") == 5)
    });
    assert_eq!(cluster.node(3).node_id().unwrap(), id);
    let ids: Vec<String> =
        cluster.node(1).nodes_json().iter().map(|n| n["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.iter().filter(|i| **i == id).count(), 1, "one entry for n3, not a stale twin");
}

#[test]
fn a_restart_is_not_a_leave_and_state_survives_it() {
    let mut cluster = Cluster::new("restartgossip", 3);
    cluster.form();
    cluster.node(1).meshctl_ok(&["node", "update", "--availability", "drain", "n2"]);
    cluster.wait_for("drain of n2 on every node", Duration::from_secs(10), |c| {
        c.nodes()
            .iter()
            .all(|n| n.nodes_json().iter().any(|x| x["name"] == "n2" && x["availability"] == "drain"))
    });

    let status = cluster.node_mut(2).stop().unwrap();
    assert!(status.success());
    cluster.wait_for("n2 shown down (not left)", Duration::from_secs(15), |c| {
        c.node(1).status_of("n2").as_deref() == Some("down")
            && c.node(3).status_of("n2").as_deref() == Some("down")
    });
    cluster.node_mut(2).start();
    cluster.wait_for("n2 back", Duration::from_secs(15), |c| {
        c.nodes().iter().all(|n| n.count_status("alive") == 3)
    });
    // The restarted node kept the drain it had been told about.
    let own = cluster.node(2).nodes_json().into_iter().find(|x| x["name"] == "n2").unwrap();
    assert_eq!(own["availability"], "drain");
}

#[test]
fn a_drain_set_on_one_node_shows_on_all() {
    let mut cluster = Cluster::new("drain", 4);
    cluster.form();
    let id = cluster.node(3).node_id().unwrap();
    let out = cluster.node(1).meshctl_ok(&["node", "update", "--availability", "drain", &id[..8]]);
    assert_eq!(out.trim(), id);
    cluster.wait_for("n3 drained on every node", Duration::from_secs(10), |c| {
        c.nodes()
            .iter()
            .all(|n| n.nodes_json().iter().any(|x| x["name"] == "n3" && x["availability"] == "drain"))
    });
    cluster.node(4).meshctl_ok(&["node", "update", "--availability", "active", "n3"]);
    cluster.wait_for("n3 active again on every node", Duration::from_secs(10), |c| {
        c.nodes().iter().all(|n| n.nodes_json().iter().all(|x| x["availability"] == "active"))
    });
    // Unknown node: a clear error, nothing changed.
    let out = cluster.node(1).meshctl(&["node", "update", "--availability", "drain", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no node \"nope\""), "{}", stderr(&out));
}

#[test]
fn a_node_that_leaves_is_shown_left_and_meshd_exits() {
    let mut cluster = Cluster::new("leave", 3);
    cluster.form();
    let out = cluster.node(3).meshctl(&["leave"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "left the cluster");
    cluster.wait_for("n3 shown left on n1 and n2", Duration::from_secs(10), |c| {
        c.node(1).status_of("n3").as_deref() == Some("left")
            && c.node(2).status_of("n3").as_deref() == Some("left")
    });
    let node3 = cluster.node_mut(3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while node3.is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!node3.is_running(), "meshd exits after leaving");
    assert!(!node3.state_dir().join("cluster.json").exists(), "the node forgot the cluster");
}

#[test]
fn a_partition_and_its_heal_converge_to_one_view() {
    let mut cluster = Cluster::new("partition", 5);
    cluster.form();
    let (a, b) = ([1usize, 2], [3usize, 4, 5]);
    for &i in &a {
        let peers: Vec<&Node> = b.iter().map(|&j| cluster.node(j)).collect();
        cluster.node(i).isolate_from(&peers);
    }
    for &i in &b {
        let peers: Vec<&Node> = a.iter().map(|&j| cluster.node(j)).collect();
        cluster.node(i).isolate_from(&peers);
    }
    cluster.wait_for("each side to see the other down", Duration::from_secs(20), |c| {
        a.iter().all(|&i| c.node(i).count_status("alive") == 2 && c.node(i).count_status("down") == 3)
            && b.iter().all(|&i| c.node(i).count_status("alive") == 3 && c.node(i).count_status("down") == 2)
    });
    // A change on one side during the partition reaches the other side after the heal.
    cluster.node(4).meshctl_ok(&["node", "update", "--availability", "drain", "n5"]);

    for i in 1..=5 {
        cluster.node(i).heal();
    }
    let took = cluster.wait_for("one view again", Duration::from_secs(30), |c| {
        c.nodes().iter().all(|n| n.count_status("alive") == 5)
    });
    eprintln!("partition healed in {took:?}");
    cluster.wait_for("the drain made during the partition everywhere", Duration::from_secs(30), |c| {
        c.nodes()
            .iter()
            .all(|n| n.nodes_json().iter().any(|x| x["name"] == "n5" && x["availability"] == "drain"))
    });
}
