//! `meshctl service update` (issue 22, item 2): ports added and removed and the endpoint mode
//! switched in place, decided by the managers, while wrk keeps connections open on a port that
//! stays: no failed request, no open connection lost. Real meshd on three nodes, real clients.

use std::net::TcpStream;
use std::time::Duration;

use meshd_tests::cluster::node_underlay_addr;
use meshd_tests::command::stderr;
use meshd_tests::http::{request, NamedServer};
use meshd_tests::load::wrk;
use meshd_tests::Cluster;

/// Whether `url` answers from the underlay client `client` within 2 s.
fn answers(cluster: &Cluster, client: usize, url: &str) -> bool {
    cluster.clients()[client].ns.exec("curl", ["-s", "--max-time", "2", url]).status.success()
}

#[test]
fn service_update_changes_ports_and_mode_in_place_under_load() {
    let mut cluster = Cluster::new("svcupd", 3);
    cluster.form();
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "front", "--subnet", "10.76.0.0/24"]);
    let created = n1.meshctl_ok(&[
        "--format",
        "json",
        "service",
        "create",
        "web",
        "--network",
        "front",
        "--publish",
        "8080:80",
        "--publish",
        "7070:80",
    ]);
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let vip = created[0]["vip"].as_str().unwrap().to_string();
    cluster.wait_listed(&["service", "ls"], "7070:80/tcp");
    let mut servers = Vec::new();
    for i in 1..=2 {
        let task = format!("web.{i}");
        let (ns, _) = cluster.attach_task(i, &format!("web{i}"), "front", "web", &task);
        servers.push(NamedServer::start(cluster.namespace(&ns), 80, &task));
    }
    let client = cluster.add_namespace("client");
    cluster.node(3).meshctl_ok(&["attach", "--netns", &client, "--network", "front"]);
    let outside = cluster.add_underlay_client();
    cluster.wait_for("both ports answering on every node", Duration::from_secs(15), |c| {
        (1..=3).all(|i| {
            answers(c, outside, &format!("http://{}:8080/", node_underlay_addr(i)))
                && answers(c, outside, &format!("http://{}:7070/", node_underlay_addr(i)))
        })
    });

    // An open connection through the VIP, and wrk keeping connections open on 8080 through n1.
    let vip_addr: std::net::Ipv4Addr = vip.parse().unwrap();
    let (first, mut open) = cluster.namespace(&client).run_inside(move || {
        let mut stream = TcpStream::connect((vip_addr, 80)).expect("connect to the VIP");
        (request(&mut stream), stream)
    });
    let load = std::thread::spawn({
        let (ns, url) = (
            cluster.clients()[outside].ns.name().to_string(),
            format!("http://{}:8080/", node_underlay_addr(1)),
        );
        move || wrk(&ns, &url, 12, false)
    });
    std::thread::sleep(Duration::from_secs(2));
    let updated = cluster.node(2).meshctl_ok(&[
        "service",
        "update",
        "web",
        "--publish-add",
        "9090:80",
        "--publish-rm",
        "7070",
    ]);
    assert!(updated.contains("9090:80/tcp") && !updated.contains("7070"), "{updated}");
    cluster.wait_for("9090 answering and 7070 gone on every node", Duration::from_secs(15), |c| {
        (1..=3).all(|i| {
            answers(c, outside, &format!("http://{}:9090/", node_underlay_addr(i)))
                && !answers(c, outside, &format!("http://{}:7070/", node_underlay_addr(i)))
        })
    });
    let run = load.join().unwrap();
    assert!(run.requests > 100, "{}", run.report);
    assert_eq!(run.errors, 0, "requests failed on the port that stayed:\n{}", run.report);
    assert_eq!(request(&mut open), first, "the open VIP connection keeps its task");
    let ls = cluster.node(3).meshctl_ok(&["--format", "json", "service", "ls"]);
    assert!(ls.contains(&vip), "the VIP is kept: {ls}");

    // dnsrr: the ports go in the same update, the name resolves to the tasks; back to vip: a VIP.
    cluster.node(1).meshctl_ok(&[
        "service",
        "update",
        "web",
        "--endpoint-mode",
        "dnsrr",
        "--publish-rm",
        "8080",
        "--publish-rm",
        "9090",
    ]);
    cluster.wait_for("web resolving to both tasks", Duration::from_secs(10), |c| {
        c.namespace(&client).resolve("web").len() == 2
    });
    cluster.node(1).meshctl_ok(&["service", "update", "web", "--endpoint-mode", "vip"]);
    let ls = cluster.node(1).meshctl_ok(&["--format", "json", "service", "ls"]);
    let ls: serde_json::Value = serde_json::from_str(&ls).unwrap();
    let new_vip = ls[0]["vip"].as_str().expect("a VIP again").to_string();
    cluster.wait_for("web resolving to its VIP", Duration::from_secs(10), |c| {
        c.namespace(&client).resolve("web") == [new_vip.clone()]
    });
    let out = cluster.namespace(&client).exec("curl", ["-s", "--max-time", "3", "http://web/"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Bad input: a clear error, the service unchanged.
    let before = cluster.node(1).meshctl_ok(&["--format", "json", "service", "ls"]);
    cluster.node(1).meshctl_ok(&["service", "create", "api", "--network", "front", "--publish", "6060:80"]);
    for (args, expected) in [
        (&["service", "update", "web"][..], "changes nothing"),
        (&["service", "update", "web", "--publish-rm", "1234"], "does not publish"),
        (&["service", "update", "web", "--publish-rm", "80/sctp"], "invalid --publish-rm"),
        (&["service", "update", "web", "--publish-add", "6060:80"], "published by service \"api\""),
        (&["service", "update", "web", "--publish-add", "8080"], "invalid --publish"),
        (&["service", "update", "nope", "--publish-add", "1:1"], "no service named"),
        (&["service", "update", "web", "--endpoint-mode", "both"], "invalid value 'both'"),
    ] {
        let out = cluster.node(1).meshctl(args);
        assert!(!out.status.success() && stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
    let after = cluster.node(1).meshctl_ok(&["--format", "json", "service", "ls"]);
    let web = |text: &str| -> serde_json::Value {
        let all: serde_json::Value = serde_json::from_str(text).unwrap();
        all.as_array().unwrap().iter().find(|s| s["name"] == "web").cloned().unwrap()
    };
    assert_eq!(web(&before), web(&after));
    drop(servers);
}
