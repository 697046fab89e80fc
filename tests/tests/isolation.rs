//! Isolation against containers and underlay hosts (issue 12): what an unprivileged process in a
//! container, or a host on the underlay that is not a node, can try, and that it gets nowhere.
//! Real meshd processes; attackers run as uid 65534 inside container namespaces.

use std::time::Duration;

use meshd_tests::attack::{drops, python_as_nobody, python_as_root, Capture, CRAFT_VXLAN};
use meshd_tests::command::describe_failure;
use meshd_tests::Cluster;

fn network_vni(cluster: &Cluster, name: &str) -> u32 {
    let ls = cluster.node(1).meshctl_ok(&["--format", "json", "network", "ls"]);
    let nets: serde_json::Value = serde_json::from_str(&ls).unwrap();
    nets.as_array().unwrap().iter().find(|n| n["name"] == name).unwrap()["vni"].as_u64().unwrap() as u32
}

fn stats(cluster: &Cluster, node: usize) -> String {
    cluster.node(node).meshctl_ok(&["--format", "json", "stats"])
}

/// Sends one crafted VXLAN datagram (three copies) per target; panics if the sender failed.
fn inject(out: std::process::Output, what: &str) {
    assert!(out.status.success(), "{}", describe_failure(what, &out));
}

#[test]
fn vxlan_injection_from_containers_and_underlay_hosts_reaches_no_one() {
    let mut cluster = Cluster::new("vxinject", 2);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.61.0.0/24"]);
    cluster.node(1).meshctl_ok(&["network", "create", "back", "--subnet", "10.62.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "back");
    let back_vni = network_vni(&cluster, "back").to_string();
    let front_vni = network_vni(&cluster, "front").to_string();

    // The attacker on `front` on n1; victims on `back` on both nodes; a `front` endpoint on n2.
    let attacker = cluster.add_namespace("attacker");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &attacker, "--network", "front"]);
    let victim1 = cluster.add_namespace("victim1");
    let v1 =
        cluster.node(1).meshctl_ok(&["attach", "--netns", &victim1, "--network", "back"]).trim().to_string();
    let victim2 = cluster.add_namespace("victim2");
    let v2 =
        cluster.node(2).meshctl_ok(&["attach", "--netns", &victim2, "--network", "back"]).trim().to_string();
    let friend = cluster.add_namespace("friend");
    let f2 =
        cluster.node(2).meshctl_ok(&["attach", "--netns", &friend, "--network", "front"]).trim().to_string();
    let outsider = cluster.add_underlay_client();
    let (n1, n2) = (cluster.node(1).addr.to_string(), cluster.node(2).addr.to_string());
    cluster.wait_for("both back endpoints reachable", Duration::from_secs(10), |c| {
        c.namespace(&victim1).exec("ping", ["-c", "1", "-W", "1", &v2]).status.success()
    });

    let cap1 = Capture::start(cluster.namespace(&victim1), "udp port 9999");
    let cap2 = Capture::start(cluster.namespace(&victim2), "udp port 9999");

    // 1. From inside the container, unprivileged: B's VNI to the gateway and to both nodes'
    //    underlay addresses, with a spoofed inner source and with the container's own.
    let a = cluster.namespace(&attacker);
    for target in ["10.61.0.1", &n1, &n2] {
        for (inner_src, dst) in [("10.62.0.250", &v1), ("10.62.0.250", &v2), (&f2[..], &v1)] {
            inject(
                python_as_nobody(
                    a,
                    CRAFT_VXLAN,
                    &["udp", "-", target, &back_vni, inner_src, dst, "FROMCONTAINER"],
                ),
                "a crafted VXLAN datagram from the container",
            );
        }
    }
    // 2. From an underlay host that is not a node, as itself and spoofing n2's address.
    let x = &cluster.clients()[outsider].ns;
    for dst in [&v1, &v2] {
        inject(
            python_as_root(x, CRAFT_VXLAN, &["udp", "-", &n1, &back_vni, "10.62.0.250", dst, "FROMOUTSIDER"]),
            "VXLAN from a non-node",
        );
    }
    inject(
        python_as_root(x, CRAFT_VXLAN, &["raw", &n2, &n1, &back_vni, "10.62.0.250", &v1, "SPOOFEDNODE"]),
        "VXLAN with n2's address as its source",
    );
    inject(
        python_as_root(x, CRAFT_VXLAN, &["raw", &n2, &n1, &back_vni, &v2, &v1, "SPOOFEDNODE"]),
        "VXLAN with n2's address as its source and n2's endpoint inside",
    );
    // 3. A real node may tunnel to n1, but only for its own endpoints on their own network: n2
    //    sending as a `front` endpoint on B's VNI is dropped, as itself it arrives (the control:
    //    the same datagrams do arrive when the sender is allowed to send them).
    let n2ns = &cluster.node(2).ns;
    inject(python_as_root(n2ns, CRAFT_VXLAN, &["udp", "-", &n1, &back_vni, &f2, &v1, "WRONGNETWORK"]), "n2");
    inject(python_as_root(n2ns, CRAFT_VXLAN, &["udp", "-", &n1, &front_vni, &v2, &v1, "WRONGVNI"]), "n2");
    inject(python_as_root(n2ns, CRAFT_VXLAN, &["udp", "-", &n1, &back_vni, &v2, &v1, "CONTROL"]), "n2");
    assert!(cap1.wait_for("CONTROL", Duration::from_secs(5)), "the control arrived: {}", cap1.text());
    // Everything above was sent before the control; give the other paths a moment more.
    std::thread::sleep(Duration::from_millis(500));
    for (name, cap) in [("victim1", &cap1), ("victim2", &cap2)] {
        for marker in ["FROMCONTAINER", "FROMOUTSIDER", "SPOOFEDNODE", "WRONGNETWORK", "WRONGVNI"] {
            assert!(!cap.saw(marker), "{marker} reached {name}:\n{}", cap.text());
        }
    }

    // Each way in was counted: the container's datagrams at its veth (to the gateway: no
    // endpoint; to any node's VXLAN port: dropped as such), the outsider's and the spoofer's
    // before decapsulation on n1, n2's misaddressed ones after it.
    let s1 = stats(&cluster, 1);
    assert!(drops(&s1, "drop-tunnel-port") >= 18, "{s1}");
    assert!(drops(&s1, "drop-no-endpoint") >= 9, "{s1}");
    assert!(drops(&s1, "drop-not-a-node") >= 6, "{s1}");
    assert!(drops(&s1, "drop-spoofed") >= 6, "{s1}");
    assert!(drops(&s1, "drop-tunnel-spoofed") >= 6, "{s1}");

    // The node's own services are closed to the container (gossip over TCP and UDP here),
    // counted by meshd's nftables table; the container still reaches its network and the
    // underlay beyond the node (masquerade).
    let out = a.exec("setpriv", [
        "--reuid", "65534", "--regid", "65534", "--clear-groups", "/usr/bin/python3", "-c",
        "import socket,sys\nu=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nu.sendto(b'x',(sys.argv[1],7946))\n\
         t=socket.socket();t.settimeout(2)\ntry:\n t.connect((sys.argv[1],7946));print('connected')\nexcept Exception as e:print('refused',e)",
        &n1,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.starts_with("refused"), "the container reached n1's gossip port: {text}");
    let s1 = stats(&cluster, 1);
    assert!(drops(&s1, "drop-to-node") >= 2, "{s1}");
    assert!(a.exec("ping", ["-c", "1", "-W", "2", &f2]).status.success(), "its own network still works");
    let outside = cluster.clients()[outsider].addr.to_string();
    assert!(a.exec("ping", ["-c", "1", "-W", "2", &outside]).status.success(), "and the underlay");
}

/// dnsmasq as the nodes' upstream resolver, in an underlay host's namespace; killed on drop.
struct Upstream(std::process::Child);

impl Upstream {
    fn start(cluster: &Cluster, client: usize, rules: &[&str]) -> Upstream {
        let ns = cluster.clients()[client].ns.name().to_string();
        let ip = cluster.clients()[client].addr.to_string();
        let child = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "dnsmasq",
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
            ])
            .arg(format!("--listen-address={ip}"))
            .args(rules)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq (apt-get install dnsmasq-base)");
        std::fs::write(cluster.work_dir().join("resolv.conf"), format!("nameserver {ip}\n")).unwrap();
        Upstream(child)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dig(ns: &meshd_tests::Netns, args: &[&str]) -> String {
    let mut all = vec!["@127.0.0.11", "+time=2", "+tries=1"];
    all.extend_from_slice(args);
    meshd_tests::command::stdout(&ns.exec("dig", all))
}

fn short(ns: &meshd_tests::Netns, name: &str) -> String {
    dig(ns, &["+short", name]).trim().to_string()
}

#[test]
fn names_of_the_cluster_never_hide_public_names() {
    let mut cluster = Cluster::new("dnshijack", 1);
    let upstream = cluster.add_underlay_client();
    let _dnsmasq =
        Upstream::start(&cluster, upstream, &["--address=/com/192.0.2.55", "--address=/org/192.0.2.56"]);
    cluster.form();
    let n1 = cluster.node(1);
    // A network named like a public top-level domain is allowed; its names have no `.com` form.
    n1.meshctl_ok(&["network", "create", "com", "--subnet", "10.63.0.0/24"]);
    n1.meshctl_ok(&["network", "create", "front", "--subnet", "10.64.0.0/24"]);
    n1.meshctl_ok(&["service", "create", "example", "--network", "com"]);
    for (args, expected) in [
        (&["network", "create", "a.b", "--subnet", "10.65.0.0/24"][..], "invalid network name \"a.b\""),
        (&["service", "create", "x.y", "--network", "front"], "invalid service name \"x.y\""),
    ] {
        let out = n1.meshctl(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            meshd_tests::command::stderr(&out).contains(expected),
            "{}",
            meshd_tests::command::stderr(&out)
        );
    }
    let on_com = cluster.add_namespace("oncom");
    let www = cluster
        .node(1)
        .meshctl_ok(&[
            "attach",
            "--netns",
            &on_com,
            "--network",
            "com",
            "--service",
            "example",
            "--name",
            "www",
        ])
        .trim()
        .to_string();
    let on_front = cluster.add_namespace("onfront");
    // A task named like a public domain is refused, with a reason, and nothing is attached.
    let out = cluster.node(1).meshctl(&[
        "attach",
        "--netns",
        &on_front,
        "--network",
        "front",
        "--name",
        "example.org",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = meshd_tests::command::stderr(&out);
    assert!(
        err.contains("invalid task name \"example.org\"") && err.contains("public top-level domain"),
        "{err}"
    );
    cluster.node(1).meshctl_ok(&["attach", "--netns", &on_front, "--network", "front", "--name", "web.1"]);

    let (c, f) = (cluster.namespace(&on_com), cluster.namespace(&on_front));
    cluster.wait_for("www known", Duration::from_secs(10), |_| short(c, "www") == www);
    // Names under `com` and under `example.org` go upstream, for every namespace, also the
    // namespace on `com` with a service `example` and a task `www`.
    for ns in [c, f] {
        for name in ["example.com", "www.com", "anything.com", "x.example.com"] {
            assert_eq!(short(ns, name), "192.0.2.55", "{name}");
        }
        for name in ["example.org", "www.example.org"] {
            assert_eq!(short(ns, name), "192.0.2.56", "{name}");
        }
    }
    // The cluster's own names keep working, scoped as before.
    assert!(!short(c, "example").is_empty());
    assert!(dig(f, &["example"]).contains("status: NXDOMAIN"), "out of scope");
    assert!(dig(c, &["web.1.front"]).contains("status: NXDOMAIN"), "a private suffix is never forwarded");
    assert!(!short(f, "web.1.front").is_empty());
}

/// Sends a query per 2 ms for `secs` for names an upstream never answers, after opening 1,000 TCP
/// connections to the embedded DNS and holding them; prints `ready` once they are open.
const DNS_FLOOD: &str = r#"
import resource, socket, struct, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
conns = []
for i in range(1000):
    s = socket.socket(); s.setblocking(False)
    try: s.connect(('127.0.0.11', 53))
    except BlockingIOError: pass
    conns.append(s)
print('ready', flush=True)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.setblocking(False)
end, n = time.time() + float(sys.argv[1]), 0
while time.time() < end:
    labels = [b'q%d' % n, b'blackhole', b'test']
    q = struct.pack('!HHHHHH', n & 0xffff, 0x0100, 1, 0, 0, 0)
    q += b''.join(bytes([len(l)]) + l for l in labels) + b'\0' + struct.pack('!HH', 1, 1)
    try: u.sendto(q, ('127.0.0.11', 53))
    except BlockingIOError: pass
    try:
        while True: u.recv(4096)
    except BlockingIOError: pass
    n += 1
    time.sleep(0.002)
print('sent', n, flush=True)
"#;

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn one_namespace_cannot_starve_the_dns_of_the_others() {
    let mut cluster = Cluster::new("dnsstarve", 1);
    let upstream = cluster.add_underlay_client();
    // An upstream that answers `upstream.test` and sends `blackhole.test` to a socket that never
    // answers (it never reads), so those lookups hold their forwarding slots until they time out.
    let silent =
        cluster.clients()[upstream].ns.run_inside(|| std::net::UdpSocket::bind("127.0.0.1:5399").unwrap());
    let _dnsmasq = Upstream::start(
        &cluster,
        upstream,
        &["--address=/upstream.test/192.0.2.44", "--server=/blackhole.test/127.0.0.1#5399"],
    );
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.66.0.0/24"]);
    cluster.node(1).meshctl_ok(&["service", "create", "web", "--network", "front"]);
    let greedy = cluster.add_namespace("greedy");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &greedy, "--network", "front"]);
    let victim = cluster.add_namespace("victim");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &victim, "--network", "front"]);
    let v = cluster.namespace(&victim);
    cluster.wait_for("web resolvable", Duration::from_secs(10), |_| !short(v, "web").is_empty());
    assert_eq!(short(v, "x.upstream.test"), "192.0.2.44");
    let pid = cluster.node(1).pid().expect("meshd runs");
    let before = open_files(pid);

    let mut flood = std::process::Command::new("ip")
        .args(["netns", "exec", &greedy, "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .args(["/usr/bin/python3", "-c", DNS_FLOOD, "12"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(flood.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the flood opened its connections");
    // Let the flood fill its slots (each held ~2 s by the silent upstream).
    cluster.wait_for("the greedy namespace over its forwarding share", Duration::from_secs(10), |c| {
        let stats: serde_json::Value =
            serde_json::from_str(&c.node(1).meshctl_ok(&["--format", "json", "stats"])).unwrap();
        let get = |name: &str| {
            stats["dns"].as_array().unwrap().iter().find(|r| r["name"] == name).unwrap()["value"]
                .as_u64()
                .unwrap()
        };
        get("forward_busy_namespace") > 0 && get("tcp_refused_namespace") > 0
    });

    // The other namespace's lookups, local and forwarded, over UDP and TCP, keep answering
    // within dig's 2 s (a stall would time out), and meshd's descriptors stay bounded.
    let mut slowest = Duration::ZERO;
    let mut most_files = 0;
    for round in 0..10 {
        for (name, expect) in [("web", None), ("x.upstream.test", Some("192.0.2.44"))] {
            for tcp in [false, true] {
                let started = std::time::Instant::now();
                let answer = if tcp { dig(v, &["+tcp", "+short", name]) } else { dig(v, &["+short", name]) };
                slowest = slowest.max(started.elapsed());
                let answer = answer.trim();
                assert!(!answer.is_empty(), "round {round}: {name} (tcp: {tcp}) got no answer");
                if let Some(expect) = expect {
                    assert_eq!(answer, expect);
                }
            }
        }
        most_files = most_files.max(open_files(pid));
    }
    eprintln!("slowest lookup under the flood: {slowest:?}; meshd's files {before} -> at most {most_files}");
    assert!(
        most_files < before + meshd_dns_bound(),
        "meshd holds {most_files} files (from {before}) under 1,000 connections"
    );
    let _ = flood.kill();
    let _ = flood.wait();
    drop(silent);
}

