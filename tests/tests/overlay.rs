//! Overlay networks with real meshd processes and real clients: networks replicated, namespaces
//! attached on different nodes talking over VXLAN with eBPF forwarding, isolation between
//! networks, detach, and the VXLAN packets on the underlay.

use std::time::Duration;

use meshd_tests::command::{describe_failure, stderr, stdout};
use meshd_tests::{Cluster, Node};

fn attach(node: &Node, ns: &str, network: &str) -> String {
    node.meshctl_ok(&["attach", "--netns", ns, "--network", network]).trim().to_string()
}

fn ping(cluster: &Cluster, from: &str, to: &str) -> bool {
    let out = cluster.namespace(from).exec("ping", ["-c", "2", "-i", "0.2", "-W", "2", to]);
    if !out.status.success() {
        eprintln!("{}", describe_failure(&format!("ping {from} -> {to}"), &out));
    }
    out.status.success()
}

fn wait_network_everywhere(cluster: &Cluster, name: &str) {
    cluster.wait_listed(&["network", "ls"], name);
}

#[test]
fn namespaces_on_different_nodes_talk_and_networks_are_isolated() {
    let mut cluster = Cluster::new("overlay", 3);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.10.0.0/24"]);
    cluster.node(2).meshctl_ok(&["network", "create", "back", "--subnet", "10.20.0.0/24"]);
    wait_network_everywhere(&cluster, "front");
    wait_network_everywhere(&cluster, "back");

    let a = cluster.add_namespace("a");
    let b = cluster.add_namespace("b");
    let c = cluster.add_namespace("c");
    let d = cluster.add_namespace("d");
    let ip_a = attach(cluster.node(1), &a, "front");
    let ip_b = attach(cluster.node(2), &b, "front");
    let ip_c = attach(cluster.node(1), &c, "front");
    let ip_d = attach(cluster.node(3), &d, "back");
    assert!(ip_a.starts_with("10.10.0.") && ip_b.starts_with("10.10.0.") && ip_d.starts_with("10.20.0."));
    let ips = [&ip_a, &ip_b, &ip_c];
    assert_eq!(ips.iter().collect::<std::collections::BTreeSet<_>>().len(), 3, "distinct addresses");

    // The container side looks like Docker's: eth0, the overlay MTU, a default route.
    let link = cluster.namespace(&a).exec("ip", ["-o", "link", "show", "eth0"]);
    assert!(stdout(&link).contains("mtu 1450"), "{}", stdout(&link));
    let route = cluster.namespace(&a).exec("ip", ["route", "show", "default"]);
    assert!(stdout(&route).contains("via 10.10.0.1 dev eth0"), "{}", stdout(&route));

    cluster.wait_for("remote endpoints in the maps", Duration::from_secs(10), |cl| ping(cl, &a, &ip_b));
    assert!(ping(&cluster, &a, &ip_b), "across nodes");
    assert!(ping(&cluster, &b, &ip_a), "back");
    assert!(ping(&cluster, &a, &ip_c), "same node");
    assert!(!ping(&cluster, &a, &ip_d), "another network is unreachable");
    assert!(!ping(&cluster, &d, &ip_b), "and the other way");

    // TCP and UDP across nodes, with sockets opened inside the namespaces.
    let server = cluster.namespace(&b).run_inside(move || {
        let tcp = std::net::TcpListener::bind("0.0.0.0:7000").unwrap();
        let udp = std::net::UdpSocket::bind("0.0.0.0:7001").unwrap();
        (tcp, udp)
    });
    let target = ip_b.clone();
    let echo = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (tcp, udp) = server;
        let (mut stream, _) = tcp.accept().unwrap();
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).unwrap();
        stream.write_all(&buf).unwrap();
        let mut dgram = [0u8; 64];
        udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (n, from) = udp.recv_from(&mut dgram).unwrap();
        udp.send_to(&dgram[..n], from).unwrap();
    });
    let (tcp_reply, udp_reply) = cluster.namespace(&a).run_inside(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect((target.as_str(), 7000)).unwrap();
        stream.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).unwrap();
        let udp = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        udp.send_to(b"datagram", (target.as_str(), 7001)).unwrap();
        let mut dgram = [0u8; 64];
        let n = udp.recv(&mut dgram).unwrap();
        (buf.to_vec(), dgram[..n].to_vec())
    });
    echo.join().unwrap();
    assert_eq!(tcp_reply, b"hello");
    assert_eq!(udp_reply, b"datagram");

    // A 1400-byte packet with DF set crosses the overlay (MTU 1450).
    let big = cluster.namespace(&a).exec("ping", ["-c", "2", "-M", "do", "-s", "1372", "-W", "2", &ip_b]);
    assert!(big.status.success(), "{}", describe_failure("ping -M do -s 1372", &big));

    // Counters saw the decisions.
    let stats = cluster.node(1).meshctl_ok(&["stats"]);
    assert!(stats.contains("forward-tunnel") && stats.contains("arp-reply"), "{stats}");
    let stats = cluster.node(3).meshctl_ok(&["stats"]);
    assert!(
        stats.contains("drop-network-mismatch")
            || stats.contains("drop-vni-mismatch")
            || stats.contains("drop-no-endpoint"),
        "{stats}"
    );

    // Detach: unreachable, and the address comes back.
    cluster.node(2).meshctl_ok(&["detach", "--netns", &b]);
    cluster.wait_for("b gone from n1's maps", Duration::from_secs(10), |cl| !ping(cl, &a, &ip_b));
    let e = cluster.add_namespace("e");
    let ip_e = attach(cluster.node(2), &e, "front");
    assert_eq!(ip_e, ip_b, "the freed address is handed out again by its block's owner");
    cluster.wait_for("e reachable", Duration::from_secs(10), |cl| ping(cl, &a, &ip_e));
}

