//! The embedded DNS with real meshd processes and `dig` inside namespaces: every name form,
//! scoping, forwarding to a real upstream (dnsmasq), TCP, freshness and garbage.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use meshd_tests::command::stdout;
use meshd_tests::{Cluster, Netns};

struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dig(ns: &Netns, args: &[&str]) -> String {
    // Explicitly at the embedded DNS: not every namespace here has a resolv.conf pointing at it.
    let mut all = vec!["@127.0.0.11", "+time=2", "+tries=1"];
    all.extend_from_slice(args);
    stdout(&ns.exec("dig", all))
}

fn short(ns: &Netns, name: &str) -> Vec<String> {
    let mut lines: Vec<String> = dig(ns, &["+short", name]).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn names_scoping_forwarding_tcp_and_freshness() {
    let mut cluster = Cluster::new("dns", 3);
    // An upstream resolver on the underlay, and every node pointed at it.
    let upstream = cluster.add_underlay_client();
    let upstream_ns = cluster.clients()[upstream].ns.name().to_string();
    let upstream_ip = cluster.clients()[upstream].addr.to_string();
    let _dnsmasq = Dnsmasq(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &upstream_ns,
                "dnsmasq",
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
            ])
            .arg(format!("--listen-address={upstream_ip}"))
            .arg("--address=/upstream.test/192.0.2.44")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (apt-get install dnsmasq-base)"),
    );
    // The harness points every node at this file; 127.0.0.11 in it must be skipped (no loops).
    let resolv = cluster.work_dir().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver 127.0.0.11\nnameserver {upstream_ip}\n")).unwrap();
    cluster.form();

    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "front", "--subnet", "10.80.0.0/24"]);
    n1.meshctl_ok(&["network", "create", "back", "--subnet", "10.81.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "back");
    let web =
        cluster.node(1).meshctl_ok(&["--format", "json", "service", "create", "web", "--network", "front"]);
    let vip =
        serde_json::from_str::<serde_json::Value>(&web).unwrap()[0]["vip"].as_str().unwrap().to_string();
    cluster.node(1).meshctl_ok(&[
        "service",
        "create",
        "api",
        "--network",
        "front",
        "--endpoint-mode",
        "dnsrr",
    ]);
    cluster.wait_listed(&["service", "ls"], "api");
    let mut addresses = Vec::new();
    for (node, service, task) in
        [(1, "web", "web.1"), (2, "web", "web.2"), (2, "api", "api.1"), (3, "api", "api.2")]
    {
        let (ns, ip) = cluster.attach_task(node, &task.replace('.', ""), "front", service, task);
        addresses.push((task, ip.to_string(), ns));
    }
    let client = cluster.add_namespace("client");
    cluster.node(3).meshctl_ok(&["attach", "--netns", &client, "--network", "front"]);
    let outsider = cluster.add_namespace("outsider");
    cluster.node(3).meshctl_ok(&["attach", "--netns", &outsider, "--network", "back", "--no-resolv-conf"]);
    assert!(!std::path::Path::new(&format!("/etc/netns/{outsider}/resolv.conf")).exists(), "told not to");
    assert!(std::path::Path::new(&format!("/etc/netns/{client}/resolv.conf")).exists());
    let ip_of = |task: &str| addresses.iter().find(|(t, _, _)| *t == task).unwrap().1.clone();
    let c = cluster.namespace(&client);
    cluster.wait_for("every task known to n3", Duration::from_secs(10), |_| short(c, "tasks.api").len() == 2);

    // The namespace's resolv.conf points at the embedded DNS: plain `dig NAME` works.
    assert_eq!(short(c, "web"), std::slice::from_ref(&vip));
    assert_eq!(short(c, "WEB.front"), std::slice::from_ref(&vip));
    let mut tasks = vec![ip_of("web.1"), ip_of("web.2")];
    tasks.sort();
    assert_eq!(short(c, "tasks.web"), tasks);
    assert_eq!(short(c, "web.1"), [ip_of("web.1")]);
    let mut api = vec![ip_of("api.1"), ip_of("api.2")];
    api.sort();
    assert_eq!(short(c, "api"), api, "dnsrr: the tasks themselves");
    let full = dig(c, &["web"]);
    assert!(full.contains("\t5\tIN\tA\t"), "short TTL: {full}");
    let aaaa = dig(c, &["AAAA", "web"]);
    assert!(aaaa.contains("status: NOERROR") && aaaa.contains("ANSWER: 0"), "{aaaa}");
    let ptr = dig(c, &["+short", "-x", &ip_of("web.1")]);
    assert_eq!(ptr.trim(), "web.1.front.");
    let nx = dig(c, &["nothing-here"]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");

    // Scoping: from another network these names do not exist, exactly like unknown ones.
    let o = cluster.namespace(&outsider);
    for name in ["web", "web.front", "tasks.web", "web.1"] {
        assert!(dig(o, &[name]).contains("status: NXDOMAIN"), "{name} leaked to another network");
    }

    // Forwarding through the upstream, UDP and TCP; and local answers over TCP.
    assert_eq!(short(c, "upstream.test"), ["192.0.2.44"]);
    assert_eq!(dig(c, &["+tcp", "+short", "upstream.test"]).trim(), "192.0.2.44");
    assert_eq!(dig(c, &["+tcp", "+short", "web"]).trim(), vip);

    // Garbage to the DNS port: answered or dropped, the server stays correct.
    let target: std::net::SocketAddr = "127.0.0.11:53".parse().unwrap();
    c.run_inside(move || {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for len in [0usize, 1, 2, 11, 12, 13, 100, 511, 512, 4000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let _ = udp.send_to(&bytes, target);
        }
        let mut tcp = std::net::TcpStream::connect(target).unwrap();
        use std::io::Write;
        let _ = tcp.write_all(&[0xff, 0xff, 1, 2, 3]);
    });
    assert_eq!(short(c, "web"), std::slice::from_ref(&vip), "still correct after garbage");

    // Freshness: a detach and a node failure show in answers quickly.
    let (_, _, web2_ns) = addresses.iter().find(|(t, _, _)| *t == "web.2").unwrap().clone();
    cluster.node(2).meshctl_ok(&["detach", "--netns", &web2_ns]);
    let took = cluster.wait_for("web.2 gone from tasks.web", Duration::from_secs(5), |cl| {
        short(cl.namespace(&client), "tasks.web") == [ip_of("web.1")]
    });
    eprintln!("detach visible in DNS after {took:?}");
    cluster.node_mut(2).kill();
    cluster.wait_for("api.1 gone after n2 died", Duration::from_secs(10), |cl| {
        short(cl.namespace(&client), "api") == [ip_of("api.2")]
    });
}
