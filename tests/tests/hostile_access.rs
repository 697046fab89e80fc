//! What a container or a crowd of underlay addresses can take from a node before anyone is
//! authenticated (issue 19, findings 4, 5 and 8): not its managers (idle connections to TCP 7946
//! from a container, or from 100 underlay addresses, cannot make an attach or a network create
//! fail), not its host services (a container reaches no node's metrics), not its open files (the
//! Docker DNS address's TCP connections are bounded).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use meshd_tests::attack::{drops, NOBODY};
use meshd_tests::cluster::node_underlay_addr;
use meshd_tests::command::stdout;
use meshd_tests::http::NamedServer;
use meshd_tests::netns::Netns;
use meshd_tests::runtimes::docker::Dockerd;
use meshd_tests::runtimes::global::GlobalFiles;
use meshd_tests::runtimes::image::busybox_tarball;
use meshd_tests::Cluster;

/// Holds idle TCP connections open: for each target (ip:port, comma-separated) and each source
/// address (comma-separated; empty: the default one), `per` connections, each sending one byte
/// of a TLS handshake (0x16) so the server waits for the rest (unless the fifth argument is
/// `silent`); a closed one is opened again, for `secs` seconds. Prints how many connects
/// succeeded.
const HOLD: &str = r#"
import resource, socket, sys, time
targets = [t.rsplit(':', 1) for t in sys.argv[1].split(',')]
per, secs = int(sys.argv[2]), float(sys.argv[3])
sources = sys.argv[4].split(',') if len(sys.argv) > 4 and sys.argv[4] else ['']
silent = len(sys.argv) > 5 and sys.argv[5] == 'silent'
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held, connected, end = {}, 0, time.time() + secs
while time.time() < end:
    for host, port in targets:
        for src in sources:
            for i in range(per):
                key = (host, port, src, i)
                s = held.get(key)
                if s is not None:
                    try:
                        if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b'':
                            s.close(); s = None
                    except BlockingIOError:
                        pass
                    except OSError:
                        s.close(); s = None
                if s is None:
                    s = socket.socket()
                    s.settimeout(0.2)
                    try:
                        if src: s.bind((src, 0))
                        s.connect((host, int(port)))
                        if not silent: s.send(b'\x16')
                        s.setblocking(False)
                        connected += 1
                    except OSError:
                        s.close(); s = None
                held[key] = s
    time.sleep(0.1)
print(connected, flush=True)
"#;

/// A background process holding connections ([`HOLD`]); killed on drop if still running.
struct Holder {
    child: Option<Child>,
}

impl Holder {
    /// Runs [`HOLD`] in `ns`, as nobody when `unprivileged` (a container's process).
    fn start(ns: &Netns, unprivileged: bool, targets: &str, per: usize, secs: u32, sources: &str) -> Holder {
        Holder::start_with(ns, unprivileged, targets, per, secs, sources, "handshake")
    }

    fn start_with(
        ns: &Netns,
        unprivileged: bool,
        targets: &str,
        per: usize,
        secs: u32,
        sources: &str,
        first: &str,
    ) -> Holder {
        Holder::start_in(&ns.path(), unprivileged, targets, per, secs, sources, first)
    }

    /// Like [`start_with`](Self::start_with), in the network namespace at `netns` (a path).
    fn start_in(
        netns: &str,
        unprivileged: bool,
        targets: &str,
        per: usize,
        secs: u32,
        sources: &str,
        first: &str,
    ) -> Holder {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={netns}"));
        if unprivileged {
            cmd.args(["setpriv", "--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"]);
        }
        cmd.args([
            "/usr/bin/python3",
            "-c",
            HOLD,
            targets,
            &per.to_string(),
            &secs.to_string(),
            sources,
            first,
        ]);
        let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn python3");
        Holder { child: Some(child) }
    }

