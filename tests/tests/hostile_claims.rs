//! A compromised worker lies about what is its own (issue 19, findings 1 and 3): endpoints at
//! addresses the managers never granted it, more endpoints than a node may hold, and address
//! blocks faster than it uses them. Real meshd processes in namespaces; the liar is a rogue
//! built from meshd's crates that signs with a real worker's key and certificate, so every
//! check it meets is a check at receipt, not of its credentials.

use std::net::Ipv4Addr;
use std::time::Duration;

use meshd::manager::decisions::{Action, Decision};
use meshd::manager::transport::Response;
use meshd::state::{Change, EndpointRecord, SignedDelta};
use meshd_tests::command::stdout;
use meshd_tests::rogue::Rogue;
use meshd_tests::Cluster;

const NONE: &[&str] = &[];

fn id_of(cluster: &Cluster, index: usize) -> meshd::identity::NodeId {
    cluster.node(index).node_id().expect("node.json").parse().expect("a node ID")
}

fn endpoint(address: Ipv4Addr, service: Option<&str>, task: &str) -> EndpointRecord {
    EndpointRecord {
        network: "front".into(),
        address,
        service: service.map(Into::into),
        task: Some(task.into()),
        terminating: false,
        aliases: Vec::new(),
        health: Default::default(),
    }
}

