//! The managers' Raft group: cluster-wide decisions need a majority of the managers, so a
//! partition never hands out anything twice; the minority keeps forwarding, answering and
//! attaching from the address blocks it holds; losing the leader elects another; workers never
//! take part; a demoted manager leaves the group.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use meshd::manager::decisions::Action;
use meshd::manager::transport::{Request, Response};
use meshd::state::Role;
use meshd_tests::cluster::{Cluster, Node};
use meshd_tests::command::stderr;
use meshd_tests::rogue::Rogue;
use serde_json::Value;

fn json(node: &Node, args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&node.meshctl_ok(&all)).expect("meshctl JSON")
}

/// The node `from` sees as the group's leader.
fn leader(from: &Node) -> Option<String> {
    from.nodes_json()
        .iter()
        .find(|n| n["manager_status"] == "leader")
        .and_then(|n| n["name"].as_str())
        .map(str::to_string)
}

fn attach(node: &Node, ns: &str, network: &str) -> Result<String, String> {
    let out = node.meshctl(&["attach", "--netns", ns, "--network", network]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(stderr(&out))
    }
}

fn ping(cluster: &Cluster, from: &str, to: &str) -> bool {
    cluster.namespace(from).exec("ping", ["-c", "1", "-W", "1", to]).status.success()
}

/// What a node's state holds that must be unique cluster-wide: every endpoint address (by
/// network), service VIP, published port and network VNI, as `(what, value) -> holders`.
fn holdings(node: &Node) -> BTreeMap<(String, String), Vec<String>> {
    let mut held: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let networks = json(node, &["network", "ls"]);
    for network in networks.as_array().expect("a list") {
        let name = network["name"].as_str().expect("a name");
        held.entry(("vni".into(), network["vni"].to_string())).or_default().push(name.into());
        let detail = json(node, &["network", "inspect", name]);
        for endpoint in detail["endpoints"].as_array().expect("endpoints") {
            let address = endpoint["address"].as_str().expect("an address");
            held.entry(("address".into(), address.into())).or_default().push(endpoint["id"].to_string());
        }
    }
    for service in json(node, &["service", "ls"]).as_array().expect("a list") {
        let name = service["name"].as_str().expect("a name").to_string();
        if let Some(vip) = service["vip"].as_str() {
            held.entry(("address".into(), vip.into())).or_default().push(format!("vip of {name}"));
        }
        for port in service["ports"].as_array().into_iter().flatten() {
            let port = port.as_str().map(str::to_string).unwrap_or_else(|| port.to_string());
            let published = port.split(':').next().unwrap_or("").to_string();
            let protocol = port.rsplit('/').next().unwrap_or("tcp").to_string();
            held.entry(("port".into(), format!("{published}/{protocol}"))).or_default().push(name.clone());
        }
    }
    held
}

/// Asserts that every node holds the same, and nothing twice.
fn assert_nothing_held_twice(nodes: &[&Node]) {
    let views: Vec<_> = nodes.iter().map(|n| (n.name.clone(), holdings(n))).collect();
    for (name, view) in &views {
        let twice: Vec<_> = view.iter().filter(|(_, holders)| holders.len() > 1).collect();
        assert!(twice.is_empty(), "{name} holds these more than once: {twice:?}");
        assert_eq!(view, &views[0].1, "{name} and {} disagree", views[0].0);
    }
}

