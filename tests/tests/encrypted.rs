//! Encrypted overlay networks (`--opt encrypted`) with real meshd processes, the real userspace
//! WireGuard engine (wireguard-go) and tcpdump on the underlay bridge: what crosses the wire for
//! an encrypted network is WireGuard only (no VXLAN of its VNI, no payload), while a plain network
//! in the same run shows both; a killed engine lets nothing out in clear, is counted, and comes
//! back by itself; a node that joins after the network exists reaches the others.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use meshd_tests::attack::drops;
use meshd_tests::command::{describe_failure, stdout};
use meshd_tests::{Cluster, Node};

const SECRET: &[u8] = b"MESHD-SECRET-MARKER-7f3a";
const PLAIN: &[u8] = b"MESHD-PLAIN-MARKER-41c9";

fn attach(node: &Node, ns: &str, network: &str) -> String {
    node.meshctl_ok(&["attach", "--netns", ns, "--network", network]).trim().to_string()
}

fn ping(cluster: &Cluster, from: &str, to: &str) -> bool {
    let out = cluster.namespace(from).exec("ping", ["-c", "1", "-W", "1", to]);
    out.status.success()
}

/// The VNI of `network` as `network ls` shows it.
fn vni_of(node: &Node, network: &str) -> u64 {
    let ls: serde_json::Value =
        serde_json::from_str(&node.meshctl_ok(&["--format", "json", "network", "ls"])).unwrap();
    ls.as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == network)
        .and_then(|n| n["vni"].as_u64())
        .unwrap_or_else(|| panic!("no network {network} in {ls}"))
}

/// A packet capture of everything on the underlay bridge, into a file.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(cluster: &Cluster, name: &str) -> Capture {
        let file = cluster.work_dir().join(format!("{name}.pcap"));
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                cluster.underlay().name(),
                "tcpdump",
                "-n",
                "-U",
                "-s",
                "0",
                "-i",
                "br0",
                "-w",
            ])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // tcpdump needs a moment before it captures.
        std::thread::sleep(Duration::from_millis(800));
        Capture { child, file }
    }

    /// Stops the capture and returns the file's bytes and tcpdump's reading of it.
    fn finish(mut self) -> (Vec<u8>, String) {
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        let bytes = std::fs::read(&self.file).unwrap();
        let text = read_capture(&self.file);
        (bytes, text)
    }
}

