//! Network options (issue 21, item 4): `network create --gateway/--ip-range/--aux-address/
//! --opt mtu/--label/--internal`, seen from inside real containers (namespaces attached by real
//! meshd nodes), and bad input refused with nothing created. Real ping, curl and ip.

use std::net::Ipv4Addr;
use std::time::Duration;

use meshd_tests::attack::drops;
use meshd_tests::cluster::node_underlay_addr;
use meshd_tests::command::{stderr, stdout};
use meshd_tests::Cluster;

fn attach(cluster: &mut Cluster, node: usize, tag: &str, network: &str) -> (String, Ipv4Addr) {
    let ns = cluster.add_namespace(tag);
    let address = cluster.node(node).meshctl_ok(&["attach", "--netns", &ns, "--network", network]);
    (ns, address.trim().parse().expect("attach prints an address"))
}

fn ping(cluster: &Cluster, ns: &str, to: &str) -> bool {
    cluster.namespace(ns).exec("ping", ["-c", "2", "-i", "0.2", "-W", "1", to]).status.success()
}

#[test]
fn gateway_range_aux_address_mtu_and_labels_are_what_containers_get() {
    let mut cluster = Cluster::new("netopt", 2);
    cluster.form();
    // The range covers blocks 2 and 3 (.32-.63), so each node gets one; .42 is kept out.
    cluster.node(1).meshctl_ok(&[
        "network",
        "create",
        "custom",
        "--subnet",
        "10.98.0.0/24",
        "--gateway",
        "10.98.0.254",
        "--ip-range",
        "10.98.0.32/27",
        "--aux-address",
        "printer=10.98.0.42",
        "--opt",
        "mtu=1300",
        "--label",
        "team=blue",
    ]);
    cluster.wait_listed(&["network", "ls"], "custom");
    let inspect = cluster.node(2).meshctl_ok(&["network", "inspect", "custom"]);
    for shown in [
        "gateway 10.98.0.254",
        "ip-range 10.98.0.32/27",
        "aux-address printer=10.98.0.42",
        "mtu 1300",
        "label team=blue",
    ] {
        assert!(inspect.contains(shown), "inspect lacks {shown:?}: {inspect}");
    }
    let ls = cluster.node(2).meshctl_ok(&["network", "ls"]);
    assert!(ls.contains("ip-range=10.98.0.32/27,aux=1,mtu=1300,labels=1"), "{ls}");

    let range = Ipv4Addr::new(10, 98, 0, 32)..=Ipv4Addr::new(10, 98, 0, 63);
    let mut addresses = Vec::new();
    let mut namespaces = Vec::new();
    for (node, tag) in [(1, "a1"), (1, "b1"), (2, "a2")] {
        let (ns, address) = attach(&mut cluster, node, tag, "custom");
        assert!(range.contains(&address), "{address} is outside --ip-range 10.98.0.32/27");
        assert_ne!(address, Ipv4Addr::new(10, 98, 0, 42), "the aux address was handed out");
        addresses.push(address);
        namespaces.push(ns);
    }
    // Inside the container: its address, the MTU and the default route via the gateway.
    let inside = cluster.namespace(&namespaces[0]);
    let addr = stdout(&inside.ip(["-4", "addr", "show", "dev", "eth0"]));
    assert!(addr.contains(&format!("{}/24", addresses[0])), "{addr}");
    let link = stdout(&inside.ip(["link", "show", "dev", "eth0"]));
    assert!(link.contains("mtu 1300"), "{link}");
    let route = stdout(&inside.ip(["-4", "route", "show", "default"]));
    assert!(route.contains("via 10.98.0.254"), "{route}");
    // Across nodes through the custom gateway (the eBPF ARP responder stands for it).
    let peer = addresses[2].to_string();
    assert!(ping(&cluster, &namespaces[0], &peer), "no ping from n1 to n2 with --gateway 10.98.0.254");
    // A 1272-byte payload fits 1300; DF with one byte more does not leave the container.
    let fits = inside.exec("ping", ["-c", "1", "-W", "2", "-M", "do", "-s", "1272", &peer]);
    assert!(fits.status.success(), "{}{}", stdout(&fits), stderr(&fits));
    let big = inside.exec("ping", ["-c", "1", "-W", "2", "-M", "do", "-s", "1273", &peer]);
    assert!(!big.status.success(), "a packet above the MTU went out");
}

