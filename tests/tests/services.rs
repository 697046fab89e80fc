//! Services: a VIP balanced in eBPF (Maglev + connection tracking) over tasks on several nodes,
//! with real HTTP clients (curl) and servers in namespaces.

use std::time::Duration;

use meshd_tests::command::{stderr, stdout};
use meshd_tests::http::{request, NamedServer};
use meshd_tests::load::{spread, wrk, WrkRun};
use meshd_tests::Cluster;

#[test]
fn a_vip_balances_over_tasks_on_every_node_and_follows_their_health() {
    let mut cluster = Cluster::new("svcvip", 3);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.70.0.0/24"]);
    cluster.node(1).meshctl_ok(&["network", "create", "back", "--subnet", "10.71.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "back");
    let created =
        cluster.node(2).meshctl_ok(&["--format", "json", "service", "create", "web", "--network", "front"]);
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let vip = created[0]["vip"].as_str().unwrap().to_string();
    assert!(vip.starts_with("10.70.0."), "{vip}");
    cluster.wait_listed(&["service", "ls"], "web");

    let mut servers = Vec::new();
    for i in 1..=3 {
        let task = format!("web.{i}");
        let (ns, _) = cluster.attach_task(i, &format!("web{i}"), "front", "web", &task);
        servers.push(NamedServer::start(cluster.namespace(&ns), 8080, &task));
    }
    let client = cluster.add_namespace("client");
    let client_ip = cluster.node(1).meshctl_ok(&["attach", "--netns", &client, "--network", "front"]);
    assert_ne!(client_ip.trim(), vip, "a VIP never collides with a task address");
    let url = format!("http://{vip}:8080/");
    cluster.wait_for("3 healthy backends on n1", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["service", "ls"]).contains("3/3")
    });

    // Every backend answers through the VIP, from any node's client.
    let seen = spread(cluster.namespace(&client), &url, 40);
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), ["web.1", "web.2", "web.3"], "{seen:?}");

    // The kernel's view of the VIP on the client's node: three backends sharing the Maglev table
    // about equally, and none of the connections just made tracked: curl's connect() was
    // balanced at the socket (tests/socket_lb.rs), so no packet went through the VIP.
    let inspect = cluster.node(1).meshctl_ok(&["--format", "json", "service", "inspect", "web"]);
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let backends = inspect["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 3, "{inspect}");
    assert!(inspect["table_size"].as_u64().unwrap() >= 300);
    for backend in backends {
        let share = backend["share"].as_f64().unwrap();
        assert!((share - 1.0 / 3.0).abs() < 0.02, "{inspect}");
    }
    let flows: u64 = backends.iter().map(|b| b["flows"].as_u64().unwrap()).sum();
    assert_eq!(flows, 0, "{inspect}");
    let table = cluster.node(1).meshctl_ok(&["service", "inspect", "web"]);
    assert!(table.contains("BACKEND") && table.contains(&vip), "{table}");

    // A task on another network is not a way in: the VIP is unreachable from `back`.
    let outsider = cluster.add_namespace("outsider");
    cluster.node(3).meshctl_ok(&["attach", "--netns", &outsider, "--network", "back"]);
    let out = cluster.namespace(&outsider).exec("curl", ["-s", "--max-time", "2", &url]);
    assert!(!out.status.success(), "the VIP answered from another network: {}", stdout(&out));

    // An open connection keeps its backend through a drain of that backend's node.
    let (first, mut stream) = cluster.namespace(&client).run_inside({
        let vip = vip.clone();
        move || {
            let mut stream = std::net::TcpStream::connect((vip.as_str(), 8080)).unwrap();
            let answer = request(&mut stream);
            (answer, stream)
        }
    });
    let node_of = |task: &str| task.trim_start_matches("web.").parse::<usize>().unwrap();
    let drained = node_of(&first);
    cluster.node(1).meshctl_ok(&["node", "update", "--availability", "drain", &format!("n{drained}")]);
    cluster.wait_for("the drain in n1's state", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["service", "ls"]).contains("2/3")
    });
    wait_no_slots(&cluster, 1, &first);
    assert_eq!(request(&mut stream), first, "the open connection stays on its backend");
    let seen = spread(cluster.namespace(&client), &url, 30);
    assert!(
        !seen.contains_key(&first) && !seen.contains_key("FAILED"),
        "new flows avoid the drained node: {seen:?}"
    );
    let ps = cluster.node(1).meshctl_ok(&["service", "ps", "web"]);
    assert!(ps.contains("node-drained") && ps.contains("running"), "{ps}");

    // A dead node's task leaves every table within the detection time.
    cluster.node(1).meshctl_ok(&["node", "update", "--availability", "active", &format!("n{drained}")]);
    cluster.node_mut(3).kill();
    cluster.wait_for("n3's task out of n1's tables", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["service", "ps", "web"]).contains("node-down")
    });
    let seen = spread(cluster.namespace(&client), &url, 30);
    assert!(!seen.contains_key("web.3") && !seen.contains_key("FAILED"), "{seen:?}");

    // Every connection was balanced at connect(): n1's veth programs translated no packet.
    let counters = cluster.node(1).meshctl_ok(&["stats"]);
    assert!(!counters.contains("lb-dnat") && !counters.contains("lb-rnat"), "{counters}");
    drop(servers);
}

