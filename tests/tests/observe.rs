//! Seeing the network, with real meshd processes: `/metrics` checked by promtool, drop events
//! from `meshctl monitor` as they happen, a drop flood that the agent's memory does not notice,
//! and the web view in a real (headless) browser that follows a node going down.

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meshd_tests::binaries;
use meshd_tests::browser::Browser;
use meshd_tests::command::{describe_failure, stdout};
use meshd_tests::monitor::Monitor;
use meshd_tests::{Cluster, Node};
use serde_json::Value;

const METRICS: &str = "127.0.0.1:9646";

fn attach(node: &Node, ns: &str, network: &str, service: Option<&str>) -> String {
    let mut args = vec!["attach", "--netns", ns, "--network", network];
    if let Some(service) = service {
        args.extend(["--service", service]);
    }
    node.meshctl_ok(&args).trim().to_string()
}

/// `/metrics` of a node, fetched by curl inside its namespace.
fn metrics(node: &Node) -> String {
    let out = node.ns.exec("curl", ["-sS", "--max-time", "10", &format!("http://{METRICS}/metrics")]);
    assert!(out.status.success(), "{}", describe_failure("curl /metrics", &out));
    stdout(&out)
}

/// The value of the sample whose line starts with `prefix` (name and labels), if any.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Sends `count` UDP datagrams from inside `ns` to `to` as fast as one socket goes (bounded by
/// count and by 120 s); returns how many were sent.
fn flood(cluster: &Cluster, ns: &str, to: &str, count: u64) -> u64 {
    let to: std::net::SocketAddr = format!("{to}:9").parse().unwrap();
    cluster.namespace(ns).run_inside(move || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        let payload = [0u8; 18];
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut sent = 0;
        while sent < count && Instant::now() < deadline {
            if socket.send_to(&payload, to).is_ok() {
                sent += 1;
            }
        }
        sent
    })
}

fn promtool(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n--- the metrics ---\n{text}",
        describe_failure("promtool check metrics", &out)
    );
}