#[test]
fn bad_options_are_refused_and_nothing_is_created() {
    let mut cluster = Cluster::new("netbad", 1);
    cluster.form();
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "front", "--subnet", "10.99.0.0/24"]);
    let before = n1.meshctl_ok(&["network", "ls"]);
    let rows: &[(&[&str], &str)] = &[
        (&["--gateway", "10.98.0.1"], "--gateway 10.98.0.1 is outside subnet 10.99.1.0/24"),
        (&["--gateway", "10.99.1.255"], "network or broadcast address"),
        (&["--ip-range", "10.99.2.0/25"], "is not inside subnet"),
        (&["--ip-range", "10.99.1.3/25"], "host bits"),
        (&["--aux-address", "x=10.99.5.1"], "is outside subnet"),
        (&["--aux-address", "gw=10.99.1.1"], "is the gateway"),
        (&["--aux-address", "printer"], "expected KEY=VALUE"),
        (&["--aux-address", "p=nope"], "not an IPv4 address"),
        (&["--opt", "mtu=1451"], "above this node's limit of 1450 (its underlay's MTU 1500"),
        (&["--opt", "mtu=100"], "below IPv4's minimum"),
        (&["--opt", "color=red"], "unknown option"),
        (&["--label", "=blue"], "expected KEY=VALUE"),
        (&["--label", "a b=c"], "a name is"),
    ];
    for (extra, why) in rows {
        let mut args = vec!["network", "create", "bad", "--subnet", "10.99.1.0/24"];
        args.extend_from_slice(extra);
        let out = n1.meshctl(&args);
        assert!(!out.status.success(), "{extra:?} was accepted");
        assert!(stderr(&out).contains(why), "{extra:?}: {:?} should say {why:?}", stderr(&out));
        assert_eq!(n1.meshctl_ok(&["network", "ls"]), before, "{extra:?} changed the networks");
    }
}

#[test]
fn an_internal_network_keeps_its_containers_on_the_overlay() {
    let mut cluster = Cluster::new("netint", 2);
    cluster.form();
    let outside = cluster.add_underlay_client();
    let outside_addr = cluster.clients()[outside].addr.to_string();
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "secret", "--subnet", "10.95.0.0/24", "--internal"]);
    n1.meshctl_ok(&["network", "create", "open", "--subnet", "10.94.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "internal");
    cluster.wait_listed(&["network", "ls"], "open");

    let out =
        cluster.node(1).meshctl(&["service", "create", "web", "--network", "secret", "--publish", "8080:80"]);
    assert!(!out.status.success() && stderr(&out).contains("is internal"), "{}", stderr(&out));
    assert!(!cluster.node(1).meshctl_ok(&["service", "ls"]).contains("web"));

    let (inside, _) = attach(&mut cluster, 1, "inside", "secret");
    let (_, peer) = attach(&mut cluster, 2, "peer", "secret");
    // A container on both: the open network first (its default route), the internal second.
    let both = cluster.add_namespace("both");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &both, "--network", "open"]);
    cluster.node(1).meshctl_ok(&["attach", "--netns", &both, "--network", "secret"]);

    cluster.wait_for("the peer on n2", Duration::from_secs(10), |c| ping(c, &inside, &peer.to_string()));
    let node1 = node_underlay_addr(1).to_string();
    let node2 = node_underlay_addr(2).to_string();
    for target in [&node1, &node2, &outside_addr] {
        assert!(!ping(&cluster, &inside, target), "an internal container pinged {target}");
    }
    let url = format!("http://{node2}:7946/");
    let curl = cluster.namespace(&inside).exec("curl", ["-s", "--max-time", "2", &url]);
    assert!(!curl.status.success(), "an internal container reached {url}");
    let stats = cluster.node(1).meshctl_ok(&["--format", "json", "stats"]);
    assert!(drops(&stats, "drop-internal") >= 6, "the drops are counted: {stats}");

    // The same container's normal network still leaves the overlay; its internal one still
    // reaches the peer.
    assert!(ping(&cluster, &both, &outside_addr), "the open network lost its way out");
    assert!(ping(&cluster, &both, &peer.to_string()), "the internal network lost its peer");
}
