//! The routing mesh: a published port answers on every node's address (also nodes without a
//! task, and the node itself), lands on a backend anywhere, keeps the client's address, and
//! brings the replies back through the node the client used. Real meshd processes, real
//! clients (curl, UDP sockets) on the underlay.

use std::time::Duration;

use meshd_tests::cluster::node_underlay_addr;
use meshd_tests::command::stdout;
use meshd_tests::http::{request, NamedServer, UdpNamedServer};
use meshd_tests::load::{spread, wrk, WrkRun};
use meshd_tests::netns::Netns;
use meshd_tests::nginx::Nginx;
use meshd_tests::Cluster;

/// One UDP request from inside `ns` to `addr:port`; the answer and the address it came from.
fn udp_ask(ns: &Netns, addr: std::net::Ipv4Addr, port: u16, connected: bool) -> Option<(String, String)> {
    ns.run_inside(move || {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        if connected {
            socket.connect((addr, port)).ok()?;
            socket.send(b"hello").ok()?;
        } else {
            socket.send_to(b"hello", (addr, port)).ok()?;
        }
        let mut buf = [0u8; 512];
        let (n, from) = socket.recv_from(&mut buf).ok()?;
        Some((String::from_utf8_lossy(&buf[..n]).trim().to_string(), from.to_string()))
    })
}

/// Three nodes; service `web` on `front` publishes 8080 -> 80/tcp and 5353 -> 5300/udp, with one
/// task on n1 and one on n2 (n3 has none).
struct Fixture {
    cluster: Cluster,
    client: usize,
    /// The tasks' namespaces and HTTP servers (web.1 on n1, web.2 on n2).
    tasks: Vec<String>,
    servers: Vec<NamedServer>,
    _udp: Vec<UdpNamedServer>,
}

fn fixture(tag: &str) -> Fixture {
    let mut cluster = Cluster::new(tag, 3);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.72.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "front");
    cluster.node(2).meshctl_ok(&[
        "service",
        "create",
        "web",
        "--network",
        "front",
        "--publish",
        "8080:80",
        "--publish",
        "5353:5300/udp",
    ]);
    cluster.wait_listed(&["service", "ls"], "8080:80/tcp");
    let mut servers = Vec::new();
    let mut udp = Vec::new();
    let mut tasks = Vec::new();
    for i in 1..=2 {
        let task = format!("web.{i}");
        let (ns, _) = cluster.attach_task(i, &format!("web{i}"), "front", "web", &task);
        servers.push(NamedServer::start_showing_client(cluster.namespace(&ns), 80, &task));
        udp.push(UdpNamedServer::start(cluster.namespace(&ns), 5300, &task));
        tasks.push(ns);
    }
    cluster.wait_for("2 healthy backends on every node", Duration::from_secs(10), |c| {
        (1..=3).all(|i| c.node(i).meshctl_ok(&["service", "ls"]).contains("2/2"))
    });
    let client = cluster.add_underlay_client();
    Fixture { cluster, client, tasks, servers, _udp: udp }
}