fn read_capture(file: &Path) -> String {
    let out = Command::new("tcpdump").args(["-n", "-r"]).arg(file).output().unwrap();
    stdout(&out)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Sends `payload` over UDP from namespace `from` to `to:port` a few times.
fn send_udp(cluster: &Cluster, from: &str, to: &str, port: u16, payload: &'static [u8]) {
    let to = to.to_string();
    cluster.namespace(from).run_inside(move || {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..5 {
            socket.send_to(payload, (to.as_str(), port)).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}

/// The packets node `node` counted for `reason` (`meshctl stats`, summed over interfaces).
fn counted(node: &Node, reason: &str) -> u64 {
    drops(&node.meshctl_ok(&["--format", "json", "stats"]), reason)
}

#[test]
fn encrypted_networks_cross_the_underlay_only_inside_wireguard() {
    let mut cluster = Cluster::new("encrypt", 2);
    cluster.form();
    cluster.node(1).meshctl_ok(&[
        "network",
        "create",
        "sec",
        "--subnet",
        "10.51.0.0/24",
        "--opt",
        "encrypted",
    ]);
    cluster.node(1).meshctl_ok(&["network", "create", "plain", "--subnet", "10.52.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "sec");
    cluster.wait_listed(&["network", "ls"], "plain");

    // Shown by ls and inspect; every node names its engine.
    let ls = cluster.node(2).meshctl_ok(&["network", "ls"]);
    assert!(ls.lines().any(|l| l.contains("sec") && l.contains("encrypted")), "{ls}");
    assert!(!ls.lines().any(|l| l.contains("plain") && l.contains("encrypted")), "{ls}");
    let inspect = cluster.node(2).meshctl_ok(&["network", "inspect", "sec"]);
    assert!(inspect.contains("encrypted"), "{inspect}");
    for node in cluster.nodes() {
        let nodes = node.nodes_json();
        assert!(nodes.iter().all(|n| n["encryption"] == "userspace"), "{nodes:?}");
    }

    let a = cluster.add_namespace("a");
    let b = cluster.add_namespace("b");
    let c = cluster.add_namespace("c");
    let d = cluster.add_namespace("d");
    let _ip_a = attach(cluster.node(1), &a, "sec");
    let ip_b = attach(cluster.node(2), &b, "sec");
    let _ip_c = attach(cluster.node(1), &c, "plain");
    let ip_d = attach(cluster.node(2), &d, "plain");

    // The WireGuard header comes off an encrypted network's MTU (1500 - 50 - 60).
    let link = cluster.namespace(&a).exec("ip", ["-o", "link", "show", "eth0"]);
    assert!(stdout(&link).contains("mtu 1390"), "{}", stdout(&link));
    let link = cluster.namespace(&c).exec("ip", ["-o", "link", "show", "eth0"]);
    assert!(stdout(&link).contains("mtu 1450"), "{}", stdout(&link));

    cluster.wait_for("a reaches b encrypted", Duration::from_secs(15), |cl| ping(cl, &a, &ip_b));
    cluster.wait_for("c reaches d in clear", Duration::from_secs(15), |cl| ping(cl, &c, &ip_d));
    // A full-size packet with DF fits the encrypted network's MTU.
    let big = cluster.namespace(&a).exec("ping", ["-c", "2", "-M", "do", "-s", "1362", "-W", "2", &ip_b]);
    assert!(big.status.success(), "{}", describe_failure("ping -M do -s 1362", &big));

    let sec_vni = vni_of(cluster.node(1), "sec");
    let plain_vni = vni_of(cluster.node(1), "plain");
    let capture = Capture::start(&cluster, "markers");
    send_udp(&cluster, &a, &ip_b, 9000, SECRET);
    send_udp(&cluster, &c, &ip_d, 9000, PLAIN);
    assert!(ping(&cluster, &a, &ip_b));
    let (bytes, text) = capture.finish();
    assert!(contains(&bytes, PLAIN), "the capture works: the plain network's payload is on the wire");
    assert!(text.contains(&format!("vni {plain_vni}")), "{text}");
    assert!(!contains(&bytes, SECRET), "the encrypted network's payload never crosses in clear");
    assert!(!text.contains(&format!("vni {sec_vni}")), "no VXLAN of the encrypted network:\n{text}");
    assert!(text.contains(".51820"), "the encrypted network's packets are WireGuard's:\n{text}");

    // Kill the engine: nothing leaves in clear, the drops are counted, and it comes back.
    let engines = cluster.node(1).wireguard_pids();
    assert_eq!(engines.len(), 1, "one engine on n1: {engines:?}");
    let before = counted(cluster.node(1), "drop-no-tunnel");
    let capture = Capture::start(&cluster, "killed");
    let _ = Command::new("kill").args(["-KILL", &engines[0].to_string()]).status();
    for _ in 0..10 {
        send_udp(&cluster, &a, &ip_b, 9000, SECRET);
    }
    cluster
        .wait_for("the engine back and traffic restored", Duration::from_secs(20), |cl| ping(cl, &a, &ip_b));
    let (bytes, text) = capture.finish();
    assert!(!contains(&bytes, SECRET), "nothing in clear while the engine was down");
    assert!(!text.contains(&format!("vni {sec_vni}")), "no VXLAN of the encrypted network:\n{text}");
    let after = counted(cluster.node(1), "drop-no-tunnel");
    assert!(
        after > before,
        "drop-no-tunnel counted the packets sent while the engine was down ({before} -> {after})"
    );
    let restarted = cluster.node(1).wireguard_pids();
    assert!(restarted.len() == 1 && restarted != engines, "meshd started a new engine: {restarted:?}");

    // Restarting meshd keeps the engine (it outlives the agent) and loses no ping.
    let pinger = {
        let ns = a.clone();
        let to = ip_b.clone();
        std::thread::spawn(move || {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns, "ping", "-q", "-i", "0.01", "-W", "1", "-c", "300", &to])
                .output()
                .unwrap();
            stdout(&out)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    cluster.node_mut(1).stop();
    std::thread::sleep(Duration::from_millis(300));
    cluster.node_mut(1).start();
    let summary = pinger.join().unwrap();
    assert!(summary.contains(" 0% packet loss"), "{summary}");
    assert_eq!(cluster.node(1).wireguard_pids(), restarted, "the same engine after the restart");
}

#[test]
fn a_node_joining_after_the_network_reaches_the_others_encrypted() {
    let mut cluster = Cluster::new("encjoin", 3);
    let first = cluster.node(1).base_args();
    cluster.node_mut(1).start_with(&first);
    cluster.node(1).meshctl_ok(&[
        "network",
        "create",
        "sec",
        "--subnet",
        "10.53.0.0/24",
        "--opt",
        "encrypted",
    ]);
    let token = cluster.node(1).meshctl_ok(&["join-token", "worker"]).trim().to_string();
    let seed = cluster.node(1).addr.to_string();
    for i in [2, 3] {
        let mut args = cluster.node(i).base_args();
        args.extend(cluster.node(i).join_args(&seed, &token));
        cluster.node_mut(i).start_with(&args);
    }
    cluster.wait_for("every node alive everywhere", Duration::from_secs(30), |cl| {
        cl.nodes().iter().all(|n| n.count_status("alive") == 3)
    });
    cluster.wait_listed(&["network", "ls"], "sec");
    let names: Vec<String> = (1..=3).map(|i| cluster.add_namespace(&format!("t{i}"))).collect();
    let ips: Vec<String> =
        names.iter().enumerate().map(|(i, ns)| attach(cluster.node(i + 1), ns, "sec")).collect();
    let sec_vni = vni_of(cluster.node(1), "sec");
    let capture = Capture::start(&cluster, "join");
    for (from, name) in names.iter().enumerate() {
        for (to, ip) in ips.iter().enumerate().filter(|(to, _)| *to != from) {
            cluster.wait_for(&format!("t{} reaches t{}", from + 1, to + 1), Duration::from_secs(15), |cl| {
                ping(cl, name, ip)
            });
        }
    }
    let (_, text) = capture.finish();
    assert!(!text.contains(&format!("vni {sec_vni}")), "no VXLAN of the encrypted network:\n{text}");
}
