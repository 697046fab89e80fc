//! Issue 19, finding 7: one container cannot push another's sockets out of the socket LB.
//!
//! The socket programs remember, for every socket they point at a backend, the address it asked
//! for (the VIP), which getpeername() and the source of a received datagram show instead of the
//! backend's (sock.bpf.c). That memory is an LRU table; when it was one table for the whole node,
//! one unprivileged process that connect()ed a UDP socket to every port of a VIP (65,535
//! connects, not a packet sent) pushed every other container's entries out, and their sockets
//! then saw the backend as their peer. Each namespace now has a table of its own
//! (`md_sock_rnat_v3`, a hash of maps by namespace cookie): a sweep evicts only its own entries.

use std::net::{IpAddr, Ipv4Addr, TcpStream, UdpSocket};
use std::time::Duration;

use meshd_ebpf::mesh::SOCK_RNAT_PER_NETNS;
use meshd_tests::attack::python_as_nobody;
use meshd_tests::http::{request, NamedServer, UdpNamedServer};
use meshd_tests::{Cluster, Netns};

const TCP_PORT: u16 = 8080;
const UDP_PORT: u16 = 5300;

/// One UDP socket connect()ed to every port of the VIP in argv[1], ROUNDS times (argv[2]); prints
/// the number of connects. Sends nothing.
const SWEEP: &str = r#"
import socket, sys
vip, rounds = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n = 0
for _ in range(rounds):
    for port in range(1, 65536):
        s.connect((vip, port))
        n += 1
print(n)
"#;

fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(ip) => ip,
        other => panic!("{other}"),
    }
}

/// One node, service `web` on network `front` with one task (HTTP on 8080, a UDP responder on
/// 5300), and client namespaces attached to `front`, each already balanced at the socket.
struct Setup {
    cluster: Cluster,
    vip: Ipv4Addr,
    task: Ipv4Addr,
    clients: Vec<String>,
    _http: NamedServer,
    _udp: UdpNamedServer,
}

fn setup(tag: &str, clients: &[&str]) -> Setup {
    let mut cluster = Cluster::new(tag, 1);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.84.0.0/24"]);
    let created =
        cluster.node(1).meshctl_ok(&["--format", "json", "service", "create", "web", "--network", "front"]);
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let vip: Ipv4Addr = created[0]["vip"].as_str().unwrap().parse().unwrap();
    cluster.wait_listed(&["service", "ls"], "web");
    let (task_ns, task) = cluster.attach_task(1, "web1", "front", "web", "web.1");
    let http = NamedServer::start(cluster.namespace(&task_ns), TCP_PORT, "web.1");
    let udp = UdpNamedServer::start(cluster.namespace(&task_ns), UDP_PORT, "web.1");
    let clients: Vec<String> = clients
        .iter()
        .map(|tag| {
            let ns = cluster.add_namespace(tag);
            cluster.node(1).meshctl_ok(&["attach", "--netns", &ns, "--network", "front"]);
            ns
        })
        .collect();
    cluster.wait_for("web healthy", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["service", "ls"]).contains("1/1")
    });
    let setup = Setup { cluster, vip, task, clients, _http: http, _udp: udp };
    // Balanced at the socket once the agent has read the namespace's cookie.
    for ns in &setup.clients {
        setup.cluster.wait_for("sockets balanced at connect()", Duration::from_secs(10), |c| {
            setup.connect_tcp(c.namespace(ns)).1
        });
    }
    setup
}

impl Setup {
    /// A TCP connection to the VIP from `ns`, and whether it was balanced at the socket: its kernel
    /// destination is the task (ss reads it through sock_diag, which the socket programs leave
    /// alone).
    fn connect_tcp(&self, ns: &Netns) -> (TcpStream, bool) {
        let vip = self.vip;
        let tcp = ns.run_inside(move || TcpStream::connect((vip, TCP_PORT)).expect("connect to the VIP"));
        let port = tcp.local_addr().unwrap().port();
        let out = ns.exec("ss", ["-Hnt", "state", "established", "sport", "=", &format!(":{port}")]);
        let balanced = String::from_utf8_lossy(&out.stdout).contains(&format!("{}:{TCP_PORT}", self.task));
        (tcp, balanced)
    }

    /// A UDP socket in `ns` connected to the VIP (nothing sent yet).
    fn connect_udp(&self, ns: &Netns) -> UdpSocket {
        let vip = self.vip;
        let udp = ns.run_inside(move || {
            let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
            socket.connect((vip, UDP_PORT)).unwrap();
            socket
        });
        udp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        udp
    }
}