#[test]
fn a_published_port_answers_on_every_node_with_the_clients_address() {
    let f = fixture("meshtcp");
    let client = &f.cluster.clients()[f.client];
    let client_addr = client.addr.to_string();
    for node in 1..=3 {
        let url = format!("http://{}:8080/", node_underlay_addr(node));
        let seen = spread(&client.ns, &url, 24);
        // Both backends answer through every node, n3 (no task) included, and each saw the
        // client's own address: no SNAT on the way.
        let expected: Vec<String> = ["web.1", "web.2"].iter().map(|t| format!("{t} {client_addr}")).collect();
        assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), expected, "through n{node}: {seen:?}");
    }

    // UDP the same way, connected or not; the answer comes from the address the client used.
    for node in 1..=3 {
        let addr = node_underlay_addr(node);
        for connected in [true, false] {
            let (answer, from) = udp_ask(&client.ns, addr, 5353, connected).expect("a UDP answer");
            assert!(answer.starts_with("web.") && answer.ends_with(&client_addr), "{answer}");
            assert_eq!(from, format!("{addr}:5353"), "the reply's source is the published address");
        }
    }

    // The kernel's view on n3: its frontends and the flows it brought in.
    let inspect = f.cluster.node(3).meshctl_ok(&["service", "inspect", "web"]);
    assert!(inspect.contains(&format!("published {}:8080/tcp -> 80", node_underlay_addr(3))), "{inspect}");
    assert!(inspect.contains("published 127.0.0.1:5353/udp -> 5300"), "{inspect}");
    let counters = f.cluster.node(3).meshctl_ok(&["stats"]);
    assert!(counters.contains("mesh-dnat") && counters.contains("mesh-reply"), "{counters}");
    let counters = f.cluster.node(1).meshctl_ok(&["stats"]);
    assert!(counters.contains("mesh-return"), "{counters}");

    // Published ports are reserved on every node: the kernel never hands them out as ephemeral
    // ports, whose replies the mesh would otherwise take.
    for node in 1..=3 {
        let out = f.cluster.node(node).ns.exec("cat", ["/proc/sys/net/ipv4/ip_local_reserved_ports"]);
        let reserved = stdout(&out);
        assert!(reserved.contains("5353") && reserved.contains("8080"), "n{node}: {reserved}");
    }
}

#[test]
fn a_published_port_answers_from_the_node_itself() {
    let f = fixture("meshself");
    for node in 1..=3 {
        let ns = &f.cluster.node(node).ns;
        let own = node_underlay_addr(node);
        for target in ["127.0.0.1".to_string(), own.to_string()] {
            let seen = spread(ns, &format!("http://{target}:8080/"), 16);
            assert!(
                seen.keys().all(|k| k.starts_with("web.")) && seen.len() == 2,
                "n{node} -> {target}:8080: {seen:?}"
            );
        }
        for connected in [true, false] {
            let (answer, from) = udp_ask(ns, own, 5353, connected).expect("a UDP answer");
            assert!(answer.starts_with("web."), "{answer}");
            assert_eq!(from, format!("{own}:5353"), "n{node}: replies show the published address");
        }
    }
}

#[test]
fn published_flows_follow_backend_health_and_open_connections_finish() {
    let mut f = fixture("meshlife");
    let via = |node: usize| format!("http://{}:8080/", node_underlay_addr(node));
    let n3 = node_underlay_addr(3);
    let (first, mut stream) = f.cluster.clients()[f.client].ns.run_inside(move || {
        let mut stream = std::net::TcpStream::connect((n3, 8080)).unwrap();
        let answer = request(&mut stream);
        (answer, stream)
    });
    let task = first.split_whitespace().next().unwrap().to_string();
    let other = if task == "web.1" { "web.2" } else { "web.1" };
    let drained: usize = task.trim_start_matches("web.").parse().unwrap();

    // Drain the open connection's node: new flows avoid its task on every way in (the drained
    // node's own address included: it keeps answering), the open connection goes on.
    f.cluster.node(1).meshctl_ok(&["node", "update", "--availability", "drain", &format!("n{drained}")]);
    f.cluster.wait_for("the drain on every node", Duration::from_secs(10), |c| {
        (1..=3).all(|i| c.node(i).backends_in_table("web") == 1)
    });
    assert_eq!(request(&mut stream), first, "the open connection keeps its backend through the drain");
    for node in 1..=3 {
        let seen = spread(&f.cluster.clients()[f.client].ns, &via(node), 10);
        assert_eq!(
            seen.keys().map(|k| k.split_whitespace().next().unwrap()).collect::<Vec<_>>(),
            [other],
            "n{node}: {seen:?}"
        );
    }
    drop(stream);
    f.cluster.node(1).meshctl_ok(&["node", "update", "--availability", "active", &format!("n{drained}")]);
    f.cluster.wait_for("both back everywhere", Duration::from_secs(10), |c| {
        (1..=3).all(|i| c.node(i).backends_in_table("web") == 2)
    });

    // A dead node's task leaves the tables of the others within the detection time.
    f.cluster.node_mut(2).kill();
    // Waited for in the kernel's own tables (`service inspect` reads the Maglev map back), not
    // in the cluster state, which is ahead of the maps by one reconcile.
    f.cluster.wait_for("n2's task out of n1's and n3's tables", Duration::from_secs(10), |c| {
        [1, 3].iter().all(|&i| {
            let inspect = c.node(i).meshctl_ok(&["--format", "json", "service", "inspect", "web"]);
            let inspect: serde_json::Value = serde_json::from_str(&inspect).expect("inspect JSON");
            let in_table =
                inspect["backends"].as_array().map_or(0, |b| b.iter().filter(|b| b["slots"] != 0).count());
            in_table == 1
        })
    });
    for node in [1, 3] {
        let seen = spread(&f.cluster.clients()[f.client].ns, &via(node), 10);
        assert_eq!(seen.len(), 1, "n{node}: {seen:?}");
        assert!(seen.keys().all(|k| k.starts_with("web.1 ")), "n{node}: {seen:?}");
    }
}

