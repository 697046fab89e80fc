//! `--publish` as Swarm users write it (issue 22, item 1): Docker's long syntax, `address=` (a
//! node's second underlay address, 127.0.0.1), `mode=host`, ranges, two services on one port
//! on addresses apart, and bad input refused with nothing changed. Real meshd on three nodes,
//! real curl from a host on the underlay and from the node itself.

use std::net::Ipv4Addr;
use std::time::Duration;

use meshd_tests::cluster::node_underlay_addr;
use meshd_tests::command::{stderr, stdout};
use meshd_tests::http::NamedServer;
use meshd_tests::netns::Netns;
use meshd_tests::Cluster;

/// node 1's second underlay address.
const SECOND: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 101);

/// What `url` answers from namespace `ns` within 2 s (None: no answer).
fn answer(ns: &Netns, url: &str) -> Option<String> {
    let out = ns.exec("curl", ["-s", "--max-time", "2", url]);
    out.status.success().then(|| stdout(&out).trim().to_string())
}

fn url(addr: Ipv4Addr, port: u16) -> String {
    format!("http://{addr}:{port}/")
}

/// The `ports` column of service `name` in `service ls --format json`.
fn ports_of(cluster: &Cluster, name: &str) -> Vec<String> {
    let ls = cluster.node(1).meshctl_ok(&["--format", "json", "service", "ls"]);
    let ls: serde_json::Value = serde_json::from_str(&ls).unwrap();
    let service = ls.as_array().unwrap().iter().find(|s| s["name"] == name).cloned().unwrap();
    service["ports"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect()
}

#[test]
fn address_ranges_and_bad_input() {
    let mut cluster = Cluster::new("pubaddr", 3);
    // A second address on node 1's underlay interface, as a host with two networks has.
    cluster.node(1).ns.ip(["addr", "add", &format!("{SECOND}/24"), "dev", "eth0"]);
    cluster.form();
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "front", "--subnet", "10.78.0.0/24"]);
    let on_second = format!("published=8081,target=80,address={SECOND}");
    n1.meshctl_ok(&["service", "create", "second", "--network", "front", "--publish", &on_second]);
    n1.meshctl_ok(&[
        "service",
        "create",
        "first",
        "--network",
        "front",
        "--publish",
        "published=8081,target=80,address=10.77.0.1",
    ]);
    n1.meshctl_ok(&[
        "service",
        "create",
        "local",
        "--network",
        "front",
        "--publish",
        "published=8082,target=80,address=127.0.0.1",
    ]);
    n1.meshctl_ok(&[
        "service",
        "create",
        "range",
        "--network",
        "front",
        "--publish",
        "30000-30019:40000-40019",
    ]);
    let mut servers = Vec::new();
    for (node, service) in [(2, "second"), (3, "first"), (2, "local")] {
        let task = format!("{service}.1");
        let (ns, _) = cluster.attach_task(node, service, "front", service, &task);
        servers.push(NamedServer::start(cluster.namespace(&ns), 80, &task));
    }
    let (ns, _) = cluster.attach_task(3, "range", "front", "range", "range.1");
    for port in 40000..40020 {
        servers.push(NamedServer::start(cluster.namespace(&ns), port, &format!("range.1:{port}")));
    }
    let outside = cluster.add_underlay_client();
    cluster.wait_for("the second address answering", Duration::from_secs(15), |c| {
        answer(&c.clients()[outside].ns, &url(SECOND, 8081)).as_deref() == Some("second.1")
    });

    // address=SECOND: only there; the node's first address is another service's (address apart).
    let from_outside = &cluster.clients()[outside].ns;
    assert_eq!(answer(from_outside, &url(SECOND, 8081)).as_deref(), Some("second.1"));
    assert_eq!(answer(from_outside, &url(node_underlay_addr(1), 8081)).as_deref(), Some("first.1"));
    for i in 2..=3 {
        assert_eq!(answer(from_outside, &url(node_underlay_addr(i), 8081)), None, "node {i} answers 8081");
    }
    // address=127.0.0.1: the node's own clients only, on every node; nobody from outside.
    for i in 1..=3 {
        let node = &cluster.node(i).ns;
        assert_eq!(answer(node, &url(Ipv4Addr::LOCALHOST, 8082)).as_deref(), Some("local.1"), "n{i} itself");
        assert_eq!(answer(node, &url(node_underlay_addr(i), 8082)), None, "n{i}'s own underlay address");
        assert_eq!(answer(from_outside, &url(node_underlay_addr(i), 8082)), None, "n{i} from outside");
    }
    assert_eq!(answer(from_outside, &url(SECOND, 8082)), None);
    // A range of 20 ports: each answers on every node, to the target at the same offset.
    for i in 1..=3 {
        for offset in 0..20u16 {
            let got = answer(from_outside, &url(node_underlay_addr(i), 30000 + offset));
            assert_eq!(got, Some(format!("range.1:{}", 40000 + offset)), "n{i} port {}", 30000 + offset);
        }
    }
    // service ls shows the forms as written.
    assert_eq!(
        ports_of(&cluster, "second"),
        [format!("published=8081,target=80,protocol=tcp,mode=ingress,address={SECOND}")]
    );
    assert_eq!(ports_of(&cluster, "range"), ["30000-30019:40000-40019/tcp"]);

    // Bad input: a clear error, nothing changed.
    let n1 = cluster.node(1);
    let before = n1.meshctl_ok(&["--format", "json", "service", "ls"]);
    let create = |publish: &[&str]| {
        let mut args = vec!["service", "create", "bad", "--network", "front"];
        for p in publish {
            args.extend(["--publish", p]);
        }
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (create(&["8080"]), "PUBLISHED:TARGET"),
        (create(&["published=8080,target=80,mode=global"]), "ingress or host"),
        (create(&["published=8080,target=80,colour=red"]), "unknown key"),
        (create(&["31000-31010:80-85"]), "must match"),
        (create(&["31010-31000:80"]), "ends before it starts"),
        (create(&["31000-33000:31000-33000"]), "at most 1024"),
        (create(&["published=8090,target=80,address=10.77.0.5/24"]), "did you mean 10.77.0.0/24"),
        (create(&["30010-30030:30010-30030"]), "published by service \"range\""),
        (create(&["published=8081,target=80,address=10.77.0.0/24"]), "on addresses that overlap"),
        (create(&["8081:80"]), "on addresses that overlap"),
        (create(&["32000-32010:1-11", "32005:80"]), "published by service \"bad\""),
        (
            ["service", "update", "first", "--publish-add", "30005:80"].map(String::from).to_vec(),
            "published by service \"range\"",
        ),
        (
            ["service", "update", "range", "--publish-rm", "30000"].map(String::from).to_vec(),
            "does not publish",
        ),
        (
            ["service", "update", "range", "--publish-rm", "30000-30019:1-2"].map(String::from).to_vec(),
            "differ",
        ),
    ];
    for (args, expected) in &cases {
        let out = n1.meshctl(args);
        assert!(!out.status.success() && stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(before, n1.meshctl_ok(&["--format", "json", "service", "ls"]), "bad input changed nothing");
    // A range goes as it came, whole.
    n1.meshctl_ok(&["service", "update", "range", "--publish-rm", "30000-30019"]);
    cluster.wait_for("the range gone", Duration::from_secs(10), |c| {
        answer(&c.clients()[outside].ns, &url(node_underlay_addr(2), 30007)).is_none()
    });
    drop(servers);
}

#[test]
#[ignore = "fails on main after the merge with the encrypted and typed-name work (no network named front on a node); passed on its branch: to debug"]
fn host_mode_answers_where_a_task_runs_to_it() {
    let mut cluster = Cluster::new("pubhost", 3);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.79.0.0/24"]);
    cluster.node(2).meshctl_ok(&[
        "service",
        "create",
        "edge",
        "--network",
        "front",
        "--publish",
        "published=8085,target=80,mode=host",
    ]);
    assert_eq!(ports_of(&cluster, "edge"), ["published=8085,target=80,protocol=tcp,mode=host"]);
    // Every node has the network and the service before tasks attach on them.
    cluster.wait_listed(&["service", "ls"], "edge");
    let mut servers = Vec::new();
    let mut tasks = Vec::new();
    for i in 1..=2 {
        let task = format!("edge.{i}");
        let (ns, _) = cluster.attach_task(i, &format!("edge{i}"), "front", "edge", &task);
        servers.push(NamedServer::start_showing_client(cluster.namespace(&ns), 80, &task));
        tasks.push(ns);
    }
    let outside = cluster.add_underlay_client();
    let client_addr = cluster.clients()[outside].addr;
    cluster.wait_for("both task nodes answering", Duration::from_secs(15), |c| {
        (1..=2).all(|i| answer(&c.clients()[outside].ns, &url(node_underlay_addr(i), 8085)).is_some())
    });
    // Each node with a task sends every connection to its own task, which sees the client's
    // address (no mesh hop, no SNAT); the node without a task does not answer.
    let from_outside = &cluster.clients()[outside].ns;
    for i in 1..=2 {
        for _ in 0..10 {
            let got = answer(from_outside, &url(node_underlay_addr(i), 8085));
            assert_eq!(got, Some(format!("edge.{i} {client_addr}")), "n{i}");
        }
    }
    assert_eq!(answer(from_outside, &url(node_underlay_addr(3), 8085)), None, "n3 has no task");

    // The task of n2 moves to n3: the port moves with it.
    cluster.node(2).meshctl_ok(&["detach", "--netns", &tasks[1]]);
    let (ns, _) = cluster.attach_task(3, "edge3", "front", "edge", "edge.3");
    servers.push(NamedServer::start_showing_client(cluster.namespace(&ns), 80, "edge.3"));
    cluster.wait_for("n3 answering and n2 not", Duration::from_secs(15), |c| {
        let ns = &c.clients()[outside].ns;
        answer(ns, &url(node_underlay_addr(3), 8085)).is_some()
            && answer(ns, &url(node_underlay_addr(2), 8085)).is_none()
    });
    let from_outside = &cluster.clients()[outside].ns;
    for _ in 0..10 {
        assert_eq!(
            answer(from_outside, &url(node_underlay_addr(3), 8085)),
            Some(format!("edge.3 {client_addr}"))
        );
        assert_eq!(
            answer(from_outside, &url(node_underlay_addr(1), 8085)),
            Some(format!("edge.1 {client_addr}"))
        );
    }
    drop(servers);
}