#[test]
fn service_commands_validate() {
    let mut cluster = Cluster::new("svccmd", 1);
    cluster.form();
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "front", "--subnet", "10.72.0.0/24"]);
    n1.meshctl_ok(&["service", "create", "web", "--network", "front"]);
    let dns = n1.meshctl_ok(&[
        "--format",
        "json",
        "service",
        "create",
        "db",
        "--network",
        "front",
        "--endpoint-mode",
        "dnsrr",
    ]);
    assert!(dns.contains("\"vip\": null"), "{dns}");
    n1.meshctl_ok(&["service", "create", "pub", "--network", "front", "--publish", "8081:80"]);
    for (args, expected) in [
        (&["service", "create", "web", "--network", "front"][..], "already exists"),
        (&["service", "create", "api", "--network", "nope"], "no network named"),
        (&["service", "create", "bad name", "--network", "front"], "invalid service name"),
        (
            &[
                "service",
                "create",
                "api",
                "--network",
                "front",
                "--endpoint-mode",
                "dnsrr",
                "--publish",
                "80:80",
            ],
            "dnsrr mode",
        ),
        (
            &["service", "create", "api", "--network", "front", "--publish", "8081:80"],
            "published by service \"pub\"",
        ),
        (&["service", "create", "api", "--network", "front", "--publish", "8081"], "invalid --publish"),
        (&["service", "create", "api", "--network", "front", "--publish", "80:80/sctp"], "invalid --publish"),
        (&["service", "create", "api", "--network", "front", "--publish", "4789:80/udp"], "meshd's own"),
        (&["service", "ps", "nope"], "no service named"),
        (&["service", "rm", "nope"], "no service named"),
    ] {
        let out = n1.meshctl(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
    let ns = cluster.add_namespace("t");
    let out = cluster.node(1).meshctl(&["attach", "--netns", &ns, "--network", "front", "--service", "nope"]);
    assert!(stderr(&out).contains("no service named"), "{}", stderr(&out));
    cluster.node(1).meshctl_ok(&["service", "rm", "web"]);
    assert!(!cluster.node(1).meshctl_ok(&["service", "ls"]).contains("web"));
}

/// Two nodes, network `front` (10.`subnet_octet`.0.0/24), service `web` (published on 9080)
/// with one task per node (`web.1` on n1, `web.2` on n2) each answering HTTP on 8080 with its
/// name, a client on n1 and a client on the underlay; returns once n1 balances over both.
struct TwoBackends {
    cluster: Cluster,
    vip: String,
    namespaces: Vec<String>,
    client: String,
    /// The underlay client's namespace.
    outside: String,
    _servers: Vec<NamedServer>,
}

fn two_backends(tag: &str, subnet_octet: u8, extra: &[&str]) -> TwoBackends {
    let mut cluster = Cluster::new(tag, 2);
    cluster.form_with(extra);
    cluster.node(1).meshctl_ok(&[
        "network",
        "create",
        "front",
        "--subnet",
        &format!("10.{subnet_octet}.0.0/24"),
    ]);
    let created = cluster.node(1).meshctl_ok(&[
        "--format",
        "json",
        "service",
        "create",
        "web",
        "--network",
        "front",
        "--publish",
        "9080:8080",
    ]);
    let vip =
        serde_json::from_str::<serde_json::Value>(&created).unwrap()[0]["vip"].as_str().unwrap().to_string();
    cluster.wait_listed(&["service", "ls"], "web");
    let mut servers = Vec::new();
    let mut namespaces = Vec::new();
    for i in 1..=2 {
        let task = format!("web.{i}");
        let (ns, _) = cluster.attach_task(i, &format!("web{i}"), "front", "web", &task);
        servers.push(NamedServer::start(cluster.namespace(&ns), 8080, &task));
        namespaces.push(ns);
    }
    let client = cluster.add_namespace("client");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &client, "--network", "front"]);
    cluster.wait_for("2 healthy backends", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["service", "ls"]).contains("2/2")
    });
    let outside = cluster.add_underlay_client();
    let outside = cluster.clients()[outside].ns.name().to_string();
    TwoBackends { cluster, vip, namespaces, client, outside, _servers: servers }
}

