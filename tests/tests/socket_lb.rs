//! Socket-level load balancing: a container's connect() to a VIP is pointed at a backend before
//! the first packet (sock.bpf.c), so the kernel's socket has the backend as its destination and
//! no packet is translated; the application still sees the VIP as its peer. With `--socket-lb
//! off` the veth program balances every packet as before. Checked with the kernel's own view
//! of the sockets (`ss`, which reads sock_diag, not getpeername) and the nodes' flow tables.

use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::time::Duration;

use meshd_tests::http::{request, NamedServer, UdpNamedServer};
use meshd_tests::monitor::Monitor;
use meshd_tests::{Cluster, Netns};

const TCP_PORT: u16 = 8080;
const UDP_PORT: u16 = 5300;

/// Two nodes, service `web` on network `front` with a task on each (HTTP on 8080, a UDP
/// responder on 5300), and a client namespace on n1.
struct Setup {
    cluster: Cluster,
    vip: Ipv4Addr,
    /// Task name -> address.
    tasks: Vec<(String, Ipv4Addr)>,
    client: String,
    _http: Vec<NamedServer>,
    _udp: Vec<UdpNamedServer>,
}

fn setup(tag: &str, octet: u8, extra: &[&str]) -> Setup {
    let mut cluster = Cluster::new(tag, 2);
    cluster.form_with(extra);
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", &format!("10.{octet}.0.0/24")]);
    let created =
        cluster.node(1).meshctl_ok(&["--format", "json", "service", "create", "web", "--network", "front"]);
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let vip: Ipv4Addr = created[0]["vip"].as_str().unwrap().parse().unwrap();
    cluster.wait_listed(&["service", "ls"], "web");
    let (mut http, mut udp, mut tasks) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=2 {
        let task = format!("web.{i}");
        let (ns, address) = cluster.attach_task(i, &format!("web{i}"), "front", "web", &task);
        tasks.push((task.clone(), address));
        http.push(NamedServer::start(cluster.namespace(&ns), TCP_PORT, &task));
        udp.push(UdpNamedServer::start(cluster.namespace(&ns), UDP_PORT, &task));
    }
    let client = cluster.add_namespace("client");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &client, "--network", "front"]);
    cluster.wait_for("2 healthy backends", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["service", "ls"]).contains("2/2")
    });
    Setup { cluster, vip, tasks, client, _http: http, _udp: udp }
}

/// The destination of the client's socket on local port `port` as the kernel holds it
/// (`ss` reads sock_diag; the socket programs do not rewrite that).
fn kernel_peer(ns: &Netns, proto: &str, port: u16) -> Ipv4Addr {
    let out = ns.exec("ss", ["-Hn", proto, "state", "established", "sport", "=", &format!(":{port}")]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let peer = text.split_whitespace().last().unwrap_or_else(|| panic!("no socket on port {port}: {text:?}"));
    peer.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok()).unwrap_or_else(|| panic!("peer {peer:?}"))
}

/// The number of flows n1's flow tables track for `web` (the veth program's per-packet path).
fn tracked_flows(cluster: &Cluster) -> u64 {
    let inspect = cluster.node(1).meshctl_ok(&["--format", "json", "service", "inspect", "web"]);
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    inspect["backends"].as_array().unwrap().iter().map(|b| b["flows"].as_u64().unwrap_or(0)).sum()
}

/// One TCP connection to the VIP from the client: (what getpeername says, the kernel's
/// destination, the task that answered).
fn tcp_through_vip(setup: &Setup) -> (Ipv4Addr, Ipv4Addr, String) {
    let ns = setup.cluster.namespace(&setup.client);
    let vip = setup.vip;
    let mut stream: TcpStream = ns.run_inside(move || TcpStream::connect((vip, TCP_PORT)).expect("connect"));
    let seen = match stream.peer_addr().unwrap().ip() {
        std::net::IpAddr::V4(ip) => ip,
        other => panic!("{other}"),
    };
    let kernel = kernel_peer(ns, "-t", stream.local_addr().unwrap().port());
    let answer = request(&mut stream);
    (seen, kernel, answer)
}

fn address_of(setup: &Setup, task: &str) -> Ipv4Addr {
    setup.tasks.iter().find(|(name, _)| name == task).unwrap_or_else(|| panic!("task {task:?}")).1
}