#[test]
fn a_minority_refuses_cluster_changes_keeps_attaching_and_nothing_collides_after_the_heal() {
    let mut cluster = Cluster::new("raftpart", 5);
    cluster.form_roles(3, &[] as &[&str]); // n1..n3 managers, n4 n5 workers
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "front", "--subnet", "10.60.0.0/24"]);
    n1.meshctl_ok(&["network", "create", "tiny", "--subnet", "10.62.0.0/28"]);
    n1.meshctl_ok(&["service", "create", "web", "--network", "front", "--publish", "8080:80"]);
    cluster.wait_listed(&["network", "ls"], "tiny");
    // Every node attaches one container now, so it holds a block of "front" for the partition.
    let before: Vec<String> = (1..=5).map(|i| cluster.add_namespace(&format!("b{i}"))).collect();
    for (i, ns) in before.iter().enumerate() {
        attach(cluster.node(i + 1), ns, "front").expect("attach before the partition");
    }
    // "tiny" has one block, and n1 holds it.
    let t1 = cluster.add_namespace("t1");
    attach(cluster.node(1), &t1, "tiny").expect("attach to tiny");
    let old_leader = leader(cluster.node(1)).expect("a leader");

    // The minority: the leader and a worker; the majority: the two other managers and a worker.
    let leader_index: usize = old_leader[1..].parse().unwrap();
    let minority = [leader_index, 5];
    let majority: Vec<usize> = (1..=5).filter(|i| !minority.contains(i)).collect();
    for &i in &minority {
        let peers: Vec<&Node> = majority.iter().map(|&j| cluster.node(j)).collect();
        cluster.node(i).isolate_from(&peers);
    }
    for &i in &majority {
        let peers: Vec<&Node> = minority.iter().map(|&j| cluster.node(j)).collect();
        cluster.node(i).isolate_from(&peers);
    }
    cluster.wait_for("each side to see the other down", Duration::from_secs(20), |c| {
        minority.iter().all(|&i| c.node(i).count_status("down") == 3)
            && majority.iter().all(|&i| c.node(i).count_status("down") == 2)
    });
    let m = cluster.node(leader_index);

    // The minority's manager refuses cluster-wide changes, and says why.
    for args in [
        &["network", "create", "other", "--subnet", "10.63.0.0/24"][..],
        &["service", "create", "api", "--network", "front"][..],
    ] {
        let out = m.meshctl(args);
        assert!(!out.status.success(), "{args:?} succeeded on the minority");
        assert!(stderr(&out).contains("no manager majority: 1 of 3 reachable"), "{}", stderr(&out));
    }
    // It keeps attaching from its blocks (the worker too), and their containers talk.
    let (m_ns, w_ns) = (cluster.add_namespace("mm"), cluster.add_namespace("mw"));
    let m_addr = attach(cluster.node(leader_index), &m_ns, "front").expect("the minority attaches");
    let w_addr = attach(cluster.node(5), &w_ns, "front").expect("the minority's worker attaches");
    cluster.wait_for("containers on the minority side to talk", Duration::from_secs(10), |c| {
        ping(c, &m_ns, &w_addr) && ping(c, &w_ns, &m_addr)
    });
    // A new block needs the managers: the worker holds none of "tiny", so it gets a clear error.
    let w_tiny = cluster.add_namespace("wt");
    let refused = attach(cluster.node(5), &w_tiny, "tiny").expect_err("a new block on the minority");
    assert!(refused.contains("no manager majority"), "{refused}");

    // The majority elects a leader and decides.
    let a = cluster.node(majority[0]);
    let took = cluster.wait_for("a leader on the majority side", Duration::from_secs(15), |c| {
        leader(c.node(majority[0])).is_some_and(|l| l != old_leader)
    });
    eprintln!("the majority elected a leader {took:?} after seeing the minority down");
    a.meshctl_ok(&["network", "create", "back", "--subnet", "10.61.0.0/24"]);
    a.meshctl_ok(&["service", "create", "api", "--network", "back", "--publish", "9090:80"]);
    let same_port = a.meshctl(&["service", "create", "other", "--network", "back", "--publish", "8080:81"]);
    assert!(!same_port.status.success(), "a port the minority's side published is still held");
    let majority_ns: Vec<(String, String)> = majority
        .iter()
        .map(|&i| {
            let ns = cluster.add_namespace(&format!("j{i}"));
            let addr = attach(cluster.node(i), &ns, "front").expect("the majority attaches");
            attach(cluster.node(i), &ns, "back").expect("the majority attaches to the new network");
            (ns, addr)
        })
        .collect();
    cluster.wait_for("containers on the majority side to talk", Duration::from_secs(10), |c| {
        ping(c, &majority_ns[0].0, &majority_ns[1].1) && ping(c, &majority_ns[1].0, &majority_ns[0].1)
    });

    // Heal: one view again, the same decisions everywhere, nothing held twice.
    for i in 1..=5 {
        cluster.node(i).heal();
    }
    cluster.wait_for("one view again", Duration::from_secs(30), |c| {
        c.nodes().iter().all(|n| n.count_status("alive") == 5)
    });
    cluster.wait_listed(&["network", "ls"], "back");
    cluster.wait_listed(&["service", "ls"], "api");
    let nodes: Vec<&Node> = cluster.nodes().iter().collect();
    cluster.wait_for("every node to hold the same", Duration::from_secs(20), |c| {
        let views: Vec<_> = c.nodes().iter().map(holdings).collect();
        views.iter().all(|v| v == &views[0])
    });
    assert_nothing_held_twice(&nodes);
    let networks = json(cluster.node(1), &["network", "ls"]);
    let names: BTreeSet<&str> =
        networks.as_array().unwrap().iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["back", "front", "tiny"]),
        "the minority's refused network never appeared"
    );
    // Everyone reaches everyone again, across the former partition.
    cluster.wait_for("containers across the healed partition to talk", Duration::from_secs(20), |c| {
        ping(c, &m_ns, &majority_ns[0].1) && ping(c, &majority_ns[1].0, &w_addr)
    });
}