#[test]
fn an_idle_connection_outlives_the_conntrack_timeout() {
    // Swarm's IPVS drops idle connections after 900 s (moby#31208). Here a flow idle past the
    // timeout is balanced afresh, and Maglev picks the same backend while the set is unchanged.
    let TwoBackends { cluster, vip, client, _servers, .. } =
        two_backends("svcidle", 73, &["--lb-idle-timeout", "1s"]);
    let (first, mut stream) = cluster.namespace(&client).run_inside(move || {
        let mut stream = std::net::TcpStream::connect((vip.as_str(), 8080)).unwrap();
        let answer = request(&mut stream);
        (answer, stream)
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(request(&mut stream), first, "the idle connection still reaches its backend");
}

#[test]
fn a_detach_with_grace_lets_open_connections_finish() {
    let TwoBackends { cluster, vip, namespaces, client, _servers, .. } = two_backends("svcgrace", 74, &[]);
    let target = vip.clone();
    let (first, mut stream) = cluster.namespace(&client).run_inside(move || {
        let mut stream = std::net::TcpStream::connect((target.as_str(), 8080)).unwrap();
        let answer = request(&mut stream);
        (answer, stream)
    });
    let leaving: usize = first.trim_start_matches("web.").parse().unwrap();
    // The same through the published port on the other node, from the underlay: connections
    // until one lands on the task that will leave (Maglev spreads them; a few tries suffice).
    let published = cluster.node(3 - leaving).addr;
    let mut outside_stream = {
        let wanted = first.clone();
        cluster.clients()[0].ns.run_inside(move || {
            (0..40)
                .find_map(|_| {
                    let mut stream = std::net::TcpStream::connect((published, 9080)).unwrap();
                    (request(&mut stream) == wanted).then_some(stream)
                })
                .expect("a published connection to the leaving task")
        })
    };
    let (socket, ns) = (cluster.node(leaving).socket().to_path_buf(), namespaces[leaving - 1].clone());
    let detach = std::thread::spawn(move || {
        std::process::Command::new(meshd_tests::binaries::meshctl())
            .arg("--socket")
            .arg(socket)
            .args(["detach", "--netns", &ns, "--grace", "4s"])
            .output()
            .unwrap()
    });
    cluster.wait_for("the task terminating on n1", Duration::from_secs(3), |c| {
        c.node(1).meshctl_ok(&["service", "ls"]).contains("1/2")
    });
    wait_no_slots(&cluster, 1, &first);
    let url = format!("http://{vip}:8080/");
    let seen = spread(cluster.namespace(&client), &url, 10);
    assert!(
        !seen.contains_key(&first) && !seen.contains_key("FAILED"),
        "no new flows to a terminating task: {seen:?}"
    );
    assert_eq!(request(&mut stream), first, "the open connection finishes on its backend");
    assert_eq!(request(&mut outside_stream), first, "so does the one through the published port");
    let out = detach.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    cluster.wait_for("the task gone", Duration::from_secs(5), |c| {
        !c.node(1).meshctl_ok(&["service", "ps", "web"]).contains(&first)
    });
}

#[test]
fn rolling_replacement_and_agent_restarts_under_load_lose_no_request() {
    let TwoBackends { mut cluster, vip, namespaces, client, outside, _servers } =
        two_backends("svcroll", 75, &[]);
    // Two ways in, loaded at once: the VIP from a container, and the published port on n1
    // from a client on the underlay.
    let ways = [
        (client.clone(), format!("http://{vip}:8080/")),
        (outside, format!("http://{}:9080/", cluster.node(1).addr)),
    ];
    let load = |secs: u32| {
        ways.iter()
            .map(|(ns, url)| {
                let (ns, url) = (ns.clone(), url.clone());
                std::thread::spawn(move || (url.clone(), wrk(&ns, &url, secs, true)))
            })
            .collect::<Vec<_>>()
    };
    let check = |loads: Vec<std::thread::JoinHandle<(String, WrkRun)>>, what: &str| {
        for load in loads {
            let (url, WrkRun { requests, errors, .. }) = load.join().unwrap();
            assert!(requests > 100, "wrk ran against {url}: {requests}");
            assert_eq!(errors, 0, "{errors} of {requests} requests to {url} failed during {what}");
        }
    };

    // Replace both tasks while wrk runs: new ones first, then the old ones leave with a grace
    // period (no new flows; every request here is a new connection).
    let loads = load(8);
    std::thread::sleep(Duration::from_secs(1));
    let mut new_servers = Vec::new();
    for i in 1..=2 {
        let task = format!("web.new{i}");
        let (ns, _) = cluster.attach_task(i, &format!("new{i}"), "front", "web", &task);
        new_servers.push(NamedServer::start(cluster.namespace(&ns), 8080, &task));
    }
    std::thread::sleep(Duration::from_secs(1));
    for (i, ns) in namespaces.iter().enumerate() {
        cluster.node(i + 1).meshctl_ok(&["detach", "--netns", ns, "--grace", "2s"]);
    }
    check(loads, "the rolling replacement");
    let ps = cluster.node(1).meshctl_ok(&["service", "ps", "web"]);
    assert!(ps.contains("web.new1") && ps.contains("web.new2") && !ps.contains("web.1 "), "{ps}");

    // Restart both agents while wrk runs: the datapath does not notice.
    let loads = load(6);
    std::thread::sleep(Duration::from_secs(1));
    for i in [1, 2] {
        cluster.node_mut(i).stop();
        cluster.node_mut(i).start();
    }
    check(loads, "the agent restarts");
    drop(new_servers);
}

/// A TCP connection from local port `port` (SO_REUSEADDR, so a port left in TIME_WAIT by an
/// earlier connection can be bound again, as the kernel's own port choice would) to
/// `addr:8080`, from inside namespace `ns`.
fn connect_from_port(ns: &meshd_tests::Netns, port: u16, addr: &str) -> Result<std::net::TcpStream, String> {
    use nix::sys::socket::{
        bind, connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    let addr: std::net::Ipv4Addr = addr.parse().unwrap();
    ns.run_inside(move || {
        let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::empty(), None)
            .map_err(|e| e.to_string())?;
        setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| e.to_string())?;
        bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::new(0, 0, 0, 0, port))
            .map_err(|e| format!("bind: {e}"))?;
        let [a, b, c, d] = addr.octets();
        connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::new(a, b, c, d, 8080))
            .map_err(|e| format!("connect: {e}"))?;
        Ok(std::net::TcpStream::from(fd))
    })
}