#[test]
fn a_containers_connection_to_a_vip_goes_to_a_backend_from_its_first_packet() {
    let setup = setup("socklb", 81, &[]);
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..24 {
        let (seen, kernel, answer) = tcp_through_vip(&setup);
        assert_eq!(seen, setup.vip, "the application sees the VIP as its peer");
        assert_eq!(kernel, address_of(&setup, &answer), "the socket itself goes to the task that answered");
        answered.insert(answer);
    }
    assert_eq!(answered.len(), 2, "both tasks get connections: {answered:?}");
    assert_eq!(tracked_flows(&setup.cluster), 0, "no packet of those connections was translated at the veth");
    // meshctl monitor still shows them: new flows balanced at the socket (no client port yet).
    // Flow events are on in the kernel only while a follower asks for them.
    let monitor = Monitor::start(setup.cluster.node(1), &["--type", "flow", "--format", "json", "--follow"]);
    let sock_lb = |line: &str| {
        serde_json::from_str::<serde_json::Value>(line).ok().filter(|e| e["reason"] == "sock-lb")
    };
    setup.cluster.wait_for("the monitor following flows", Duration::from_secs(10), |_| {
        tcp_through_vip(&setup);
        monitor.lines.recv_timeout(Duration::from_millis(200)).is_ok_and(|l| sock_lb(&l).is_some())
    });
    while monitor.lines.try_recv().is_ok() {}
    let mut expected = std::collections::BTreeMap::new();
    for _ in 0..10 {
        let (_, kernel, _) = tcp_through_vip(&setup);
        *expected.entry(kernel).or_insert(0) += 1;
    }
    let mut seen = std::collections::BTreeMap::new();
    while seen.values().sum::<usize>() < 10 {
        let line = monitor.lines.recv_timeout(Duration::from_secs(5)).expect("a flow event per connection");
        let Some(flow) = sock_lb(&line) else { continue };
        assert_eq!(flow["destination"]["address"], setup.vip.to_string().as_str(), "{flow}");
        assert_eq!(flow["destination"]["service"], "web", "{flow}");
        assert!(flow["source"].get("port").is_none(), "no client port at connect(): {flow}");
        let backend: Ipv4Addr = flow["backend"]["address"].as_str().unwrap().parse().unwrap();
        *seen.entry(backend).or_insert(0) += 1;
    }
    assert_eq!(seen, expected, "one event per connection, naming the backend its socket went to");
    drop(monitor);

    // Connected UDP: the socket goes to a task, and a datagram's source is the VIP for the
    // application (recvmsg4).
    let ns = setup.cluster.namespace(&setup.client);
    let vip = setup.vip;
    let (socket, port) = ns.run_inside(move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.connect((vip, UDP_PORT)).unwrap();
        let port = socket.local_addr().unwrap().port();
        (socket, port)
    });
    let kernel = kernel_peer(ns, "-u", port);
    socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    socket.send(b"who").unwrap();
    let mut buf = [0u8; 256];
    let (n, from) = socket.recv_from(&mut buf).expect("an answer to the connected UDP socket");
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert_eq!(from.ip(), std::net::IpAddr::V4(setup.vip), "{answer}");
    let task = answer.split_whitespace().next().unwrap().to_string();
    assert_eq!(address_of(&setup, &task), kernel, "the task the socket was pointed at answered");
    assert_eq!(socket.peer_addr().unwrap().ip(), std::net::IpAddr::V4(setup.vip));

    // An unconnected UDP socket's datagrams are left to the veth program (its own flow table):
    // they are answered, from the VIP.
    let (from, answer) = ns.run_inside(move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        socket.send_to(b"who", (vip, UDP_PORT)).unwrap();
        let mut buf = [0u8; 256];
        let (n, from) = socket.recv_from(&mut buf).expect("an answer to the unconnected UDP socket");
        (from, String::from_utf8_lossy(&buf[..n]).to_string())
    });
    assert_eq!(from.ip(), std::net::IpAddr::V4(setup.vip), "{answer}");
}

#[test]
fn an_agent_restart_reads_the_namespaces_again_and_a_drained_task_gets_no_new_socket() {
    let mut setup = setup("socklbre", 82, &[]);
    setup.cluster.node_mut(1).stop();
    setup.cluster.node_mut(1).start();
    setup.cluster.wait_for("2 healthy backends after the restart", Duration::from_secs(15), |c| {
        c.node(1).meshctl_ok(&["service", "ls"]).contains("2/2")
    });
    // The restarted agent knows the client's namespace again (cookies are never saved).
    setup.cluster.wait_for("connections balanced at the socket again", Duration::from_secs(10), |_| {
        let (_, kernel, _) = tcp_through_vip(&setup);
        kernel != setup.vip
    });
    // Drain web.2's node: new sockets all go to web.1.
    setup.cluster.node(1).meshctl_ok(&["node", "update", "--availability", "drain", "n2"]);
    let web1 = address_of(&setup, "web.1");
    setup.cluster.wait_for("new sockets only to web.1", Duration::from_secs(15), |_| {
        (0..12).all(|_| tcp_through_vip(&setup).1 == web1)
    });
}

#[test]
fn with_socket_lb_off_every_packet_is_balanced_at_the_veth() {
    let setup = setup("socklboff", 83, &["--socket-lb", "off"]);
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let (seen, kernel, answer) = tcp_through_vip(&setup);
        assert_eq!(seen, setup.vip);
        assert_eq!(kernel, setup.vip, "the socket goes to the VIP; the veth program translates");
        answered.insert(answer);
    }
    assert_eq!(answered.len(), 2, "{answered:?}");
    assert!(tracked_flows(&setup.cluster) >= 1, "the veth program tracked the flows");
}
