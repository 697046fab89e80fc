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