/// One HTTP request on a new connection from local port `port` to `addr:8080` (see
/// [`connect_from_port`]); the answer's body, or the error. The connection is closed after.
fn request_from_port(ns: &meshd_tests::Netns, port: u16, addr: &str) -> Result<String, String> {
    let mut stream = connect_from_port(ns, port, addr)?;
    Ok(request(&mut stream))
}

/// Sends one bare TCP ACK from local port `port` to `addr:8080` through a raw socket inside
/// `ns`: what a closing connection's last ACK looks like to the datapath, at a moment the test
/// chooses. Its checksum is left 0, so the receiving kernel drops it; only the datapath sees it.
fn stray_ack(ns: &meshd_tests::Netns, port: u16, addr: &str) {
    use nix::sys::socket::{
        sendto, socket, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn,
    };
    let addr: std::net::Ipv4Addr = addr.parse().unwrap();
    ns.run_inside(move || {
        let fd = socket(AddressFamily::Inet, SockType::Raw, SockFlag::empty(), SockProtocol::Tcp)
            .expect("raw socket");
        let mut header = [0u8; 20];
        header[0..2].copy_from_slice(&port.to_be_bytes());
        header[2..4].copy_from_slice(&8080u16.to_be_bytes());
        header[4..8].copy_from_slice(&1u32.to_be_bytes()); // seq
        header[8..12].copy_from_slice(&1u32.to_be_bytes()); // ack
        header[12] = 5 << 4; // data offset: 5 words, no options
        header[13] = 0x10; // ACK
        header[14..16].copy_from_slice(&512u16.to_be_bytes()); // window
        let [a, b, c, d] = addr.octets();
        sendto(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &header,
            &SockaddrIn::new(a, b, c, d, 0),
            MsgFlags::empty(),
        )
        .expect("send the stray ACK");
    })
}