    /// Waits for the end of its run: how many connects succeeded.
    fn connected(mut self) -> u64 {
        let out = self.child.take().expect("running").wait_with_output().expect("wait python3");
        let text = stdout(&out);
        text.trim().parse().unwrap_or_else(|_| {
            panic!("the holder printed {text:?}: {}", String::from_utf8_lossy(&out.stderr))
        })
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn gossip_targets(nodes: &[usize]) -> String {
    nodes.iter().map(|&n| format!("{}:7946", node_underlay_addr(n))).collect::<Vec<_>>().join(",")
}

const METRICS_PORT: u16 = 9464;

/// Finding 4 (a container) and 8: a container on worker n2 holding idle connections to every
/// node's gossip port connects to none of them, and n2 and n3 still attach to a new network (a
/// block from the only manager, n1, over TCP 7946); it gets no answer from another node's
/// metrics either, while it still reaches a published port on any node's address.
#[test]
fn a_container_opens_no_connection_to_any_nodes_gossip_port_or_host_service() {
    let mut cluster = Cluster::new("hostctr", 3);
    cluster.form_roles(1, &["--metrics-addr", &format!("0.0.0.0:{METRICS_PORT}")]);
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.72.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "front");
    cluster.node(1).meshctl_ok(&["service", "create", "web", "--network", "front", "--publish", "8080:80"]);
    cluster.wait_listed(&["service", "ls"], "8080:80/tcp");
    let (web, _) = cluster.attach_task(3, "web1", "front", "web", "web.1");
    let _server = NamedServer::start_showing_client(cluster.namespace(&web), 80, "web.1");
    let boxed = cluster.add_namespace("box");
    cluster.node(2).meshctl_ok(&["attach", "--netns", &boxed, "--network", "front"]);
    let later: Vec<String> =
        [2, 3].iter().map(|node| cluster.add_namespace(&format!("back{node}"))).collect();
    let client = cluster.add_underlay_client();
    let ns = cluster.namespace(&boxed);

    // Idle connections to all three gossip ports (n2's own included) while n2 and n3 attach to
    // a network created meanwhile: their first attach asks the manager for a block.
    let holder = Holder::start(ns, true, &gossip_targets(&[1, 2, 3]), 8, 12, "");
    std::thread::sleep(Duration::from_secs(2));
    cluster.node(1).meshctl_ok(&["network", "create", "back", "--subnet", "10.73.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "back");
    for (node, ns) in [2, 3].into_iter().zip(&later) {
        let out = cluster.node(node).meshctl(&["attach", "--netns", ns, "--network", "back"]);
        assert!(out.status.success(), "n{node}'s attach failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let connected = holder.connected();
    assert_eq!(connected, 0, "the container connected to a gossip port {connected} times");
    let stats = cluster.node(2).meshctl_ok(&["--format", "json", "stats"]);
    assert!(drops(&stats, "drop-to-node") > 0, "{stats}");

    // Another node's host service: no answer to the container, while the node's own address
    // serves it (the underlay sees it).
    let metrics = format!("http://{}:{METRICS_PORT}/metrics", node_underlay_addr(1));
    let out = ns.exec("curl", ["-s", "--max-time", "2", "-o", "/dev/null", "-w", "%{http_code}", &metrics]);
    assert!(!out.status.success(), "the container read n1's metrics: {}", stdout(&out));
    let out =
        cluster.clients()[client].ns.exec("curl", ["-s", "--max-time", "2", "-o", "/dev/null", &metrics]);
    assert!(out.status.success(), "n1 serves its metrics to the underlay");

    // A published port still answers the container on every node's address.
    for node in 1..=3 {
        let url = format!("http://{}:8080/", node_underlay_addr(node));
        let out = ns.exec("curl", ["-s", "--max-time", "3", &url]);
        assert!(stdout(&out).starts_with("web.1 "), "n{node}'s published port: {}", stdout(&out));
    }
}

/// Finding 4 (the underlay): 100 addresses on the underlay, each holding 8 idle connections to
/// the manager's gossip port, cannot make a worker's network create or attach fail; the
/// manager counts what it refused.
#[test]
fn idle_connections_from_100_underlay_addresses_do_not_starve_members() {
    let mut cluster = Cluster::new("hostflood", 3);
    cluster.form_roles(1, &[] as &[&str]);
    let crowd = cluster.add_underlay_client();
    let later: Vec<String> =
        [2, 3].iter().map(|node| cluster.add_namespace(&format!("back{node}"))).collect();
    let ns = &cluster.clients()[crowd].ns;
    let sources: Vec<String> = (100..200).map(|host| format!("10.77.0.{host}")).collect();
    for source in &sources {
        ns.ip(["addr", "add", &format!("{source}/24"), "dev", "eth0"]);
    }
    let holder = Holder::start(ns, false, &gossip_targets(&[1]), 8, 15, &sources.join(","));
    std::thread::sleep(Duration::from_secs(3));
    cluster.node(1).meshctl_ok(&["network", "create", "back", "--subnet", "10.73.0.0/24"]);
    cluster.wait_listed(&["network", "ls"], "back");
    for (node, ns) in [2, 3].into_iter().zip(&later) {
        let out = cluster.node(node).meshctl(&["attach", "--netns", ns, "--network", "back"]);
        assert!(out.status.success(), "n{node}'s attach failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let full = cluster.node(1).gossip_stat("tcp_strangers_full");
    let connected = holder.connected();
    assert!(connected >= 800, "the crowd held its connections: {connected}");
    assert!(full > 0, "n1 refused the crowd beyond its pool");
    eprintln!("the crowd connected {connected} times; n1 refused {full} at once");
}

/// Finding 9: a join token on meshd's command line (which every local user reads in `ps`) is
/// refused before anything starts, unless the test-only opt-in says otherwise.
#[test]
fn a_join_token_on_the_command_line_is_refused() {
    let mut cluster = Cluster::new("hosttoken", 2);
    cluster.node_mut(1).start();
    let token = cluster.node(1).meshctl_ok(&["join-token", "worker"]).trim().to_string();
    let mut args = cluster.node(2).base_args();
    args.extend(["--join".into(), "10.77.0.1".into(), "--token".into(), token.clone()]);
    let out = cluster.node(2).meshd_command(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = meshd_tests::command::stderr(&out);
    assert!(err.contains("--token on the command line") && err.contains("--token-file"), "{err}");
    assert!(!cluster.node(2).state_dir().exists(), "nothing created");
    assert_eq!(cluster.node(1).gossip_stat("joins_accepted"), 0, "it never asked");

    // The same token from a file (what the harness does) joins.
    let mut args = cluster.node(2).base_args();
    args.extend(cluster.node(2).join_args("10.77.0.1", &token));
    cluster.node_mut(2).start_with(&args);
    cluster.wait_for("n2 alive on n1", Duration::from_secs(20), |c| c.node(1).count_status("alive") == 2);
}

/// meshd's open files (its /proc/PID/fd entries).
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|dir| dir.count()).unwrap_or(0)
}

/// The most files meshd had open while `holder` ran, sampled until it ended.
fn peak_open_files(pid: u32, secs: u64) -> usize {
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    let mut peak = 0;
    while std::time::Instant::now() < until {
        peak = peak.max(open_files(pid));
        std::thread::sleep(Duration::from_millis(250));
    }
    peak
}

/// Finding 5: 1,500 idle TCP connections to the Docker DNS address (169.254.53.53, served with
/// `--docker-plugin`) from an unprivileged container, then from an underlay host, leave meshd's
/// open files where they were (the address's TCP is bounded like every namespace's 127.0.0.11,
/// and sources that no Docker container owns get only a REFUSED); a query over TCP still gets
/// its answer afterwards.
#[test]
fn tcp_connections_to_the_docker_dns_address_leave_meshds_open_files_bounded() {
    const DNS: &str = "169.254.53.53";
    let mut cluster = Cluster::new("hostdns", 1);
    let mut args = cluster.node(1).base_args();
    let dir = cluster.work_dir().to_path_buf();
    args.extend([
        "--docker-plugin".to_string(),
        "--docker-plugin-socket".to_string(),
        dir.join("plugin.sock").display().to_string(),
        "--docker-host".to_string(),
        format!("unix://{}", dir.join("no-docker.sock").display()),
    ]);
    cluster.node_mut(1).start_with(&args);
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.72.0.0/24"]);
    let boxed = cluster.add_namespace("box");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &boxed, "--network", "front"]);
    let client = cluster.add_underlay_client();
    cluster.clients()[client].ns.ip(["route", "add", &format!("{DNS}/32"), "via", "10.77.0.1"]);
    let pid = cluster.node(1).pid().expect("meshd runs");
    let ask =
        |ns: &Netns| stdout(&ns.exec("dig", ["+tcp", "+time=3", "+tries=1", &format!("@{DNS}"), "web"]));
    let answer = ask(cluster.namespace(&boxed));
    assert!(answer.contains("status: REFUSED"), "the container asks over TCP: {answer}");

    let before = open_files(pid);
    for (who, ns, unprivileged) in [
        ("a container", cluster.namespace(&boxed), true),
        ("an underlay host", &cluster.clients()[client].ns, false),
    ] {
        let holder = Holder::start(ns, unprivileged, &format!("{DNS}:53"), 1500, 8, "");
        let peak = peak_open_files(pid, 9);
        let connected = holder.connected();
        eprintln!("{who}: {connected} connections; meshd's open files {before} -> peak {peak}");
        assert!(connected >= 1500, "{who} opened its connections: {connected}");
        assert!(peak <= before + 32, "{who} raised meshd's open files from {before} to {peak}");
        let answer = ask(ns);
        assert!(answer.contains("status: REFUSED"), "TCP still answers after {who}: {answer}");
    }
    let stats = cluster.node(1).meshctl_ok(&["--format", "json", "stats"]);
    assert!(stats.contains("tcp_refused_unknown"), "{stats}");
}

/// Every TCP listener bounded, the metrics one too (`--metrics-addr 0.0.0.0:PORT` faces the
/// underlay): 1,000 idle connections from 40 underlay addresses leave meshd's open files within
/// the listener's bound, another host scrapes once they go, and the refusals are counted.
#[test]
fn idle_connections_to_the_metrics_listener_are_bounded() {
    let mut cluster = Cluster::new("hostmetrics", 1);
    let mut args = cluster.node(1).base_args();
    args.extend(["--metrics-addr".to_string(), format!("0.0.0.0:{METRICS_PORT}")]);
    cluster.node_mut(1).start_with(&args);
    let crowd = cluster.add_underlay_client();
    let scraper = cluster.add_underlay_client();
    let ns = &cluster.clients()[crowd].ns;
    let sources: Vec<String> = (100..140).map(|host| format!("10.77.0.{host}")).collect();
    for source in &sources {
        ns.ip(["addr", "add", &format!("{source}/24"), "dev", "eth0"]);
    }
    let pid = cluster.node(1).pid().expect("meshd runs");
    let before = open_files(pid);
    let target = format!("{}:{METRICS_PORT}", node_underlay_addr(1));
    let holder = Holder::start_with(ns, false, &target, 25, 8, &sources.join(","), "silent");
    let peak = peak_open_files(pid, 6);
    let connected = holder.connected();
    // The crowd fills the listener's total bound while it lasts (a scraper on the same open
    // port is refused then); nothing of it stays after.
    let metrics = format!("http://{target}/metrics");
    let out = cluster.clients()[scraper].ns.exec("curl", ["-s", "--max-time", "3", &metrics]);
    let text = stdout(&out);
    eprintln!("{connected} connections; meshd's open files {before} -> peak {peak}");
    assert!(connected >= 1000, "the crowd connected: {connected}");
    assert!(peak <= before + 64 + 8, "meshd's open files rose from {before} to {peak}");
    let refused = text
        .lines()
        .find(|l| l.starts_with("meshd_http_connections_refused_total{reason=\"per_source\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no refusal counter in the scrape: {text}"));
    assert!(refused > 0, "refusals counted");
}

/// Finding 5 as it was found: an unprivileged process in a Docker container (on a meshd network,
/// `--dns 169.254.53.53`) opens 1,500 idle TCP connections to the node's DNS address. Its address
/// is one meshd answers, so they count against its namespace's share: meshd's open files stay
/// bounded, and the container's query over TCP still gets its answer once they close.
#[test]
fn tcp_connections_from_a_docker_container_to_its_dns_address_are_its_share() {
    const DNS: &str = "169.254.53.53";
    let global = GlobalFiles::new();
    let mut cluster = Cluster::new("hostdock", 1);
    let driver = format!("{}-meshd", cluster.prefix());
    let docker_dir = cluster.work_dir().join("docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    let mut args = cluster.node(1).base_args();
    args.extend([
        "--docker-plugin".to_string(),
        "--docker-plugin-socket".to_string(),
        format!("/run/docker/plugins/{driver}.sock"),
        "--docker-host".to_string(),
        format!("unix://{}", docker_dir.join("docker.sock").display()),
    ]);
    cluster.node_mut(1).start_with(&args);
    let dockerd = Dockerd::start(&docker_dir, &cluster.node(1).ns.path());
    dockerd.import(&busybox_tarball(cluster.work_dir()));
    dockerd.ok(&[
        "network",
        "create",
        "-d",
        &driver,
        "--ipam-driver",
        &driver,
        "--subnet",
        "10.93.0.0/24",
        "front",
    ]);
    cluster.node(1).meshctl_ok(&["service", "create", "api", "--network", "front"]);
    dockerd.ok(&[
        "run",
        "-d",
        "--name",
        "api1",
        "--network",
        "name=front,driver-opt=meshd.service=api",
        "--dns",
        DNS,
        "local/busybox",
        "sleep",
        "600",
    ]);
    let pid = dockerd.ok(&["inspect", "-f", "{{.State.Pid}}", "api1"]).trim().to_string();
    let netns = format!("/proc/{pid}/ns/net");
    let dig = || {
        let out = Command::new("nsenter")
            .arg(format!("--net={netns}"))
            .args(["dig", "+tcp", "+time=3", "+tries=1", &format!("@{DNS}"), "api"])
            .output()
            .unwrap();
        stdout(&out)
    };
    cluster.wait_for("the container's DNS over TCP", Duration::from_secs(10), |_| {
        let answer = dig();
        answer.contains("status: NOERROR") && answer.contains("10.93.0.")
    });

    let meshd = cluster.node(1).pid().expect("meshd runs");
    let before = open_files(meshd);
    let holder = Holder::start_in(&netns, true, &format!("{DNS}:53"), 1500, 8, "", "handshake");
    let peak = peak_open_files(meshd, 9);
    let connected = holder.connected();
    eprintln!("a Docker container: {connected} connections; meshd's open files {before} -> peak {peak}");
    assert!(connected >= 1500, "the container opened its connections: {connected}");
    assert!(peak <= before + 32, "the container raised meshd's open files from {before} to {peak}");
    let stats: serde_json::Value =
        serde_json::from_str(&cluster.node(1).meshctl_ok(&["--format", "json", "stats"])).unwrap();
    let refused =
        stats["dns"].as_array().unwrap().iter().find(|r| r["name"] == "tcp_refused_namespace").unwrap()
            ["value"]
            .as_u64()
            .unwrap();
    assert!(refused > 0, "the container's share was hit and counted: {stats}");
    // Its idle connections close within the listener's timeout, and it asks again.
    cluster.wait_for("the container's DNS over TCP again", Duration::from_secs(10), |_| {
        dig().contains("status: NOERROR")
    });
    drop(dockerd);
    drop(global);
}
