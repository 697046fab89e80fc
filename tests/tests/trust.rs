//! Trust: who may say what in a cluster. Real meshd processes in namespaces; where a forged
//! message is needed, a rogue built from meshd's own crates (`meshd_tests::rogue`) signs with a
//! real member's key and claims what is not its own.

use std::time::{Duration, Instant};

use meshd::state::{Availability, Change, EndpointRecord, NetworkRecord, NodeRecord};
use meshd_tests::command::{stderr, stdout};
use meshd_tests::http::NamedServer;
use meshd_tests::load::wrk;
use meshd_tests::rogue::Rogue;
use meshd_tests::Cluster;

const NONE: &[&str] = &[];

/// The ID of node `index` of `cluster`, parsed.
fn id_of(cluster: &Cluster, index: usize) -> meshd::identity::NodeId {
    cluster.node(index).node_id().expect("node.json").parse().expect("a node ID")
}

/// A gossip counter of node `index`.
fn stat(cluster: &Cluster, index: usize, counter: &str) -> u64 {
    cluster.node(index).gossip_stat(counter)
}

#[test]
fn a_member_cannot_forge_what_is_not_its_own_and_the_future_is_refused() {
    let mut cluster = Cluster::new("forge", 3);
    cluster.form_roles(1, NONE);
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.91.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "front");
    let ns = cluster.add_namespace("task");
    cluster.node(2).meshctl_ok(&["attach", "--netns", &ns, "--network", "front", "--name", "t2"]);
    cluster.wait_listed(&["--format", "json", "network", "ls"], "\"endpoints\": 1");

    let views = |c: &Cluster| -> Vec<String> {
        (1..=3)
            .map(|i| {
                let node = c.node(i);
                format!(
                    "{}{}",
                    node.meshctl_ok(&["--format", "json", "network", "ls"]),
                    node.meshctl_ok(&["node", "ls"])
                )
            })
            .collect()
    };
    let before = views(&cluster);

    // n3 is a worker: its key is a real member's, so its pushes are accepted over TLS; what it
    // says is another matter.
    let rogue = Rogue::impersonating(cluster.node(3));
    let (n2, n3) = (id_of(&cluster, 2), id_of(&cluster, 3));
    let endpoint_id = "forged".to_string();
    let now = meshd::state::version::unix_millis();
    let record = NodeRecord {
        name: "n2".into(),
        gossip_addr: "10.77.0.2:7946".parse().unwrap(),
        left: true,
        departed: None,
        cert: Default::default(),
        founder: None,
        keyring: Default::default(),
        wireguard: None,
    };
    let endpoint = EndpointRecord {
        network: "front".into(),
        address: "10.91.0.99".parse().unwrap(),
        service: None,
        task: Some("evil".into()),
        terminating: false,
        aliases: Vec::new(),
        health: Default::default(),
    };
    let forged = vec![
        // n2's endpoint, written by n3: not its owner.
        rogue.sign(
            now + 1,
            Change::Endpoint { owner: n2, id: endpoint_id.clone(), record: Some(endpoint.clone()) },
        ),
        // The same, pretending to be n2: not n2's signature.
        rogue.sign_as(
            n2,
            now + 2,
            Change::Endpoint { owner: n2, id: endpoint_id, record: Some(endpoint.clone()) },
        ),
        // n2 leaving, said by n3.
        rogue.sign(now + 3, Change::Node { id: n2, record: Some(record) }),
        // A drain and a network: a manager's business.
        rogue.sign(now + 4, Change::Availability { id: n2, value: Some(Availability::Drain) }),
        rogue.sign(
            now + 5,
            Change::Network {
                name: "evil".into(),
                record: Some(NetworkRecord {
                    subnet: "10.92.0.0/24".parse().unwrap(),
                    vni: meshd::state::validate::vni_for("evil"),
                    options: Default::default(),
                }),
            },
        ),
        // Its own endpoint, but from the far future: it would pin every later write to it.
        rogue.sign(u64::MAX, Change::Endpoint { owner: n3, id: "late".into(), record: Some(endpoint) }),
    ];
    for target in [1, 2] {
        rogue.push(cluster.node(3), cluster.node(target), forged.clone()).expect("a member's push is served");
    }
    // Refused on arrival, by reason, on every node it reached; nothing spread.
    for target in [1, 2] {
        assert!(stat(&cluster, target, "deltas_rejected_owner") >= 2, "n{target}: owner");
        assert!(stat(&cluster, target, "deltas_rejected_signature") >= 1, "n{target}: signature");
        assert!(stat(&cluster, target, "deltas_rejected_not_manager") >= 2, "n{target}: not a manager");
        assert!(stat(&cluster, target, "deltas_rejected_future") >= 1, "n{target}: from the future");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(views(&cluster), before, "no node's view changed");

    // Nothing of it was persisted: a restart comes back, and this node's writes still have
    // versions after everyone else's (the clock was not dragged to u64::MAX).
    let state = std::fs::read_to_string(cluster.node(1).state_dir().join("state.json")).unwrap();
    assert!(!state.contains(&u64::MAX.to_string()), "the far-future version is not in state.json");
    cluster.node_mut(1).stop();
    cluster.node_mut(1).start();
    cluster.node(1).meshctl_ok(&["network", "create", "back", "--subnet", "10.93.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "back");
}

#[test]
fn a_worker_cannot_change_the_cluster_until_promoted() {
    let mut cluster = Cluster::new("roles", 2);
    cluster.form_roles(1, NONE);
    let roles = |c: &Cluster| -> Vec<String> {
        c.node(1).nodes_json().iter().map(|n| n["role"].as_str().unwrap_or("").to_string()).collect()
    };
    assert_eq!(roles(&cluster), ["manager", "worker"]);

    let refused = |args: &[&str]| {
        let out = cluster.node(2).meshctl(args);
        assert!(!out.status.success(), "{args:?} on a worker");
        let err = stderr(&out);
        assert!(
            err.contains("forbidden") && err.contains("only a manager can") && err.contains("n1"),
            "{err}"
        );
    };
    refused(&["network", "create", "front", "--subnet", "10.94.0.0/24"]);
    refused(&["node", "update", "--availability", "drain", "n1"]);
    refused(&["key", "rotate"]);
    refused(&["join-token", "worker"]);
    refused(&["node", "promote", "n2"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(!cluster.node(1).meshctl_ok(&["network", "ls"]).contains("front"), "nothing replicated");
    assert_eq!(cluster.node(1).nodes_json()[0]["availability"], "active");

    // Promoted, it can; it also gets the CA key, so it can admit nodes.
    cluster.node(1).meshctl_ok(&["node", "promote", "n2"]);
    cluster.wait_for("n2 to be a manager with the CA key", Duration::from_secs(10), |c| {
        c.node(2).meshctl(&["join-token", "worker"]).status.success()
    });
    cluster.node(2).meshctl_ok(&["network", "create", "front", "--subnet", "10.94.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "front");
    // Both tokens now lead to the same cluster.
    assert_eq!(
        cluster.node(1).meshctl_ok(&["join-token", "worker"]),
        cluster.node(2).meshctl_ok(&["join-token", "worker"])
    );

    // Demoted again, it cannot; and the last manager cannot go.
    cluster.node(1).meshctl_ok(&["node", "demote", "n2"]);
    cluster.wait_for("n2 to be a worker on both nodes", Duration::from_secs(10), |c| {
        roles(c) == ["manager", "worker"] && c.node(2).nodes_json()[1]["role"] == "worker"
    });
    refused(&["network", "rm", "front"]);
    let out = cluster.node(1).meshctl(&["node", "demote", "n1"]);
    assert!(!out.status.success() && stderr(&out).contains("last manager"), "{}", stderr(&out));
    // What n2 created while a manager stays, on every node.
    assert!(cluster.node(1).meshctl_ok(&["network", "ls"]).contains("front"));
}

#[test]
fn a_removed_node_leaves_every_table_and_cannot_come_back() {
    let mut cluster = Cluster::new("noderm", 3);
    cluster.form_roles(1, NONE);
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.95.0.0/24"]);
    cluster.node(1).meshctl_ok(&["service", "create", "web", "--network", "front"]);
    cluster.wait_listed(&["service", "ls"], "web");
    let mut servers = Vec::new();
    for i in [2, 3] {
        let task = format!("web.{i}");
        let (ns, _) = cluster.attach_task(i, &format!("web{i}"), "front", "web", &task);
        servers.push(NamedServer::start(cluster.namespace(&ns), 80, &task));
    }
    cluster.wait_for("2 backends everywhere", Duration::from_secs(10), |c| {
        (1..=3).all(|i| c.node(i).meshctl_ok(&["service", "ls"]).contains("2/2"))
    });

    // Alive: refused without --force.
    let out = cluster.node(1).meshctl(&["node", "rm", "n3"]);
    assert!(!out.status.success() && stderr(&out).contains("is alive"), "{}", stderr(&out));

    cluster.node_mut(3).kill();
    cluster.wait_for("n3 down", Duration::from_secs(10), |c| {
        c.node(1).status_of("n3").as_deref() == Some("down")
    });
    cluster.node(1).meshctl_ok(&["node", "rm", "n3"]);
    cluster.wait_for("n3 gone from every table", Duration::from_secs(10), |c| {
        [1, 2].iter().all(|&i| {
            let node = c.node(i);
            node.status_of("n3").is_none()
                && node.meshctl_ok(&["service", "ls"]).contains("1/1")
                && !node.meshctl_ok(&["service", "ps", "web"]).contains("web.3")
        })
    });

    // Started again with its old state and identity: refused, and counted.
    // (Its push-pull is refused by TLS, its signed records by admission, and, once the gossip
    // key it knew has been rotated away, its datagrams do not open.)
    let refusals = |c: &Cluster| -> u64 {
        [1, 2]
            .iter()
            .map(|&i| {
                stat(c, i, "tcp_tls_refused")
                    + stat(c, i, "deltas_rejected_revoked")
                    + stat(c, i, "dropped_unknown_key")
            })
            .sum()
    };
    let refused_before = refusals(&cluster);
    cluster.node_mut(3).start();
    cluster.wait_for("n3's return refused and counted", Duration::from_secs(15), |c| {
        refusals(c) > refused_before
    });
    std::thread::sleep(Duration::from_secs(2));
    for i in [1, 2] {
        assert!(cluster.node(i).status_of("n3").is_none(), "n{i} does not list n3 again");
        assert!(cluster.node(i).meshctl_ok(&["service", "ls"]).contains("1/1"), "n{i}");
    }
}

#[test]
fn a_key_rotation_under_load_loses_no_packet_and_suspects_nobody() {
    let mut cluster = Cluster::new("keyrot", 3);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.96.0.0/24"]);
    cluster.node(1).meshctl_ok(&["service", "create", "web", "--network", "front", "--publish", "8080:80"]);
    cluster.wait_listed(&["service", "ls"], "8080:80/tcp");
    let a = cluster.add_namespace("pinger");
    let b = cluster.add_namespace("web");
    cluster.node(2).meshctl_ok(&["attach", "--netns", &a, "--network", "front", "--name", "pinger"]);
    let target = cluster.node(3).meshctl_ok(&[
        "attach",
        "--netns",
        &b,
        "--network",
        "front",
        "--service",
        "web",
        "--name",
        "web.1",
    ]);
    let _server = NamedServer::start(cluster.namespace(&b), 80, "web.1");
    cluster.wait_for("the backend everywhere", Duration::from_secs(10), |c| {
        (1..=3).all(|i| c.node(i).meshctl_ok(&["service", "ls"]).contains("1/1"))
    });
    let client = cluster.add_underlay_client();
    let client_ns = cluster.clients()[client].ns.name().to_string();
    let url = format!("http://{}:8080/", meshd_tests::cluster::node_underlay_addr(1));

    // Pings across the overlay and a wrk load through the published port, while n1 rotates.
    let pinger = cluster.namespace(&a).name().to_string();
    let target = target.trim().to_string();
    let ping = std::thread::spawn(move || {
        std::process::Command::new("ip")
            .args(["netns", "exec", &pinger, "ping", "-c", "300", "-i", "0.02", "-W", "1", &target])
            .output()
            .expect("ping")
    });
    let load = std::thread::spawn(move || wrk(&client_ns, &url, 8, false));
    std::thread::sleep(Duration::from_secs(1));
    let logged: Vec<usize> = (1..=3).map(|i| cluster.node(i).log().len()).collect();
    let unknown_key: Vec<u64> = (1..=3).map(|i| stat(&cluster, i, "dropped_unknown_key")).collect();
    let started = Instant::now();
    cluster.node(1).meshctl_ok(&["key", "rotate"]);
    let rotation = started.elapsed();
    let ping = ping.join().unwrap();
    let load = load.join().unwrap();

    assert!(ping.status.success(), "{}", stdout(&ping));
    assert!(stdout(&ping).contains(" 0% packet loss"), "{}", stdout(&ping));
    assert!(load.requests > 0 && load.errors == 0, "{}", load.report);
    for i in 1..=3 {
        let log = cluster.node(i).log();
        let since = &log[logged[i - 1].min(log.len())..];
        assert!(
            !since.contains("member suspect") && !since.contains("member down"),
            "n{i} suspected someone:\n{since}"
        );
        assert_eq!(
            stat(&cluster, i, "dropped_unknown_key"),
            unknown_key[i - 1],
            "n{i} never got a datagram it could not open"
        );
    }
    println!("key rotation took {rotation:?}");
}

#[test]
fn certificates_renew_before_they_expire_without_a_disruption() {
    let mut cluster = Cluster::new("renew", 2);
    // Short-lived certificates: renewed at two thirds, every 20 s.
    cluster.form_roles(1, &["--cert-expiry", "30s"]);
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.97.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "front");
    let a = cluster.add_namespace("a");
    let b = cluster.add_namespace("b");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &a, "--network", "front"]);
    let target = cluster.node(2).meshctl_ok(&["attach", "--netns", &b, "--network", "front"]);
    cluster.wait_listed(&["--format", "json", "network", "ls"], "\"endpoints\": 2");
    let out = cluster.namespace(&a).exec("ping", ["-c", "350", "-i", "0.1", "-W", "1", target.trim()]);
    assert!(stdout(&out).contains(" 0% packet loss"), "{}", stdout(&out));
    for i in 1..=2 {
        assert!(cluster.node(i).log().contains("using a renewed certificate"), "n{i} renewed");
        assert_eq!(cluster.node(1).count_status("alive"), 2);
    }
    // Push-pull (TLS) keeps working with the renewed certificates.
    assert_eq!(stat(&cluster, 1, "tcp_tls_refused"), 0);
}

#[test]
fn idle_connections_from_a_stranger_do_not_hold_up_a_join() {
    let mut cluster = Cluster::new("idle", 3);
    cluster.node_mut(1).start();
    let token = cluster.node(1).meshctl_ok(&["join-token", "worker"]).trim().to_string();
    let join = |cluster: &mut Cluster, index: usize| -> Duration {
        let mut args = cluster.node(index).base_args();
        args.extend(cluster.node(index).join_args("10.77.0.1", &token));
        let started = Instant::now();
        cluster.node_mut(index).start_with(&args);
        let expected = index;
        cluster.wait_for("the joiner alive on n1", Duration::from_secs(30), |c| {
            c.node(1).count_status("alive") == expected
        });
        started.elapsed()
    };
    let usual = join(&mut cluster, 2);

    // A host of the underlay that is not a node holds 64 connections open and says nothing.
    let client = cluster.add_underlay_client();
    let stranger = cluster.clients()[client].ns.name().to_string();
    let holder = std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/run/netns/{stranger}")).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let held: Vec<std::net::TcpStream> =
            (0..64).filter_map(|_| std::net::TcpStream::connect("10.77.0.1:7946").ok()).collect();
        std::thread::sleep(Duration::from_secs(8));
        held.len()
    });
    std::thread::sleep(Duration::from_millis(300));
    let with_stranger = join(&mut cluster, 3);
    assert!(holder.join().unwrap() > 0, "the stranger connected");
    assert!(
        with_stranger <= usual + Duration::from_secs(1),
        "a join took {with_stranger:?} with 64 idle connections held, {usual:?} without"
    );
    assert!(
        stat(&cluster, 1, "tcp_source_limited") > 0,
        "the stranger's excess connections were closed and counted"
    );
}

#[test]
fn a_token_file_keeps_the_token_out_of_the_process_list_and_bad_values_say_why() {
    let mut cluster = Cluster::new("tokenfile", 2);
    cluster.node_mut(1).start();
    let token = cluster.node(1).meshctl_ok(&["join-token", "worker"]).trim().to_string();
    let file = cluster.work_dir().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let mut args = cluster.node(2).base_args();
    args.extend(["--join".into(), "10.77.0.1".into(), "--token-file".into(), file.display().to_string()]);
    cluster.node_mut(2).start_with(&args);
    cluster.wait_for("n2 joined", Duration::from_secs(15), |c| c.node(1).count_status("alive") == 2);

    let secret = token.rsplit('-').next().unwrap().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(&secret),
                "the token is in {:?}'s command line",
                entry.path()
            );
        }
    }
    for i in 1..=2 {
        assert!(!cluster.node(i).log().contains(&secret), "n{i} logged the token");
    }

    // Durations and sizes out of range: clear errors, no panic.
    let out = cluster.node(1).meshctl(&["detach", "--netns", "x", "--grace", "99999999999999999h"]);
    assert_eq!(out.status.code(), Some(2), "a usage error, not a panic");
    assert!(stderr(&out).contains("too long"), "{}", stderr(&out));
    let mut args = cluster.node(2).base_args();
    args.extend(["--cert-expiry".into(), "1s".into()]);
    let out = cluster.node(2).meshd_command(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--cert-expiry") && stderr(&out).contains("out of range"),
        "{}",
        stderr(&out)
    );
    let mut args = cluster.node(2).base_args();
    args.extend(["--dns-ttl".into(), "999999".into()]);
    let out = cluster.node(2).meshd_command(&args).output().unwrap();
    assert!(stderr(&out).contains("--dns-ttl"), "{}", stderr(&out));
}