/// Descriptors the DNS may hold for one flooding namespace: its forwarding slots (one socket
/// each), its TCP connections and the refusals in progress, with room for the rest of meshd.
fn meshd_dns_bound() -> usize {
    64 + 16 + 8 + 40
}

/// Sends one datagram per (source port, destination port) from `socks` sockets (each its own
/// source port) to every port in FIRST..FIRST+PORTS-1 of the VIP: `socks` x `ports` distinct flows.
const UDP_FLOOD: &str = r#"
import resource, socket, sys
vip, socks, first, ports = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(socks + 64, hard), hard))
ss = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(socks)]
for s in ss:
    s.bind(('0.0.0.0', 0)); s.setblocking(False)
sent = 0
for port in range(first, first + ports):
    for s in ss:
        try:
            s.sendto(b'x', (vip, port)); sent += 1
        except (BlockingIOError, ConnectionRefusedError):
            pass
print(sent)
"#;

fn service_vip(cluster: &Cluster, service: &str) -> String {
    let ls = cluster.node(1).meshctl_ok(&["--format", "json", "service", "ls"]);
    let services: serde_json::Value = serde_json::from_str(&ls).unwrap();
    services.as_array().unwrap().iter().find(|s| s["name"] == service).unwrap()["vip"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_flow_flood_from_one_container_breaks_no_one_elses_connection() {
    let mut cluster = Cluster::new("flowflood", 2);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.67.0.0/16"]);
    cluster.node(1).meshctl_ok(&["service", "create", "web", "--network", "front"]);
    cluster.node(1).meshctl_ok(&["service", "create", "sink", "--network", "front"]);
    cluster.wait_listed(&["service", "ls"], "sink");
    let web = cluster.add_namespace("web");
    cluster.node(2).meshctl_ok(&["attach", "--netns", &web, "--network", "front", "--service", "web"]);
    let _http = meshd_tests::http::NamedServer::start(cluster.namespace(&web), 80, "web.1");
    // The flood's target answers every datagram, so the flood's replies are real too.
    let sink = cluster.add_namespace("sink");
    cluster.node(2).meshctl_ok(&["attach", "--netns", &sink, "--network", "front", "--service", "sink"]);
    let mut echo = std::process::Command::new("ip")
        .args(["netns", "exec", &sink, "/usr/bin/python3", "-c", UDP_ECHO, "2001", "300"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (web_vip, sink_vip) = (service_vip(&cluster, "web"), service_vip(&cluster, "sink"));
    // Both clients on n1: they share its node, its programs and its maps.
    let victim = cluster.add_namespace("victim");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &victim, "--network", "front"]);
    let attacker = cluster.add_namespace("attacker");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &attacker, "--network", "front"]);
    cluster.wait_for("web's task in n1's table", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["service", "ls"]).matches("1/1").count() == 2
    });

    // The victim's keep-alive connection through web's VIP, asking every 20 ms.
    let vip: std::net::Ipv4Addr = web_vip.parse().unwrap();
    let stream =
        cluster.namespace(&victim).run_inside(move || std::net::TcpStream::connect((vip, 80)).unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asking = {
        let (mut stream, stop) = (stream, stop.clone());
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    meshd_tests::http::request(&mut stream)
                })) {
                    Ok(answer) if answer == "web.1" => ok += 1,
                    Ok(other) => failed.push(other),
                    Err(_) => {
                        failed.push("no answer".to_string());
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (ok, failed)
        })
    };

    // 300,000 distinct flows (1,000 source ports x 300 destination ports) to sink's VIP from
    // one unprivileged process: more than the node's old shared table held (262,144).
    let out = meshd_tests::attack::python_as_nobody(
        cluster.namespace(&attacker),
        UDP_FLOOD,
        &[&sink_vip, "1000", "2001", "300"],
    );
    assert!(out.status.success(), "{}", describe_failure("the flood", &out));
    let sent: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    assert!(sent > 250_000, "the flood sent {sent} datagrams");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = asking.join().unwrap();
    eprintln!("flood: {sent} datagrams; the victim's connection answered {ok} requests meanwhile");
    assert!(failed.is_empty(), "the victim's keep-alive connection broke: {failed:?}");
    assert!(ok > 10, "the victim kept asking ({ok})");
    // The victim's connection still works after the flood, and so do new ones.
    let out =
        cluster.namespace(&victim).exec("curl", ["-s", "--max-time", "3", &format!("http://{web_vip}/")]);
    assert_eq!(meshd_tests::command::stdout(&out).trim(), "web.1");
    let _ = echo.kill();
    let _ = echo.wait();
}