#[test]
fn a_worker_that_lies_about_its_endpoints_harms_no_other_node() {
    let mut cluster = Cluster::new("claims", 3);
    cluster.form_roles(1, NONE);
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.94.0.0/24"]);
    cluster.node(1).meshctl_ok(&["service", "create", "web", "--network", "front"]);
    cluster.wait_listed(&["service", "ls"], "web");
    // The victim: a task of web on n2. A client on n1. The liar, n3, attaches one container of
    // its own, so it holds a real block too.
    let (victim, victim_ip) = cluster.attach_task(2, "victim", "front", "web", "web.1");
    let client = cluster.add_namespace("client");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &client, "--network", "front"]);
    let neighbour = cluster.add_namespace("neighbour");
    cluster.node(2).meshctl_ok(&["attach", "--netns", &neighbour, "--network", "front"]);
    let own = cluster.add_namespace("own");
    let own_ip: Ipv4Addr = cluster
        .node(3)
        .meshctl_ok(&["attach", "--netns", &own, "--network", "front"])
        .trim()
        .parse()
        .unwrap();
    cluster.wait_listed(&["--format", "json", "network", "ls"], "\"endpoints\": 4");
    // web's backends and Maglev table size, as each node's kernel tables have them.
    let views = |c: &Cluster| -> Vec<(Vec<String>, u64)> {
        (1..=2)
            .map(|i| {
                let text = c.node(i).meshctl_ok(&["--format", "json", "service", "inspect", "web"]);
                let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                let backends = json["backends"].as_array().expect("backends");
                let mut addresses: Vec<String> = backends.iter().map(|b| b["address"].to_string()).collect();
                addresses.truncate(5);
                (addresses, json["table_size"].as_u64().unwrap_or_default())
            })
            .collect()
    };
    let before = views(&cluster);
    assert_eq!(cluster.namespace(&client).resolve("tasks.web"), vec![victim_ip.to_string()]);

    let rogue = Rogue::impersonating(cluster.node(3));
    let n3 = id_of(&cluster, 3);
    let now = meshd::state::version::unix_millis();
    let claim = |lamport: u64, id: &str, record: EndpointRecord| -> SignedDelta {
        rogue.sign(lamport, Change::Endpoint { owner: n3, id: id.into(), record: Some(record) })
    };
    let underlay: Ipv4Addr = cluster.node(1).addr;
    let mut lies = vec![
        // The victim's own address, as a task of the victim's service.
        claim(now + 1, "hijack", endpoint(victim_ip, Some("web"), "web.9")),
        // An underlay address (n1's), outside the subnet.
        claim(now + 2, "underlay", endpoint(underlay, None, "x")),
        // The network's gateway.
        claim(now + 3, "gateway", endpoint(Ipv4Addr::new(10, 94, 0, 1), None, "gw")),
    ];
    // And 3,000 backends of web outside the subnet.
    lies.extend((0..3000u32).map(|n| {
        let address = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 0)) + n);
        claim(
            now + 10 + u64::from(n),
            &format!("flood{n}"),
            endpoint(address, Some("web"), &format!("web.{n}")),
        )
    }));
    for target in [1, 2] {
        for chunk in lies.chunks(500) {
            rogue
                .push(cluster.node(3), cluster.node(target), chunk.to_vec())
                .expect("a member's push is served");
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(views(&cluster), before, "web's backends are what they were on every node");
    assert_eq!(cluster.namespace(&client).resolve("tasks.web"), vec![victim_ip.to_string()], "DNS unchanged");
    assert_eq!(cluster.namespace(&client).resolve("web.9"), Vec::<String>::new(), "the liar's task name");
    // Traffic to the victim's address still reaches the victim (the liar runs nothing there:
    // diverted, these would go unanswered), also from the victim's own node.
    let ping = |from: &str, to: Ipv4Addr| {
        let out = cluster.namespace(from).exec("ping", ["-c", "3", "-i", "0.2", "-W", "2", &to.to_string()]);
        assert!(out.status.success(), "ping {from} -> {to}: {}", stdout(&out));
    };
    ping(&client, victim_ip);
    ping(&neighbour, victim_ip);
    ping(&client, own_ip);
    let _ = victim;

    // Refused on arrival, every one, counted with its reason, on every node it reached.
    for target in [1, 2] {
        let refused = cluster.node(target).gossip_stat("deltas_rejected_not_granted");
        assert!(refused >= 3003, "n{target}: {refused} claims refused as not granted");
    }

    // Its own address, its own block: still accepted (a liar harms only its own containers).
    // Named like the service, it gets no name: web still answers with its VIP alone.
    let vip = cluster.namespace(&client).resolve("web");
    let own = claim(now + 5000, "mine", endpoint(Ipv4Addr::from(u32::from(own_ip) + 1), None, "web"));
    rogue.push(cluster.node(3), cluster.node(1), vec![own]).expect("served");
    cluster.wait_for("n1 to take n3's claim in its own block", Duration::from_secs(5), |c| {
        c.node(1).meshctl_ok(&["--format", "json", "network", "ls"]).contains("\"endpoints\": 5")
    });
    assert_eq!(vip.len(), 1);
    assert_eq!(cluster.namespace(&client).resolve("web"), vip, "a task named web does not join web's answer");

    // The bound: at most 1,024 endpoints per node, whatever their addresses.
    let base = u32::from(own_ip) & !0xf;
    let many: Vec<SignedDelta> = (0..1100u32)
        .map(|n| {
            claim(
                now + 6000 + u64::from(n),
                &format!("many{n}"),
                endpoint(Ipv4Addr::from(base + 2 + n % 13), None, "m"),
            )
        })
        .collect();
    for chunk in many.chunks(500) {
        rogue.push(cluster.node(3), cluster.node(1), chunk.to_vec()).expect("served");
    }
    let over = cluster.node(1).gossip_stat("deltas_rejected_over_bound");
    assert!(over >= 1100 - 1024 + 2 /* its two */, "n1 refused {over} endpoints beyond the bound");
}

#[test]
fn a_worker_gets_address_blocks_only_as_fast_as_it_uses_them() {
    let mut cluster = Cluster::new("blocks", 2);
    cluster.form_roles(1, NONE);
    // A /26: four blocks of 16.
    cluster.node(1).meshctl_ok(&["network", "create", "small", "--subnet", "10.95.0.0/26"]);
    cluster.wait_listed(&["network", "ls"], "small");
    let rogue = Rogue::impersonating(cluster.node(2));
    let ask = || {
        let action = Action::GrantBlock { network: "small".into(), node: rogue.node_id() };
        rogue.propose(cluster.node(2), cluster.node(1), action).expect("an answer")
    };
    let mut granted = 0;
    let mut refused = Vec::new();
    for _ in 0..4 {
        match ask() {
            Response::Proposed(Ok((Decision::Block(_), _))) => granted += 1,
            Response::Refused(reason) => refused.push(reason),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(granted, 2, "two spare blocks for a node with no endpoint; refused: {refused:?}");
    assert!(refused.iter().all(|r| r.contains("no more until they fill")), "{refused:?}");
    // The manager still has addresses to attach its own containers.
    let ns = cluster.add_namespace("m");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &ns, "--network", "small"]);
    // And the worker itself, attaching for real, still gets addresses from its blocks.
    let ns = cluster.add_namespace("w");
    cluster.node(2).meshctl_ok(&["attach", "--netns", &ns, "--network", "small"]);
}
