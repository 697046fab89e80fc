//! Task health (issue 22, item 3): only healthy tasks take new flows and are in their service's
//! names; a task that turns unhealthy keeps its open connections; a task attached `starting`
//! gets nothing until it is healthy. Real meshd on three nodes, real curl and dig, a VIP
//! (balanced at the socket) and a published port (balanced per packet on the ingress node).

use std::net::TcpStream;
use std::time::{Duration, Instant};

use meshd_tests::cluster::node_underlay_addr;
use meshd_tests::command::stderr;
use meshd_tests::http::{request, NamedServer};
use meshd_tests::load::spread;
use meshd_tests::{Cluster, Netns};

/// The distinct answers (the tasks' names) among `count` new connections to `url` from `ns`.
fn answers(ns: &Netns, url: &str, count: usize) -> Vec<String> {
    spread(ns, url, count).into_keys().collect()
}

/// Waits until every node's kernel balances web over `count` backends.
fn wait_backends(cluster: &Cluster, count: usize) -> Duration {
    cluster.wait_for(&format!("{count} backends in every node's table"), Duration::from_secs(10), |c| {
        (1..=3).all(|i| c.node(i).backends_in_table("web") == count)
    })
}

/// The state column `service ps web` shows for `task` on `node`.
fn task_state(cluster: &Cluster, node: usize, task: &str) -> String {
    let ps = cluster.node(node).meshctl_ok(&["--format", "json", "service", "ps", "web"]);
    let ps: serde_json::Value = serde_json::from_str(&ps).expect("service ps JSON");
    ps.as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["task"] == task))
        .map(|t| t["state"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

#[test]
fn only_healthy_tasks_take_new_flows_and_open_connections_are_kept() {
    let mut cluster = Cluster::new("health", 3);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.74.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "front");
    let created = cluster.node(1).meshctl_ok(&[
        "--format",
        "json",
        "service",
        "create",
        "web",
        "--network",
        "front",
        "--publish",
        "9090:80",
    ]);
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let vip = created[0]["vip"].as_str().unwrap().to_string();
    cluster.wait_listed(&["service", "ls"], "9090:80/tcp");

    // web.1 on n1 and web.2 on n2 healthy from their attach (no health source: as before);
    // web.3 on n3 attached `starting`, as a runtime does before its health check passes.
    let mut servers = Vec::new();
    for (node, extra) in [(1, &[][..]), (2, &[][..]), (3, &["--health", "starting"][..])] {
        let task = format!("web.{node}");
        let ns = cluster.add_namespace(&format!("web{node}"));
        let mut args =
            vec!["attach", "--netns", &ns, "--network", "front", "--service", "web", "--name", &task];
        args.extend_from_slice(extra);
        cluster.node(node).meshctl_ok(&args);
        servers.push(NamedServer::start(cluster.namespace(&ns), 80, &task));
    }
    let client = cluster.add_namespace("client");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &client, "--network", "front"]);
    let outside = cluster.add_underlay_client();
    let vip_url = format!("http://{vip}:80/");
    let mesh_url = format!("http://{}:9090/", node_underlay_addr(3));

    cluster.wait_for("web.3 shown starting everywhere", Duration::from_secs(10), |c| {
        (1..=3).all(|i| task_state(c, i, "web.3") == "starting")
    });
    wait_backends(&cluster, 2);
    assert!(cluster.node(1).meshctl_ok(&["service", "ls"]).contains("2/3"));
    let ns = cluster.namespace(&client);
    assert_eq!(answers(ns, &vip_url, 30), ["web.1", "web.2"], "a starting task takes no flow");
    assert_eq!(
        answers(&cluster.clients()[outside].ns, &mesh_url, 30),
        ["web.1", "web.2"],
        "nor through the routing mesh"
    );
    let mut tasks = ns.resolve("tasks.web");
    tasks.sort();
    assert_eq!(tasks.len(), 2, "tasks.web holds the healthy tasks only: {tasks:?}");

    // web.3 turns healthy: it takes flows.
    cluster.node(3).meshctl_ok(&["task", "health", "web.3", "healthy"]);
    wait_backends(&cluster, 3);
    assert_eq!(answers(ns, &vip_url, 40), ["web.1", "web.2", "web.3"]);

    // An open connection to web.2 (through the VIP, balanced at connect) and one through the
    // published port on n3 (balanced per packet, tracked in conntrack).
    let vip_addr: std::net::Ipv4Addr = vip.parse().unwrap();
    let mut to_web2 = None;
    for _ in 0..60 {
        let (answer, stream) = ns.run_inside(move || {
            let mut stream = TcpStream::connect((vip_addr, 80)).expect("connect to the VIP");
            (request(&mut stream), stream)
        });
        if answer == "web.2" {
            to_web2 = Some(stream);
            break;
        }
    }
    let mut vip_stream = to_web2.expect("one of 60 connections reached web.2");
    let n3 = node_underlay_addr(3);
    let mut mesh_stream = None;
    for _ in 0..60 {
        let (answer, stream) = cluster.clients()[outside].ns.run_inside(move || {
            let mut stream = TcpStream::connect((n3, 9090)).expect("connect to the published port");
            (request(&mut stream), stream)
        });
        if answer == "web.2" {
            mesh_stream = Some(stream);
            break;
        }
    }
    let mut mesh_stream = mesh_stream.expect("one of 60 connections through n3 reached web.2");

    // web.2 turns unhealthy: no new flow from any way in, its open connections go on.
    let marked = Instant::now();
    let out = cluster.node(2).meshctl_ok(&["task", "health", "web.2", "unhealthy"]);
    assert!(out.contains("1 endpoint"), "{out}");
    wait_backends(&cluster, 2);
    eprintln!("web.2 out of every node's table {:?} after the command", marked.elapsed());
    assert_eq!(task_state(&cluster, 1, "web.2"), "unhealthy");
    assert_eq!(answers(ns, &vip_url, 40), ["web.1", "web.3"], "no new flow to an unhealthy task");
    assert_eq!(answers(&cluster.clients()[outside].ns, &mesh_url, 30), ["web.1", "web.3"]);
    assert_eq!(request(&mut vip_stream), "web.2", "the open VIP connection keeps its task");
    assert_eq!(request(&mut mesh_stream), "web.2", "the open mesh connection keeps its task");
    assert!(!ns.resolve("tasks.web").is_empty());
    assert_eq!(ns.resolve("tasks.web").len(), 2, "tasks.web drops the unhealthy task");
    assert_eq!(ns.resolve("web.2").len(), 1, "the task's own name still resolves");

    // Every task unhealthy: the service has no backend, as with no task (documented).
    cluster.node(1).meshctl_ok(&["task", "health", "web.1", "unhealthy"]);
    cluster.node(3).meshctl_ok(&["task", "health", "web.3", "unhealthy"]);
    wait_backends(&cluster, 0);
    assert!(cluster.node(1).meshctl_ok(&["service", "ls"]).contains("0/3"));
    assert_eq!(answers(ns, &vip_url, 5), ["FAILED"]);
    assert!(ns.resolve("tasks.web").is_empty());
    // Back to healthy: served again.
    cluster.node(2).meshctl_ok(&["task", "health", "web.2", "healthy"]);
    wait_backends(&cluster, 1);
    assert_eq!(answers(ns, &vip_url, 10), ["web.2"]);

    // Bad input: a clear error, nothing changed.
    for (node, args, expected) in [
        (1, &["task", "health", "nope", "healthy"][..], "no task \"nope\""),
        (1, &["task", "health", "web.2", "healthy"], "on its own node"),
        (2, &["task", "health", "web.2", "sick"], "invalid value 'sick'"),
        (2, &["task", "health", "bad name", "healthy"], "invalid task name"),
    ] {
        let out = cluster.node(node).meshctl(args);
        assert!(!out.status.success() && stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
    let bad = cluster.add_namespace("bad");
    let out =
        cluster.node(1).meshctl(&["attach", "--netns", &bad, "--network", "front", "--health", "maybe"]);
    assert!(!out.status.success() && stderr(&out).contains("invalid value 'maybe'"), "{}", stderr(&out));
    assert_eq!(task_state(&cluster, 1, "web.2"), "running");
    drop(servers);
}