/// Answers every datagram on ports FIRST..FIRST+COUNT-1 with an empty one (runs until killed).
const UDP_ECHO: &str = r#"
import selectors, socket, sys
first, count = int(sys.argv[1]), int(sys.argv[2])
sel = selectors.DefaultSelector()
for port in range(first, first + count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', port)); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        try:
            while True:
                data, peer = key.fileobj.recvfrom(64); key.fileobj.sendto(b'', peer)
        except BlockingIOError:
            pass
"#;

#[test]
fn a_container_reaches_its_own_nodes_published_port_and_closed_sockets_free_their_translation() {
    let mut cluster = Cluster::new("hairpin", 2);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.68.0.0/24"]);
    cluster.node(1).meshctl_ok(&["service", "create", "web", "--network", "front", "--publish", "8080:80"]);
    cluster.wait_listed(&["service", "ls"], "8080:80/tcp");
    let mut servers = Vec::new();
    for node in [1, 2] {
        let task = format!("web.{node}");
        let (ns, _) = cluster.attach_task(node, &format!("web{node}"), "front", "web", &task);
        servers.push(meshd_tests::http::NamedServer::start(cluster.namespace(&ns), 80, &task));
    }
    cluster.wait_for("two backends on n1", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["service", "ls"]).contains("2/2")
    });
    let client = cluster.add_namespace("client");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &client, "--network", "front"]);
    let c = cluster.namespace(&client);
    // Its own node's published port (hairpin), and another node's (through the underlay).
    for node in [1, 2] {
        let url = format!("http://{}:8080/", cluster.node(node).addr);
        let seen = meshd_tests::load::spread(c, &url, 12);
        assert!(!seen.contains_key("FAILED") && seen.len() == 2, "via n{node}: {seen:?}");
    }
    // Balanced at connect() (sock.bpf.c frontend_to_backend): no packet needed the veth
    // program's per-packet hairpin (its rows are in ebpf/tests/packets).
    let stats = cluster.node(1).meshctl_ok(&["stats"]);
    assert!(!stats.contains("hairpin"), "{stats}");

    // The node's own clients: every closed socket's translation is freed at once.
    let n1 = &cluster.node(1).ns;
    let seen = meshd_tests::load::spread(n1, "http://127.0.0.1:8080/", 8);
    assert!(!seen.contains_key("FAILED"), "{seen:?}");
    let pins = cluster.node(1).pin_dir().unwrap();
    cluster.wait_for("no socket translation left", Duration::from_secs(5), |_| {
        meshd_tests::sock_tables::sizes(&pins).iter().all(|n| *n == 0)
    });
}