#[test]
fn network_commands_validate_and_replicate() {
    let mut cluster = Cluster::new("netcmd", 2);
    cluster.form();
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "front", "--subnet", "10.30.0.0/24"]);
    // Exit 1: refused by the cluster's rules; exit 2: refused by meshctl as a bad argument value,
    // before any request is sent (subnets are typed where requests enter).
    for (args, code, expected) in [
        (&["network", "create", "front", "--subnet", "10.31.0.0/24"][..], 1, "already exists"),
        (&["network", "create", "other", "--subnet", "10.30.0.128/25"], 1, "overlaps network \"front\""),
        (&["network", "create", "bad", "--subnet", "10.32.0.0"], 2, "invalid subnet"),
        (&["network", "create", "bad", "--subnet", "10.32.0.1/24"], 2, "has host bits set"),
        (&["network", "create", "bad name", "--subnet", "10.33.0.0/24"], 1, "invalid network name"),
        (&["network", "rm", "nope"], 1, "no network named"),
        (&["attach", "--netns", "no-such-ns", "--network", "front"], 1, "no-such-ns"),
        (&["attach", "--netns", "/proc/self/ns/net", "--network", "nope"], 1, "no network named"),
    ] {
        let out = n1.meshctl(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
    wait_network_everywhere(&cluster, "front");
    let ls = cluster.node(2).meshctl_ok(&["--format", "json", "network", "ls"]);
    let nets: serde_json::Value = serde_json::from_str(&ls).unwrap();
    assert_eq!(nets[0]["name"], "front");
    assert_eq!(nets[0]["subnet"], "10.30.0.0/24");
    assert_eq!(nets[0]["gateway"], "10.30.0.1");

    // In use: refused; empty: removed everywhere.
    let ns = cluster.add_namespace("x");
    attach(cluster.node(2), &ns, "front");
    cluster.wait_for("the endpoint on n1", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["--format", "json", "network", "ls"]).contains("\"endpoints\": 1")
    });
    let out = cluster.node(1).meshctl(&["network", "rm", "front"]);
    assert!(stderr(&out).contains("still has 1 attached endpoint"), "{}", stderr(&out));
    cluster.node(2).meshctl_ok(&["detach", "--netns", &ns]);
    cluster.wait_for("the detach on n1", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["--format", "json", "network", "ls"]).contains("\"endpoints\": 0")
    });
    cluster.node(1).meshctl_ok(&["network", "rm", "front"]);
    cluster.wait_for("removed on n2", Duration::from_secs(10), |c| {
        !c.node(2).meshctl_ok(&["network", "ls"]).contains("front")
    });
}