#[test]
fn nginx_behind_a_published_port_logs_the_clients_address() {
    // moby#25526: behind Swarm's routing mesh every request appears to come from the ingress
    // network. Here nginx on n2 logs the underlay client that called n1.
    let mut cluster = Cluster::new("meshnginx", 2);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.73.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "front");
    cluster.node(1).meshctl_ok(&["service", "create", "site", "--network", "front", "--publish", "8088:80"]);
    cluster.wait_listed(&["service", "ls"], "site");
    let backend = cluster.add_namespace("nginx");
    cluster.node(2).meshctl_ok(&["attach", "--netns", &backend, "--network", "front", "--service", "site"]);
    let nginx = Nginx::start(&backend, cluster.work_dir().join("nginx"), true);
    cluster.wait_for("the task in n1's tables", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["service", "ls"]).contains("1/1")
    });
    let client = cluster.add_underlay_client();
    let client = &cluster.clients()[client];
    let url = format!("http://{}:8088/", cluster.node(1).addr);
    let out = client.ns.exec("curl", ["-s", "--max-time", "3", &url]);
    assert_eq!(stdout(&out), "hello from a backend\n");
    let log = nginx.access_log();
    assert!(
        log.lines().any(|line| line.starts_with(&format!("{} ", client.addr))),
        "nginx logged the client's own address {}: {log}",
        client.addr
    );
}