/// Connects to ADDR:PORT, sends COUNT bytes, closes its side and prints what the server says
/// (the number of bytes it got); times out after 15 s.
const SEND_BYTES: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=15)
s.sendall(b'x' * int(sys.argv[3]))
s.shutdown(socket.SHUT_WR)
print(s.recv(64).decode().strip())
"#;

#[test]
fn path_mtu_discovery_works_through_a_vip_and_a_published_port() {
    let mut cluster = Cluster::new("pmtu", 2);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.69.0.0/24"]);
    cluster.node(1).meshctl_ok(&["service", "create", "gw", "--network", "front", "--publish", "8080:80"]);
    cluster.wait_listed(&["service", "ls"], "8080:80/tcp");
    // The task on n2 is a gateway: it forwards port 80 to a server behind a 1200-byte link, so
    // a full-size segment from a client makes it answer "fragmentation needed" (as a router
    // would), about the packet as it got it: to the task's own address and port.
    let gw = cluster.add_namespace("gw");
    cluster.node(2).meshctl_ok(&["attach", "--netns", &gw, "--network", "front", "--service", "gw"]);
    let server = cluster.add_namespace("server");
    let g = cluster.namespace(&gw);
    g.ip(["link", "add", "vb", "type", "veth", "peer", "name", "eth0", "netns", &server]);
    g.ip(["addr", "add", "192.168.77.1/30", "dev", "vb"]);
    g.ip(["link", "set", "vb", "mtu", "1200", "up"]);
    let s = cluster.namespace(&server);
    s.ip(["addr", "add", "192.168.77.2/30", "dev", "eth0"]);
    s.ip(["link", "set", "eth0", "up"]);
    s.ip(["route", "add", "default", "via", "192.168.77.1"]);
    let out = g.exec("sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
    assert!(out.status.success(), "{}", describe_failure("ip_forward", &out));
    let rules = "table ip gw {\n chain pre { type nat hook prerouting priority dstnat; tcp dport 80 dnat to 192.168.77.2; }\n \
                 chain post { type nat hook postrouting priority srcnat; oifname \"vb\" masquerade; }\n}\n";
    let nft = std::process::Command::new("ip")
        .args(["netns", "exec", &gw, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(rules.as_bytes())?;
            child.wait()
        })
        .unwrap();
    assert!(nft.success(), "the gateway's nftables rules");
    // The server counts what it gets and says so.
    let listener = s.run_inside(|| std::net::TcpListener::bind("0.0.0.0:80").unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut stream = stream;
                let mut total = 0usize;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    total += n;
                }
                let _ = stream.write_all(format!("{total}\n").as_bytes());
            });
        }
    });
    cluster.wait_for("the gateway in n1's table", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["service", "ls"]).contains("1/1")
    });
    let vip = service_vip(&cluster, "gw");

    // A container on n1 through the VIP, and a host on the underlay through n1's published
    // port: both send 20,000 bytes in full-size segments, and get there only if the error
    // reaches their socket, translated (the VIP, or n1's address and port 8080).
    let client = cluster.add_namespace("client");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &client, "--network", "front"]);
    let out =
        meshd_tests::attack::python_as_nobody(cluster.namespace(&client), SEND_BYTES, &[&vip, "80", "20000"]);
    assert_eq!(
        meshd_tests::command::stdout(&out).trim(),
        "20000",
        "through the VIP: {}",
        describe_failure("send", &out)
    );
    let outsider = cluster.add_underlay_client();
    let n1 = cluster.node(1).addr.to_string();
    let out = meshd_tests::attack::python_as_nobody(
        &cluster.clients()[outsider].ns,
        SEND_BYTES,
        &[&n1, "8080", "20000"],
    );
    assert_eq!(
        meshd_tests::command::stdout(&out).trim(),
        "20000",
        "through the published port: {}",
        describe_failure("send", &out)
    );
    let stats = stats(&cluster, 1);
    assert!(drops(&stats, "icmp-rnat") >= 2, "{stats}");
}