#[test]
fn attaches_while_the_leader_is_killed_get_unique_addresses_and_a_new_leader_is_elected() {
    let mut cluster = Cluster::new("raftkill", 5);
    cluster.form_roles(3, &[] as &[&str]);
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.70.0.0/16"]);
    cluster.wait_listed(&["network", "ls"], "front");
    let old_leader = leader(cluster.node(1)).expect("a leader");
    let leader_index: usize = old_leader[1..].parse().unwrap();
    let witness = if leader_index == 2 { 3 } else { 2 };

    let names: Vec<String> = (0..50).map(|i| cluster.add_namespace(&format!("k{i}"))).collect();
    let sockets: Vec<std::path::PathBuf> = cluster.nodes().iter().map(|n| n.socket().to_path_buf()).collect();
    let meshctl = meshd_tests::binaries::meshctl();
    let handles: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let (node, ns, meshctl) = (i % 5, ns.clone(), meshctl.clone());
            let socket = sockets[node].clone();
            std::thread::spawn(move || {
                // Spread over the first second, so some land before the kill and some after.
                std::thread::sleep(Duration::from_millis(20 * i as u64));
                let out = std::process::Command::new(meshctl)
                    .arg("--socket")
                    .arg(socket)
                    .args(["attach", "--netns", &ns, "--network", "front"])
                    .output()
                    .unwrap();
                let result = if out.status.success() {
                    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
                };
                (node + 1, result)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    cluster.node_mut(leader_index).kill();
    // A survivor reports a new leader within a few seconds (election, then gossip of the news).
    let took = cluster.wait_for("a new leader", Duration::from_secs(10), |c| {
        leader(c.node(witness)).is_some_and(|l| l != old_leader)
    });
    eprintln!("new leader {:?} seen {took:?} after the kill", leader(cluster.node(witness)));
    let results: Vec<(usize, Result<String, String>)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();

    let mut addresses = BTreeSet::new();
    let (mut ok, mut failed) = (0, 0);
    for (node, result) in &results {
        match result {
            Ok(address) => {
                ok += 1;
                assert!(addresses.insert(address.clone()), "{address} handed out twice");
            }
            Err(message) => {
                failed += 1;
                // Either the killed node's own meshctl, or a clear word from a live one.
                assert!(
                    message.contains("cannot reach meshd")
                        || message.contains("lost the connection")
                        || message.contains("closed the connection without answering")
                        || message.contains("no manager majority"),
                    "attach on n{node} failed unclearly: {message}"
                );
                assert!(
                    *node == leader_index || message.contains("no manager majority"),
                    "n{node}: {message}"
                );
            }
        }
    }
    eprintln!("{ok} attaches succeeded, {failed} failed clearly");
    let live_ok = results.iter().filter(|(n, r)| *n != leader_index && r.is_ok()).count();
    assert!(live_ok >= 30, "most attaches on live nodes succeed ({live_ok} of 40)");
    let live: Vec<&Node> = (1..=5).filter(|i| *i != leader_index).map(|i| cluster.node(i)).collect();
    cluster.wait_for("the live nodes to agree", Duration::from_secs(20), |_| {
        let views: Vec<_> = live.iter().map(|n| holdings(n)).collect();
        views.iter().all(|v| v == &views[0])
    });
    assert_nothing_held_twice(&live);
}

#[test]
fn workers_never_join_the_group_and_a_demoted_manager_leaves_it() {
    let mut cluster = Cluster::new("raftroles", 4);
    cluster.form_roles(3, &[] as &[&str]);
    let n1 = cluster.node(1);
    let voters = |node: &Node| -> BTreeSet<String> {
        node.nodes_json()
            .iter()
            .filter(|n| n["voter"] == true)
            .filter_map(|n| n["name"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(voters(n1), BTreeSet::from(["n1".into(), "n2".into(), "n3".into()]));
    let worker = n1.nodes_json().into_iter().find(|n| n["name"] == "n4").unwrap();
    assert_eq!(worker["manager_status"], Value::Null, "a worker has no manager status");

    // A worker (its own real credentials) tries to take part: refused, nothing changes.
    let rogue = Rogue::impersonating(cluster.node(4));
    let answer = rogue
        .propose(cluster.node(4), n1, Action::SetRole { node: rogue.node_id(), role: Role::Manager })
        .expect("an answer");
    assert!(matches!(&answer, Response::Refused(r) if r.contains("not a manager")), "{answer:?}");
    let garbage = rogue.channel(cluster.node(4), n1, vec![0xff; 64]).expect("an answer");
    let answer: Response = meshd::manager::transport::decode(&garbage).expect("a response");
    assert!(matches!(answer, Response::Refused(_)), "{answer:?}");
    // A worker may ask for an address block for itself, and nothing else.
    let grant = rogue.propose(
        cluster.node(4),
        n1,
        Action::GrantBlock { network: "none".into(), node: rogue.node_id() },
    );
    assert!(matches!(grant, Ok(Response::Proposed(_))), "{grant:?}");
    let _ = Request::Propose; // the request kind the rogue sent
    assert!(n1.meshctl(&["network", "ls"]).status.success());
    assert_eq!(voters(n1).len(), 3);

    // Promote the worker: it joins the group as a voter.
    n1.meshctl_ok(&["node", "promote", "n4"]);
    cluster.wait_for("n4 a voter", Duration::from_secs(20), |c| voters(c.node(1)).contains("n4"));
    // Demote a manager: it leaves the group and forgets its log.
    n1.meshctl_ok(&["node", "demote", "n2"]);
    cluster.wait_for("n2 out of the voters", Duration::from_secs(20), |c| {
        voters(c.node(1)) == BTreeSet::from(["n1".into(), "n3".into(), "n4".into()])
    });
    cluster.wait_for("n2 to drop its Raft log", Duration::from_secs(20), |c| {
        !c.node(2).state_dir().join("raft-log").exists()
    });
    let n2 = n1.nodes_json().into_iter().find(|n| n["name"] == "n2").unwrap();
    assert_eq!(n2["role"], "worker");
    // Demote the leader itself: another manager leads.
    let old = leader(n1).expect("a leader");
    let old_index: usize = old[1..].parse().unwrap();
    let other = [1, 3, 4].into_iter().find(|i| *i != old_index).unwrap();
    cluster.node(other).meshctl_ok(&["node", "demote", &old]);
    cluster.wait_for("another leader", Duration::from_secs(20), |c| {
        leader(c.node(other)).is_some_and(|l| l != old) && voters(c.node(other)).len() == 2
    });
    // The group still decides.
    cluster.node(other).meshctl_ok(&["network", "create", "after", "--subnet", "10.80.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "after");
}
