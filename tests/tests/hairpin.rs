//! Hairpin (issue 22, item 4): a task asking its own service, through the VIP and through a
//! published port, gets an answer, also from itself when it is the only task (Swarm fixed this
//! in moby#24377). Real meshd in namespaces, real curl. Balanced at the socket (the default), and
//! per packet with `--socket-lb off`: there a flow balanced back onto the task itself gets the
//! network's gateway as its source (else the task's stack drops its own address as a martian),
//! and the answer to the gateway is turned back at the veth (lib/lb.h, lib/rnat.h).

use std::time::Duration;

use meshd_tests::cluster::node_underlay_addr;
use meshd_tests::command::{stderr, stdout};
use meshd_tests::http::NamedServer;
use meshd_tests::Cluster;

#[test]
fn a_single_task_reaches_itself_through_its_vip_and_its_published_port() {
    single_task_asks_itself("selfpin", &[]);
}

#[test]
fn a_single_task_reaches_itself_per_packet_without_the_socket_lb() {
    single_task_asks_itself("selfpkt", &["--socket-lb", "off"]);
}

fn single_task_asks_itself(tag: &str, extra: &[&str]) {
    let mut cluster = Cluster::new(tag, 2);
    cluster.form_with(extra);
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.75.0.0/24"]);
    let created = cluster.node(1).meshctl_ok(&[
        "--format",
        "json",
        "service",
        "create",
        "web",
        "--network",
        "front",
        "--publish",
        "9191:80",
    ]);
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let vip = created[0]["vip"].as_str().unwrap().to_string();
    cluster.wait_listed(&["service", "ls"], "9191:80/tcp");
    let (ns, _) = cluster.attach_task(1, "web1", "front", "web", "web.1");
    let _server = NamedServer::start(cluster.namespace(&ns), 80, "web.1");
    cluster.wait_for("web.1 a backend", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["service", "ls"]).contains("1/1")
    });
    let task = cluster.namespace(&ns);
    for (what, url) in [
        ("its VIP", format!("http://{vip}/")),
        ("its service name", "http://web/".to_string()),
        ("its node's published port", format!("http://{}:9191/", node_underlay_addr(1))),
        ("another node's published port", format!("http://{}:9191/", node_underlay_addr(2))),
    ] {
        for _ in 0..5 {
            let out = task.exec("curl", ["-s", "--max-time", "3", &url]);
            assert!(
                out.status.success() && stdout(&out).trim() == "web.1",
                "the task asking {what} ({url}): {}{}",
                stdout(&out),
                stderr(&out)
            );
        }
    }
}