#[test]
fn a_client_port_reused_from_a_vip_flow_to_a_task_directly_still_works() {
    // A client that talked to the VIP and then reaches a task directly (tasks.NAME) from the
    // same ephemeral port: the reply must not be "translated back" to the VIP by the reverse
    // translation the VIP flow left behind, nor by one its last packets write back after the
    // direct flow started (a late ACK of the closing VIP flow, sent here on purpose: a full CI
    // run once delivered one after the direct SYN, and the direct flow's answer went to the VIP).
    // The veth program's translation is what is tested, so the socket LB is off: with it, the
    // VIP connection's socket is the task's own 4-tuple, and the kernel's port choice keeps the
    // next connection off it (here, binding the same port gives EADDRNOTAVAIL, as it would for
    // two direct connections).
    let TwoBackends { cluster, vip, client, _servers, .. } =
        two_backends("svcreuse", 78, &["--socket-lb", "off"]);
    let ps = cluster.node(1).meshctl_ok(&["--format", "json", "service", "ps", "web"]);
    let tasks: Vec<serde_json::Value> = serde_json::from_str(&ps).unwrap();
    let ns = cluster.namespace(&client);
    for port in [40001u16, 40002, 40003] {
        let through_vip = request_from_port(ns, port, &vip);
        assert!(
            through_vip.as_deref().is_ok_and(|a| a.starts_with("web.")),
            "VIP from {port}: {through_vip:?}"
        );
        for task in &tasks {
            let (name, address) = (task["task"].as_str().unwrap(), task["address"].as_str().unwrap());
            let mut direct = connect_from_port(ns, port, address)
                .unwrap_or_else(|e| panic!("{name} directly from port {port} after the VIP: {e}"));
            stray_ack(ns, port, &vip);
            assert_eq!(
                request(&mut direct),
                name,
                "{name} directly from port {port} after the VIP and a late ACK"
            );
        }
    }
}

/// Waits until `node`'s kernel tables give `task` of `web` no Maglev slot (no new flow goes
/// there). The maps follow the cluster state one reconcile later, so a test that checks new
/// flows right after `service ls` changed races the reconciler (it lost under load).
fn wait_no_slots(cluster: &Cluster, node: usize, task: &str) {
    let tasks: serde_json::Value =
        serde_json::from_str(&cluster.node(node).meshctl_ok(&["--format", "json", "service", "ps", "web"]))
            .expect("service ps as JSON");
    let rows = tasks.as_array().cloned().or_else(|| tasks["tasks"].as_array().cloned()).unwrap_or_default();
    let address = rows
        .iter()
        .find(|t| t["task"] == task)
        .and_then(|t| t["address"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("{task} in service ps: {tasks}"));
    cluster.wait_for(&format!("{task} out of n{node}'s Maglev table"), Duration::from_secs(10), |c| {
        let inspect = c.node(node).meshctl_ok(&["--format", "json", "service", "inspect", "web"]);
        let inspect: serde_json::Value = serde_json::from_str(&inspect).expect("service inspect as JSON");
        inspect["backends"]
            .as_array()
            .is_some_and(|b| b.iter().all(|b| b["address"] != address.as_str() || b["slots"] == 0))
    });
}