/// Asks the task through the connected UDP socket; returns the answer's source (recvmsg).
fn ask_udp(udp: &UdpSocket) -> Ipv4Addr {
    udp.send(b"who").unwrap();
    let mut buf = [0u8; 256];
    let (n, from) = udp.recv_from(&mut buf).expect("an answer to the connected UDP socket");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("web.1"));
    v4(from.ip())
}

#[test]
fn a_containers_connect_sweep_leaves_another_containers_sockets_showing_the_vip() {
    let setup = setup("hsocklb", &["victim", "sweeper"]);
    let (cluster, vip) = (&setup.cluster, setup.vip);
    let (victim, sweeper) = (cluster.namespace(&setup.clients[0]), cluster.namespace(&setup.clients[1]));

    // The victim's sockets: a TCP connection and a connected UDP socket. Not asked for their peer
    // yet: a lookup marks an LRU entry referenced, which the kernel's LRU keeps a while longer; a
    // client waiting for its first answer has done none.
    let (mut stream, balanced) = setup.connect_tcp(victim);
    assert!(balanced, "the victim's connection goes to the task from its first packet");
    let udp = setup.connect_udp(victim);

    // The sweep: an unprivileged process in another container, one UDP socket connect()ed to
    // every port of the VIP, twice (131,070 translations: twice the old node-wide table).
    let out = python_as_nobody(sweeper, SWEEP, &[&vip.to_string(), "2"]);
    assert!(out.status.success(), "the sweep: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "131070");

    // The victim's sockets still show the VIP: getpeername() on both, and the source of a
    // datagram the task sends back (recvmsg).
    assert_eq!(v4(stream.peer_addr().unwrap().ip()), vip, "the TCP socket's peer after the sweep");
    assert_eq!(v4(udp.peer_addr().unwrap().ip()), vip, "the UDP socket's peer after the sweep");
    assert_eq!(request(&mut stream), "web.1", "the TCP connection still works");
    assert_eq!(ask_udp(&udp), vip, "the datagram's source after the sweep");

    // The kernel bounds each namespace's table: the sweeper's is full of its own entries and no
    // larger than its share; the victim's and the node's own are untouched by it.
    let sizes = meshd_tests::sock_tables::sizes(&cluster.node(1).pin_dir().unwrap());
    eprintln!("socket tables after the sweep (entries): {sizes:?}");
    assert_eq!(sizes.len(), 4, "the node's own table, the task's, the victim's and the sweeper's: {sizes:?}");
    assert!(sizes.iter().all(|n| *n <= SOCK_RNAT_PER_NETNS as usize), "{sizes:?}");
    assert!(
        sizes.iter().any(|n| *n >= SOCK_RNAT_PER_NETNS as usize / 2),
        "the sweeper's table filled up: {sizes:?}"
    );

    // A new socket of the victim is still balanced at the socket and shows the VIP.
    let (fresh, balanced) = setup.connect_tcp(victim);
    assert!(balanced);
    assert_eq!(v4(fresh.peer_addr().unwrap().ip()), vip);
}

#[test]
fn an_agent_restart_keeps_a_namespaces_socket_table_and_a_detach_drops_it() {
    let mut setup = setup("hsocklbre", &["client"]);
    let vip = setup.vip;
    let udp = setup.connect_udp(setup.cluster.namespace(&setup.clients[0]));
    let pins = setup.cluster.node(1).pin_dir().unwrap();
    // The node's own namespace, the task's and the client's.
    assert_eq!(meshd_tests::sock_tables::sizes(&pins).len(), 3);

    // The restarted agent finds the pinned tables and keeps them: the open socket still shows
    // the VIP, as peer and as the source of the task's answer.
    setup.cluster.node_mut(1).stop();
    setup.cluster.node_mut(1).start();
    setup.cluster.wait_for("web healthy after the restart", Duration::from_secs(15), |c| {
        c.node(1).meshctl_ok(&["service", "ls"]).contains("1/1")
    });
    let ns = setup.cluster.namespace(&setup.clients[0]);
    setup
        .cluster
        .wait_for("balanced at the socket again", Duration::from_secs(10), |_| setup.connect_tcp(ns).1);
    assert_eq!(v4(udp.peer_addr().unwrap().ip()), vip, "the open socket's peer after the restart");
    assert_eq!(ask_udp(&udp), vip, "the datagram's source after the restart");
    assert_eq!(meshd_tests::sock_tables::sizes(&pins).len(), 3);

    // A detached namespace's table goes with it.
    setup.cluster.node(1).meshctl_ok(&["detach", "--netns", &setup.clients[0]]);
    setup.cluster.wait_for("the client's table dropped", Duration::from_secs(10), |_| {
        meshd_tests::sock_tables::sizes(&pins).len() == 2
    });
}