#[test]
fn metrics_pass_promtool_and_monitor_shows_drops_as_they_happen() {
    let mut cluster = Cluster::new("observe", 3);
    cluster.form_with(&["--metrics-addr", METRICS]);
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.30.0.0/24"]);
    cluster.node(1).meshctl_ok(&["network", "create", "back", "--subnet", "10.40.0.0/24"]);
    cluster.node(1).meshctl_ok(&["service", "create", "web", "--network", "front"]);
    cluster.wait_listed(&["network", "ls"], "back");
    let a = cluster.add_namespace("a");
    let d = cluster.add_namespace("d");
    let ip_a = attach(cluster.node(1), &a, "front", Some("web"));
    let ip_d = attach(cluster.node(2), &d, "back", None);
    cluster.wait_for("n1 to know d's endpoint", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["service", "ps", "web"]).contains(&ip_a)
            && endpoints_on(c.node(1), "back") == 1
    });

    // A drop monitor on n1, subscribed before the ping.
    let monitor = Monitor::start(cluster.node(1), &["--type", "drop", "--format", "json", "--follow"]);
    cluster.wait_for("the monitor to subscribe", Duration::from_secs(10), |c| {
        sample(&metrics(c.node(1)), "meshd_monitor_subscribers ") == Some(1.0)
    });
    let ns_a = cluster.namespace(&a).name().to_string();
    let target = ip_d.clone();
    let pinged = Instant::now();
    let ping = std::thread::spawn(move || {
        Command::new("ip").args(["netns", "exec", &ns_a, "ping", "-c", "1", "-W", "1", &target]).output()
    });
    let event: Value = loop {
        let left = Duration::from_secs(1).saturating_sub(pinged.elapsed());
        let line = monitor.lines.recv_timeout(left).unwrap_or_else(|_| {
            panic!("no drop event within a second of the ping; n1's log:\n{}", cluster.node(1).log())
        });
        let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if event["source"]["address"] == ip_a.as_str() && event["destination"]["address"] == ip_d.as_str() {
            break event;
        }
    };
    let took = pinged.elapsed();
    assert!(took < Duration::from_secs(1), "the drop was printed {took:?} after the ping");
    assert_eq!(event["type"], "drop", "{event}");
    assert_eq!(event["verdict"], "dropped", "{event}");
    assert_eq!(event["reason"], "drop-network-mismatch", "{event}");
    assert_eq!(event["protocol"], "icmp", "{event}");
    assert_eq!(event["source"]["network"], "front", "{event}");
    assert_eq!(event["source"]["service"], "web", "{event}");
    assert_eq!(event["destination"]["network"], "back", "{event}");
    assert_eq!(event["direction"], "from-container", "{event}");
    assert!(event["interface"].as_str().is_some_and(|i| !i.is_empty()), "{event}");
    assert!(!ping.join().unwrap().unwrap().status.success(), "the ping across networks must fail");
    drop(monitor);

    // The recent drops are kept: a monitor without --follow prints them and ends.
    let recent = cluster.node(1).meshctl_ok(&["monitor", "--type", "drop", "--network", "back"]);
    assert!(recent.contains(&ip_d) && recent.contains("drop-network-mismatch"), "{recent}");
    let none = cluster.node(1).meshctl_ok(&["monitor", "--network", "nowhere"]);
    assert_eq!(none, "", "a filter that matches nothing prints nothing");

    // A DNS query in a, answered locally, counted on n1.
    let dig = cluster.namespace(&a).exec("dig", ["+short", "+time=2", "+tries=1", "@127.0.0.11", "web"]);
    assert!(dig.status.success() && !stdout(&dig).trim().is_empty(), "{}", describe_failure("dig web", &dig));

    // /metrics of every node passes promtool; n1's shows the drop reason and the query.
    for node in cluster.nodes() {
        promtool(&metrics(node));
    }
    let text = metrics(cluster.node(1));
    let drops = sample(
        &text,
        "meshd_datapath_packets_total{verdict=\"dropped\",reason=\"drop-network-mismatch\",direction=\"from-container\"}",
    );
    assert!(drops.is_some_and(|n| n >= 1.0), "{text}");
    assert!(sample(&text, "meshd_dns_queries_total{outcome=\"local\"}").is_some_and(|n| n >= 1.0), "{text}");
    assert!(sample(&text, "meshd_dns_query_duration_seconds_count").is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(sample(&text, "meshd_members{state=\"alive\"}"), Some(3.0), "{text}");
    assert!(sample(&text, "meshd_manager_term").is_some_and(|t| t >= 1.0), "{text}");
    assert_eq!(sample(&text, "meshd_manager_voters"), Some(3.0), "{text}");
    assert_eq!(
        sample(&text, "meshd_service_backends{service=\"web\",state=\"healthy\"}"),
        Some(1.0),
        "{text}"
    );
    assert!(sample(&text, "meshd_bpf_map_pressure{map_name=\"md_flows_v1\"}").is_some(), "{text}");
    assert!(sample(&text, "meshd_process_resident_memory_bytes").is_some_and(|b| b > 1e6), "{text}");
    assert!(sample(&text, "meshd_reconcile_duration_seconds_count").is_some_and(|n| n >= 1.0), "{text}");

    // A command that waits shows what for and how long is left, in a terminal (script(1) gives
    // it one), and stays quiet in a pipe.
    let detach = format!(
        "{} --socket {} detach --netns {a} --grace 2s",
        binaries::meshctl().display(),
        cluster.node(1).socket().display()
    );
    let out =
        Command::new("script").args(["-qec", &detach, "/dev/null"]).output().expect("script (util-linux)");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", describe_failure("detach --grace in a terminal", &out));
    assert!(shown.contains("its tasks terminate") && shown.contains("s left"), "{shown:?}");
    let quiet = cluster.node(2).meshctl(&["detach", "--netns", &d, "--grace", "1s"]);
    assert!(quiet.status.success() && !String::from_utf8_lossy(&quiet.stderr).contains("left"), "{quiet:?}");
}