#[test]
fn a_node_that_leaves_stops_answering_published_ports() {
    let mut f = fixture("meshleave");
    let url = |node: usize| format!("http://{}:8080/", node_underlay_addr(node));
    f.cluster.node(3).meshctl_ok(&["leave"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while f.cluster.node_mut(3).is_running() {
        assert!(std::time::Instant::now() < deadline, "n3's meshd exits after leaving");
        std::thread::sleep(Duration::from_millis(50));
    }
    let client = &f.cluster.clients()[f.client].ns;
    let seen = spread(client, &url(3), 3);
    assert_eq!(seen.get("FAILED"), Some(&3), "n3 no longer answers: {seen:?}");
    let out = f.cluster.node(3).ns.exec("curl", ["-s", "--max-time", "2", "http://127.0.0.1:8080/"]);
    assert!(!out.status.success(), "n3's own sockets are no longer translated");
    let seen = spread(client, &url(1), 6);
    assert!(!seen.contains_key("FAILED"), "the others still answer: {seen:?}");
}

#[test]
fn a_rolling_replacement_under_keep_alive_load_loses_no_request() {
    // As an orchestrator replaces a task: the new one is attached, the old one is detached with
    // a grace period (no new flows, open ones continue) and told to stop; it answers the next
    // request on each connection with `Connection: close`, and wrk reconnects, to a new task.
    // (nginx's SIGQUIT closes idle keep-alive connections at once instead, which races with a
    // request already on its way: a client that does not retry sees an error there.)
    let mut f = fixture("meshroll");
    let client_ns = f.cluster.clients()[f.client].ns.name().to_string();
    let url = format!("http://{}:8080/", node_underlay_addr(3));
    let load = std::thread::spawn(move || wrk(&client_ns, &url, 8, false));
    std::thread::sleep(Duration::from_secs(1));
    let mut new = Vec::new();
    for node in [1, 2] {
        let task = format!("web.new{node}");
        let (ns, _) = f.cluster.attach_task(node, &format!("new{node}"), "front", "web", &task);
        new.push(NamedServer::start(f.cluster.namespace(&ns), 80, &task));
    }
    f.cluster.wait_for("four tasks on n3", Duration::from_secs(10), |c| {
        c.node(3).meshctl_ok(&["service", "ls"]).contains("4/4")
    });
    let detaches: Vec<_> = [1, 2]
        .into_iter()
        .map(|node| {
            let socket = f.cluster.node(node).socket().to_path_buf();
            let ns = f.tasks[node - 1].clone();
            std::thread::spawn(move || {
                std::process::Command::new(meshd_tests::binaries::meshctl())
                    .arg("--socket")
                    .arg(socket)
                    .args(["detach", "--netns", &ns, "--grace", "3s"])
                    .output()
                    .unwrap()
            })
        })
        .collect();
    f.cluster.wait_for("the old tasks terminating on n3", Duration::from_secs(5), |c| {
        c.node(3).meshctl_ok(&["service", "ls"]).contains("2/4")
    });
    for server in &f.servers {
        server.drain();
    }
    for detach in detaches {
        let out = detach.join().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let WrkRun { requests, errors, report } = load.join().unwrap();
    assert!(requests > 1000, "wrk ran: {report}");
    assert_eq!(errors, 0, "{errors} of {requests} keep-alive requests failed: {report}");
    drop(new);
}

#[test]
fn outsiders_and_spoofed_sources_do_not_get_into_the_overlay() {
    let mut f = fixture("meshspoof");
    let task_address = f.cluster.node(1).meshctl_ok(&["--format", "json", "service", "ps", "web"]);
    let tasks: Vec<serde_json::Value> = serde_json::from_str(&task_address).unwrap();
    let web1 = tasks.iter().find(|t| t["task"] == "web.1").unwrap()["address"].as_str().unwrap().to_string();

    // A host on the underlay that routes the overlay subnet through a node reaches neither the
    // node's local task nor a remote one: nodes forward no new connection into the overlay.
    let client = &f.cluster.clients()[f.client];
    client.ns.ip(["route", "add", "10.72.0.0/24", "via", &f.cluster.node(1).addr.to_string()]);
    let out = client.ns.exec("curl", ["-s", "--max-time", "2", &format!("http://{web1}:80/")]);
    assert!(!out.status.success(), "an outsider reached a task directly: {}", stdout(&out));
    // The published port still works for it.
    let seen = spread(&client.ns, &format!("http://{}:8080/", node_underlay_addr(1)), 4);
    assert!(!seen.contains_key("FAILED"), "{seen:?}");

    // A container that sends from an address that is not its own is dropped and counted.
    let sneaky = f.cluster.add_namespace("sneaky");
    f.cluster.node(3).meshctl_ok(&["attach", "--netns", &sneaky, "--network", "front"]);
    let ns = f.cluster.namespace(&sneaky);
    ns.ip(["addr", "add", "10.77.0.250/32", "dev", "eth0"]);
    let out = ns
        .exec("curl", ["-s", "--max-time", "2", "--interface", "10.77.0.250", &format!("http://{web1}:80/")]);
    assert!(!out.status.success(), "a spoofed source got through: {}", stdout(&out));
    let counters = f.cluster.node(3).meshctl_ok(&["stats"]);
    assert!(counters.contains("drop-spoofed"), "{counters}");
    // Its own address works.
    let out = ns.exec("curl", ["-s", "--max-time", "2", &format!("http://{web1}:80/")]);
    assert!(stdout(&out).starts_with("web.1 "), "{}", stdout(&out));
}