/// Sends a ping every 10 ms for `count` pings; returns the number lost.
fn lost_pings(cluster: &Cluster, from: &str, to: &str, count: u32) -> u32 {
    let out =
        cluster.namespace(from).exec("ping", ["-q", "-i", "0.01", "-W", "1", "-c", &count.to_string(), to]);
    let text = stdout(&out);
    let received = text
        .split(',')
        .find(|part| part.contains("received"))
        .and_then(|part| part.split_whitespace().next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    count - received
}

#[test]
fn restarting_meshd_loses_no_packet_and_tunnels_use_udp_4789() {
    let mut cluster = Cluster::new("restartdp", 2);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.40.0.0/24"]);
    wait_network_everywhere(&cluster, "front");
    let a = cluster.add_namespace("a");
    let b = cluster.add_namespace("b");
    attach(cluster.node(1), &a, "front");
    let ip_b = attach(cluster.node(2), &b, "front");
    cluster.wait_for("a reaches b", Duration::from_secs(10), |cl| ping(cl, &a, &ip_b));

    // The tunnel on the wire: VXLAN on UDP 4789 between the nodes' underlay addresses.
    let capture = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            cluster.underlay().name(),
            "timeout",
            "5",
            "tcpdump",
            "-n",
            "-i",
            "br0",
            "-c",
            "2",
        ])
        .args(["udp", "port", "4789"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(ping(&cluster, &a, &ip_b));
    let captured = String::from_utf8_lossy(&capture.wait_with_output().unwrap().stdout).into_owned();
    assert!(
        captured.contains("10.77.0.1") && captured.contains(".4789") && captured.contains("VXLAN"),
        "{captured}"
    );

    // Restart both agents while a ping runs every 10 ms: not one may be lost.
    let pinger = {
        let ns = a.clone();
        let to = ip_b.clone();
        std::thread::spawn(move || {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &ns, "ping", "-q", "-i", "0.01", "-W", "1", "-c", "400", &to])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    for i in [1, 2] {
        cluster.node_mut(i).stop();
        std::thread::sleep(Duration::from_millis(300));
        cluster.node_mut(i).start();
    }
    let summary = pinger.join().unwrap();
    assert!(summary.contains(" 0% packet loss"), "{summary}");
    assert_eq!(lost_pings(&cluster, &a, &ip_b, 50), 0, "still forwarding after the restarts");
}

#[test]
fn concurrent_attaches_never_collide_and_leavers_take_their_endpoints() {
    let mut cluster = Cluster::new("concurrent", 3);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.50.0.0/24"]);
    wait_network_everywhere(&cluster, "front");
    let names: Vec<String> = (0..9).map(|i| cluster.add_namespace(&format!("c{i}"))).collect();
    let sockets: Vec<std::path::PathBuf> = cluster.nodes().iter().map(|n| n.socket().to_path_buf()).collect();
    let meshctl = meshd_tests::binaries::meshctl();
    let handles: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let (socket, ns, meshctl) = (sockets[i % 3].clone(), ns.clone(), meshctl.clone());
            std::thread::spawn(move || {
                let out = std::process::Command::new(meshctl)
                    .arg("--socket")
                    .arg(socket)
                    .args(["attach", "--netns", &ns, "--network", "front"])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            })
        })
        .collect();
    let addresses: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let unique: std::collections::BTreeSet<&String> = addresses.iter().collect();
    assert_eq!(unique.len(), addresses.len(), "no address handed out twice: {addresses:?}");

    // Every namespace reaches every other (n1's first to all).
    cluster.wait_for("full mesh", Duration::from_secs(15), |cl| {
        addresses.iter().skip(1).all(|ip| lost_pings(cl, &names[0], ip, 2) == 0)
    });

    // Masquerade: a namespace reaches a host on the underlay through its node.
    let client = cluster.add_underlay_client();
    let outside = cluster.clients()[client].addr.to_string();
    assert!(ping(&cluster, &names[0], &outside), "overlay -> underlay through the node");

    // n3 leaves: its endpoints leave every other node's maps.
    let n3_address = addresses[2].clone();
    cluster.node(3).meshctl_ok(&["leave"]);
    cluster.wait_for("n3's endpoints gone from n1", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["--format", "json", "network", "ls"]).contains("\"endpoints\": 6")
    });
    assert!(!ping(&cluster, &names[0], &n3_address), "a departed node's endpoint is unreachable");
}

/// Packets counted under `verdict` in `direction` on `interface` by the node's programs.
fn verdict_packets(node: &Node, interface: &str, direction: &str, verdict: &str) -> u64 {
    let json: serde_json::Value =
        serde_json::from_str(&node.meshctl_ok(&["--format", "json", "stats"])).expect("stats as JSON");
    json["datapath"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["interface"] == interface && c["direction"] == direction && c["verdict"] == verdict)
        .filter_map(|c| c["packets"].as_u64())
        .sum()
}