#[test]
fn a_flood_of_drops_does_not_grow_the_agent() {
    let mut cluster = Cluster::new("flood", 2);
    cluster.form_with(&["--metrics-addr", METRICS]);
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.31.0.0/24"]);
    cluster.node(1).meshctl_ok(&["network", "create", "back", "--subnet", "10.41.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "back");
    let a = cluster.add_namespace("a");
    let d = cluster.add_namespace("d");
    attach(cluster.node(1), &a, "front", None);
    let ip_d = attach(cluster.node(2), &d, "back", None);
    cluster.wait_for("n1 to know d", Duration::from_secs(10), |c| endpoints_on(c.node(1), "back") == 1);
    let pid = cluster.node(1).pid().unwrap();
    // A follower that reads everything, so events flow all the way out.
    let monitor = Monitor::start(cluster.node(1), &["--type", "drop", "--format", "json", "--follow"]);
    // Warm up: the history fills, the buffers reach their size.
    assert_eq!(flood(&cluster, &a, &ip_d, 50_000), 50_000);
    cluster.wait_for("the warm-up's events", Duration::from_secs(10), |_| monitor.lines.try_recv().is_ok());
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_bytes(pid);

    let sent = flood(&cluster, &a, &ip_d, 1_000_000);
    assert_eq!(sent, 1_000_000, "the flood was cut short by its time bound");
    let text = metrics(cluster.node(1));
    let after = rss_bytes(pid);
    let drops = sample(
        &text,
        "meshd_datapath_packets_total{verdict=\"dropped\",reason=\"drop-network-mismatch\",direction=\"from-container\"}",
    )
    .unwrap_or(0.0);
    assert!(drops >= 1_000_000.0, "every packet was dropped and counted: {drops}\n{text}");
    let suppressed =
        sample(&text, "meshd_monitor_events_total{type=\"drop\",outcome=\"suppressed\"}").unwrap_or(0.0);
    let emitted =
        sample(&text, "meshd_monitor_events_total{type=\"drop\",outcome=\"emitted\"}").unwrap_or(0.0);
    assert!(suppressed > 500_000.0, "the kernel's rate limit held most events back: {suppressed}");
    assert!(emitted < 200_000.0, "only a bounded number reached the agent: {emitted}");
    let grown = after.saturating_sub(before);
    eprintln!("RSS before {before} after {after} (+{grown} bytes); events emitted {emitted}, suppressed {suppressed}");
    assert!(grown < 4 << 20, "meshd grew by {grown} bytes during a flood of 1,000,000 drops");
    drop(monitor);
}

#[test]
fn the_web_view_shows_every_node_and_service_and_follows_a_node_going_down() {
    let mut cluster = Cluster::new("webview", 3);
    cluster.form_with(&["--metrics-addr", METRICS, "--gossip-suspect-timeout", "1s"]);
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.32.0.0/24"]);
    cluster.node(1).meshctl_ok(&["service", "create", "web", "--network", "front", "--publish", "8080:80"]);
    cluster.node(1).meshctl_ok(&["service", "create", "api", "--network", "front"]);
    cluster.wait_listed(&["service", "ls"], "api");
    for (node, service) in [(1, "web"), (2, "web"), (3, "api"), (2, "api")] {
        let ns = cluster.add_namespace(&format!("{service}{node}"));
        attach(cluster.node(node), &ns, "front", Some(service));
    }
    cluster.wait_for("4 tasks everywhere", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["service", "ls"]).matches("2/2").count() == 2
    });

    let work = cluster.work_dir().to_path_buf();
    let mut browser = Browser::open(&cluster.node(1).ns, &work, &format!("http://{METRICS}/"));
    let nodes_js = "JSON.stringify([...document.querySelectorAll('[data-node]')].map(e => [e.dataset.node, e.dataset.status]))";
    let services_js =
        "JSON.stringify([...document.querySelectorAll('tr[data-service]')].map(e => e.dataset.service))";
    let state = |browser: &mut Browser, js: &str| -> Value {
        serde_json::from_str(browser.eval(js).as_str().unwrap_or("[]")).unwrap_or(Value::Null)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let nodes = state(&mut browser, nodes_js);
        let services = state(&mut browser, services_js);
        let all_up = ["n1", "n2", "n3"]
            .iter()
            .all(|n| nodes.as_array().is_some_and(|a| a.contains(&serde_json::json!([n, "alive"]))));
        let all_services = ["web", "api"]
            .iter()
            .all(|s| services.as_array().is_some_and(|a| a.contains(&serde_json::json!(s))));
        let tasks = browser.eval("document.querySelectorAll('[data-task]').length").as_u64().unwrap_or(0);
        if all_up && all_services && tasks == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed every node and service: {nodes} {services} {tasks} tasks\n{}",
            browser.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // One more poll, so the rates have two answers to compare before the picture is taken.
    let first = browser.eval("document.body.dataset.updated").as_str().unwrap_or("").to_string();
    let polled = Instant::now();
    while browser.eval("document.body.dataset.updated").as_str().unwrap_or("") == first {
        assert!(polled.elapsed() < Duration::from_secs(10), "the page stopped polling");
        std::thread::sleep(Duration::from_millis(100));
    }
    let png = browser.screenshot();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG screenshot");
    if let Some(path) = std::env::var_os("MESHD_WEBVIEW_PNG") {
        std::fs::write(&path, &png).expect("write the screenshot");
    }

    // n3 dies; the page, never reloaded, shows it down within a few seconds.
    let updated_before = browser.eval("document.body.dataset.updated").as_str().unwrap_or("").to_string();
    cluster.node_mut(3).kill();
    let killed = Instant::now();
    loop {
        let nodes = state(&mut browser, nodes_js);
        if nodes.as_array().is_some_and(|a| a.contains(&serde_json::json!(["n3", "down"]))) {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(10), "n3 not shown down: {nodes}");
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("the page showed n3 down {:?} after the kill", killed.elapsed());
    let updated_after = browser.eval("document.body.dataset.updated").as_str().unwrap_or("").to_string();
    assert_ne!(updated_before, updated_after, "the page updated itself");
    assert_eq!(
        browser.eval("performance.getEntriesByType('navigation').length").as_u64(),
        Some(1),
        "no reload"
    );
}

/// How many endpoints `node` knows on `network` (`network ls` as JSON: the table's columns grow).
fn endpoints_on(node: &meshd_tests::Node, network: &str) -> u64 {
    let ls = node.meshctl_ok(&["--format", "json", "network", "ls"]);
    let ls: serde_json::Value = serde_json::from_str(&ls).expect("network ls JSON");
    ls.as_array()
        .and_then(|all| all.iter().find(|n| n["name"] == network))
        .and_then(|n| n["endpoints"].as_u64())
        .unwrap_or(0)
}