/// Packets the node's VXLAN device sent (the kernel's count, not a program's).
fn vxlan_device_tx(node: &Node) -> u64 {
    let out = node.ns.ip(["-s", "-j", "link", "show", "md-vxlan"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j");
    json[0]["stats64"]["tx"]["packets"].as_u64().expect("tx packets")
}

/// Sends `len` bytes over TCP from namespace `from` to `to_ip:port` (a server in `to`), which
/// echoes a checksum back: bulk data with GSO super-packets across the tunnel.
fn bulk_tcp(cluster: &Cluster, from: &str, to: &str, to_ip: &str, port: u16, len: usize) {
    let server =
        cluster.namespace(to).run_inside(move || std::net::TcpListener::bind(("0.0.0.0", port)).unwrap());
    let reader = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = server.accept().unwrap();
        let mut data = Vec::new();
        stream.read_to_end(&mut data).unwrap();
        let sum: u64 = data.iter().enumerate().map(|(i, b)| (i as u64 + 1) * u64::from(*b)).sum();
        stream.write_all(format!("{} {sum}", data.len()).as_bytes()).unwrap();
    });
    let target = to_ip.to_string();
    let (echo, expected) = cluster.namespace(from).run_inside(move || {
        use std::io::{Read, Write};
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 1000) as u8).collect();
        let expected: u64 = data.iter().enumerate().map(|(i, b)| (i as u64 + 1) * u64::from(*b)).sum();
        let mut stream = std::net::TcpStream::connect((target.as_str(), port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.write_all(&data).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut echo = String::new();
        stream.read_to_string(&mut echo).unwrap();
        (echo, format!("{len} {expected}"))
    });
    reader.join().unwrap();
    assert_eq!(echo, expected, "{len} bytes {from} -> {to_ip} arrived intact");
}

#[test]
fn fast_path_and_vxlan_device_fallback_interoperate() {
    // n1 encapsulates and decapsulates in its programs (the default); n2 runs with the fast
    // path off, through its VXLAN device: each side must understand the other's packets.
    let mut cluster = Cluster::new("fastpath", 2);
    cluster.form_per_node(|i| if i == 2 { vec!["--overlay-fast-path".into(), "off".into()] } else { vec![] });
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.45.0.0/24"]);
    wait_network_everywhere(&cluster, "front");
    let a = cluster.add_namespace("a");
    let b = cluster.add_namespace("b");
    let ip_a = attach(cluster.node(1), &a, "front");
    let ip_b = attach(cluster.node(2), &b, "front");
    cluster.wait_for("a reaches b", Duration::from_secs(10), |cl| ping(cl, &a, &ip_b));
    cluster.wait_for("b reaches a", Duration::from_secs(10), |cl| ping(cl, &b, &ip_a));
    let n1_device_before = vxlan_device_tx(cluster.node(1));
    let n2_device_before = vxlan_device_tx(cluster.node(2));

    assert_eq!(lost_pings(&cluster, &a, &ip_b, 100), 0, "a -> b");
    let big = cluster.namespace(&a).exec("ping", ["-c", "3", "-M", "do", "-s", "1372", "-W", "2", &ip_b]);
    assert!(big.status.success(), "{}", describe_failure("ping -M do -s 1372", &big));
    bulk_tcp(&cluster, &a, &b, &ip_b, 7100, 8 << 20);
    bulk_tcp(&cluster, &b, &a, &ip_a, 7101, 8 << 20);

    // n1's side of it went the fast path: delivered from its underlay interface (eth0), and its
    // VXLAN device sent (almost) nothing while n2's sent every packet of b's.
    assert!(
        verdict_packets(cluster.node(1), "eth0", "from-tunnel", "deliver-tunnel") > 100,
        "{}",
        cluster.node(1).meshctl_ok(&["stats"])
    );
    let n1_device = vxlan_device_tx(cluster.node(1)) - n1_device_before;
    let n2_device = vxlan_device_tx(cluster.node(2)) - n2_device_before;
    assert!(n1_device < 10, "n1's VXLAN device sent {n1_device} packets");
    assert!(n2_device > 100, "n2's VXLAN device sent {n2_device} packets");
    // n2 (off) never took it.
    assert_eq!(verdict_packets(cluster.node(2), "eth0", "from-tunnel", "deliver-tunnel"), 0);
    assert!(verdict_packets(cluster.node(2), "md-vxlan", "from-tunnel", "deliver-tunnel") > 100);

    // Isolation holds on the fast path: a namespace of another network on n2 cannot reach a.
    cluster.node(2).meshctl_ok(&["network", "create", "back", "--subnet", "10.46.0.0/24"]);
    wait_network_everywhere(&cluster, "back");
    let d = cluster.add_namespace("d");
    attach(cluster.node(2), &d, "back");
    assert!(!ping(&cluster, &d, &ip_a), "another network is unreachable");
}
