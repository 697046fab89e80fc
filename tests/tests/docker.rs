//! Docker on meshd through its network and IPAM driver (`meshd --docker-plugin`): a Docker
//! network that is a meshd network, containers that are tasks of services, names that resolve
//! both ways between Docker and podman containers (also by a Docker network alias), a VIP over
//! Docker containers, a graceful
//! `docker stop`, and a rolling replacement under load through a published port.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use meshd_tests::load::wrk;
use meshd_tests::runtimes::docker::Dockerd;
use meshd_tests::runtimes::global::GlobalFiles;
use meshd_tests::runtimes::image::{busybox_tarball, http_get, http_server};
use meshd_tests::runtimes::podman::Podman;
use meshd_tests::Cluster;

/// The node's DNS address for Docker containers (meshd's default).
const DNS: &str = "169.254.53.53";

/// A task's server that drains like a good backend: on SIGTERM it keeps serving for `drain`
/// seconds (meshd stops sending it new flows at once), then exits.
fn draining_server(name: &str, drain: u32) -> String {
    format!(
        "echo {name} > /www/index.html; httpd -f -p 80 -h /www & pid=$!; \
         trap 'sleep {drain}; kill $pid' TERM; wait $pid"
    )
}

struct Setup {
    cluster: Cluster,
    /// Made before meshd creates /run/docker/plugins for its socket.
    _global: GlobalFiles,
    dockerd: Dockerd,
    podman: Podman,
}

/// n1: meshd + podman; n2: meshd with the Docker driver + dockerd. A Docker network `front`
/// made by `docker network create` (meshd creates the meshd network from it), services `api`
/// (podman) and `web` (Docker, published on 8093).
fn setup(tag: &str) -> Setup {
    let global = GlobalFiles::new();
    let mut cluster = Cluster::new(tag, 2);
    let driver = format!("{}-meshd", cluster.prefix());
    let plugin_socket = format!("/run/docker/plugins/{driver}.sock");
    let docker_dir = cluster.work_dir().join("docker2");
    std::fs::create_dir_all(&docker_dir).unwrap();
    let docker_host = format!("unix://{}", docker_dir.join("docker.sock").display());
    cluster.form_per_node(|index| {
        if index == 2 {
            vec![
                "--docker-plugin".into(),
                "--docker-plugin-socket".into(),
                plugin_socket.clone(),
                "--docker-host".into(),
                docker_host.clone(),
            ]
        } else {
            Vec::new()
        }
    });
    let dockerd = Dockerd::start(&docker_dir, &cluster.node(2).ns.path());
    let tarball = busybox_tarball(cluster.work_dir());
    dockerd.import(&tarball);
    let node1 = cluster.node(1);
    let podman = Podman::new(
        &cluster.work_dir().join("podman1"),
        &node1.ns.path(),
        &format!("{}-front", cluster.prefix()),
        "front",
        node1.socket(),
        None,
    );
    podman.import(&tarball);

    // The Docker network makes the meshd network (named after it, with its subnet).
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
    cluster.wait_listed(&["network", "ls"], "10.93.0.0/24");
    cluster.node(1).meshctl_ok(&["service", "create", "api", "--network", "front"]);
    cluster.node(1).meshctl_ok(&["service", "create", "web", "--network", "front", "--publish", "8093:80"]);
    cluster.wait_listed(&["service", "ls"], "web");
    Setup { cluster, _global: global, dockerd, podman }
}

/// `docker run -d` of a task of `service` on network front, asking meshd's DNS.
fn run_task(dockerd: &Dockerd, name: &str, service: &str, command: &str) {
    dockerd.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        &format!("name=front,driver-opt=meshd.service={service}"),
        "--dns",
        DNS,
        "local/busybox",
        "sh",
        "-c",
        command,
    ]);
}

fn ps(cluster: &Cluster, node: usize, service: &str) -> String {
    cluster.node(node).meshctl_ok(&["service", "ps", service])
}

#[test]
fn docker_containers_are_tasks_reachable_by_name_and_drain_when_stopped() {
    // Dropped in reverse: podman, dockerd, the cluster (meshd removes its plugin socket),
    // then the global paths.
    let Setup { _global, cluster, dockerd, podman, .. } = setup("docker");

    // A podman task of api on n1, two Docker tasks of web on n2.
    podman.ok(&[
        "run",
        "-d",
        "--name",
        "papi",
        "--network",
        &podman.network,
        "--network-alias",
        "api",
        "localhost/busybox",
        "sh",
        "-c",
        &http_server("papi"),
    ]);
    run_task(&dockerd, "dweb1", "web", &http_server("dweb1"));
    run_task(&dockerd, "dweb2", "web", &draining_server("dweb2", 3));
    let address = dockerd.address("dweb1", "front");
    assert!(address.starts_with("10.93.0."), "{address}");
    cluster.wait_for(
        "both Docker tasks in web, named after their containers, on both nodes",
        Duration::from_secs(15),
        |c| {
            (1..=2).all(|n| {
                let ps = ps(c, n, "web");
                ps.contains("dweb1") && ps.contains("dweb2")
            })
        },
    );
    // Docker's own resolver is the container's 127.0.0.11; it forwards meshd's names to --dns.
    let resolv = dockerd.ok(&["exec", "dweb1", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 127.0.0.11"), "{resolv}");

    // Docker container -> podman container by service name, and the other way round by
    // service (VIP, both Docker tasks) and by task name.
    let answer = dockerd.ok(&exec("dweb1", &http_get("http://api/")));
    assert_eq!(answer.trim(), "papi");
    let answer = podman.ok(&exec("papi", &http_get("http://dweb1/")));
    assert_eq!(answer.trim(), "dweb1");
    let mut seen = BTreeSet::new();
    for _ in 0..40 {
        let out = podman.cmd(&exec("papi", &http_get("http://web/")));
        seen.insert(String::from_utf8_lossy(&out.stdout).trim().to_string());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["dweb1", "dweb2"],
        "the VIP balances over both Docker tasks"
    );

    // A MAC the user asked for is the container's (meshd sets it on the peer it hands over,
    // and forwards to it).
    dockerd.ok(&[
        "run",
        "-d",
        "--name",
        "dmac",
        "--network",
        "front",
        "--mac-address",
        "02:42:0a:5d:00:99",
        "--dns",
        DNS,
        "local/busybox",
        "sh",
        "-c",
        &http_server("dmac"),
    ]);
    let mac = dockerd.ok(&["exec", "dmac", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(mac.trim(), "02:42:0a:5d:00:99");
    let answer =
        podman.ok(&exec("papi", &http_get(&format!("http://{}/", dockerd.address("dmac", "front")))));
    assert_eq!(answer.trim(), "dmac");
    dockerd.ok(&["rm", "--force", "dmac"]);

    // Docker's --network-alias, which Docker tells its API and not the driver: a name of the
    // container on the network, resolved from a podman container on the other node.
    dockerd.ok(&[
        "run",
        "-d",
        "--name",
        "dalias",
        "--network",
        "front",
        "--network-alias",
        "database",
        "--dns",
        DNS,
        "local/busybox",
        "sh",
        "-c",
        &http_server("dalias"),
    ]);
    cluster.wait_for("the alias on n1", Duration::from_secs(15), |c| {
        c.node(1).meshctl_ok(&["network", "inspect", "front"]).contains("database")
    });
    let answer = podman.ok(&exec("papi", &http_get("http://database/")));
    assert_eq!(answer.trim(), "dalias");
    dockerd.ok(&["rm", "--force", "dalias"]);

    // docker stop: the task drains as soon as the container is told to stop (it keeps
    // serving 3 s), and leaves the service when it is gone.
    let stopping = {
        let socket = dockerd.socket();
        std::thread::spawn(move || {
            let start = Instant::now();
            let out = std::process::Command::new("/usr/bin/docker")
                .arg("-H")
                .arg(format!("unix://{}", socket.display()))
                .args(["stop", "-t", "10", "dweb2"])
                .output()
                .unwrap();
            (out.status.success(), start.elapsed())
        })
    };
    let started = Instant::now();
    cluster.wait_for("dweb2 terminating on n1", Duration::from_secs(3), |c| {
        ps(c, 1, "web").lines().any(|l| l.contains("dweb2") && l.contains("terminating"))
    });
    let drained_after = started.elapsed();
    for _ in 0..10 {
        let out = podman.cmd(&exec("papi", &http_get("http://web/")));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "dweb1", "new flows avoid the stopping task");
    }
    let (stopped, took) = stopping.join().unwrap();
    assert!(stopped && took >= Duration::from_secs(3), "docker stop took {took:?}");
    assert!(drained_after < took, "drained ({drained_after:?}) before the container ended ({took:?})");
    cluster.wait_for("dweb2 gone from web on both nodes", Duration::from_secs(10), |c| {
        (1..=2).all(|n| !ps(c, n, "web").contains("dweb2"))
    });
    let left = cluster.node(2).meshctl_ok(&["attachment", "ls", "--owner", "docker/"]);
    assert_eq!(left.lines().count(), 2, "the header and dweb1's attachment only: {left}");
}

/// How long a replaced task keeps serving after SIGTERM. It must outlast the way of the drain
/// to the clients' ingress node (Docker's stop event, meshd's driver, gossip, n1's reconciler):
/// with 2 s a loaded CI run lost 19 of 63,000 requests (new flows still sent to a task that had
/// exited). Docker gives a stopping container 10 s by default.
const ROLLING_DRAIN: u32 = 5;

#[test]
fn a_rolling_replacement_with_docker_stop_and_run_loses_no_request() {
    let Setup { _global, mut cluster, podman: _podman, dockerd, .. } = setup("dockroll");
    for i in 1..=2 {
        run_task(
            &dockerd,
            &format!("web-v1-{i}"),
            "web",
            &draining_server(&format!("web-v1-{i}"), ROLLING_DRAIN),
        );
    }
    cluster.wait_for("two backends in n1's tables", Duration::from_secs(15), |c| {
        c.node(1).backends_in_table("web") == 2
    });
    let outside = cluster.add_underlay_client();
    let client_ns = cluster.clients()[outside].ns.name().to_string();
    let url = format!("http://{}:8093/", cluster.node(1).addr);
    cluster.wait_for("the published port answering", Duration::from_secs(10), |c| {
        c.clients()[outside].ns.exec("curl", ["-s", "--max-time", "2", &url]).status.success()
    });

    // The new tasks first: without a HEALTHCHECK each is in the tables once Docker has started
    // it, which may be before its server listens (Swarm without a HEALTHCHECK has the same start
    // race; a_docker_task_with_a_healthcheck_takes_flows_only_once_healthy has none), so they
    // start before the load. Then wrk through n1's published port (a
    // new connection per request) while every old task is stopped: the drain is meshd's part.
    for i in 1..=2 {
        let new = format!("web-v2-{i}");
        run_task(&dockerd, &new, "web", &draining_server(&new, ROLLING_DRAIN));
        cluster.wait_for("the new task in n1's tables", Duration::from_secs(15), |c| {
            c.node(1).backends_in_table("web") == 2 + i
        });
    }
    cluster.wait_for("every task answering", Duration::from_secs(10), |c| {
        let answers: std::collections::BTreeSet<String> = (0..20)
            .filter_map(|_| {
                let out = c.clients()[outside].ns.exec("curl", ["-s", "--max-time", "2", &url]);
                out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            })
            .collect();
        answers.len() == 4
    });
    let load = std::thread::spawn({
        let (ns, url) = (client_ns.clone(), url.clone());
        move || wrk(&ns, &url, 25, true)
    });
    std::thread::sleep(Duration::from_secs(2));
    for i in 1..=2 {
        dockerd.ok(&["stop", "-t", "10", &format!("web-v1-{i}")]);
        cluster.wait_for("the old task gone from n1's tables", Duration::from_secs(15), |c| {
            c.node(1).backends_in_table("web") == 4 - i
        });
    }
    let run = load.join().unwrap();
    assert!(run.requests > 100, "{}", run.report);
    assert_eq!(run.errors, 0, "requests lost during the replacement:\n{}", run.report);
    let ps = ps(&cluster, 1, "web");
    assert!(ps.contains("web-v2-1") && ps.contains("web-v2-2") && !ps.contains("web-v1-"), "{ps}");
}

/// `exec CONTAINER COMMAND...` as runtime arguments.
fn exec(container: &str, command: &[String]) -> Vec<String> {
    let mut args = vec!["exec".to_string(), container.to_string()];
    args.extend_from_slice(command);
    args
}

/// `docker run -d` of a task of web whose server listens only after `delay` seconds, with a
/// HEALTHCHECK that asks it (every second, unhealthy at the first failure).
fn run_checked_task(dockerd: &Dockerd, name: &str, delay: u32) {
    dockerd.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "name=front,driver-opt=meshd.service=web",
        "--dns",
        DNS,
        "--health-cmd",
        "wget -q -O /dev/null http://127.0.0.1/",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "local/busybox",
        "sh",
        "-c",
        &format!("sleep {delay}; {}", draining_server(name, ROLLING_DRAIN)),
    ]);
}

/// The state `service ps web` shows for `task` on n1.
fn task_state(cluster: &Cluster, task: &str) -> String {
    let ps = cluster.node(1).meshctl_ok(&["--format", "json", "service", "ps", "web"]);
    let ps: serde_json::Value = serde_json::from_str(&ps).unwrap();
    ps.as_array()
        .and_then(|all| all.iter().find(|t| t["task"] == task))
        .and_then(|t| t["state"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_docker_task_with_a_healthcheck_takes_flows_only_once_healthy() {
    let Setup { _global, mut cluster, podman: _podman, dockerd, .. } = setup("dockhlth");
    // The old task has no health check: healthy once Docker has started it.
    run_task(&dockerd, "web-v1", "web", &draining_server("web-v1", ROLLING_DRAIN));
    cluster.wait_for("web-v1 in n1's tables", Duration::from_secs(15), |c| {
        c.node(1).backends_in_table("web") == 1
    });
    let outside = cluster.add_underlay_client();
    let client_ns = cluster.clients()[outside].ns.name().to_string();
    let url = format!("http://{}:8093/", cluster.node(1).addr);
    cluster.wait_for("the published port answering", Duration::from_secs(10), |c| {
        c.clients()[outside].ns.exec("curl", ["-s", "--max-time", "2", &url]).status.success()
    });

    // A rolling replacement under load with no warm-up: the new task's server listens only 4 s
    // after it starts, and gets no flow before its HEALTHCHECK passes.
    let load = std::thread::spawn({
        let (ns, url) = (client_ns.clone(), url.clone());
        move || wrk(&ns, &url, 20, true)
    });
    std::thread::sleep(Duration::from_secs(1));
    run_checked_task(&dockerd, "web-v2", 4);
    cluster.wait_for("web-v2 starting", Duration::from_secs(10), |c| task_state(c, "web-v2") == "starting");
    assert_eq!(cluster.node(1).backends_in_table("web"), 1, "a starting task is no backend");
    cluster.wait_for("web-v2 healthy and in n1's tables", Duration::from_secs(20), |c| {
        c.node(1).backends_in_table("web") == 2
    });
    assert_eq!(task_state(&cluster, "web-v2"), "running");
    dockerd.ok(&["stop", "-t", "10", "web-v1"]);
    cluster.wait_for("web-v1 gone from n1's tables", Duration::from_secs(15), |c| {
        c.node(1).backends_in_table("web") == 1
    });
    let run = load.join().unwrap();
    assert!(run.requests > 100, "{}", run.report);
    assert_eq!(run.errors, 0, "requests lost during the replacement:\n{}", run.report);

    // Its check failing: out of the tables (no new flow), shown unhealthy.
    dockerd.ok(&["exec", "web-v2", "rm", "/www/index.html"]);
    cluster.wait_for("web-v2 unhealthy", Duration::from_secs(15), |c| task_state(c, "web-v2") == "unhealthy");
    cluster.wait_for("web-v2 out of n1's tables", Duration::from_secs(10), |c| {
        c.node(1).backends_in_table("web") == 0
    });
}

/// `docker network create` with every option Docker has for a network: the meshd network made
/// from it carries them, and a Docker container on it sees them (`ip addr`, `ip route`,
/// `ip link`) and is held by `--internal`. A Docker network bound to an existing meshd network
/// with other options is refused with the difference named.
#[test]
fn a_docker_network_with_every_option_makes_a_meshd_network_with_them() {
    let Setup { _global, cluster, podman: _podman, dockerd, .. } = setup("dockopts");
    let driver = format!("{}-meshd", cluster.prefix());
    dockerd.ok(&[
        "network",
        "create",
        "-d",
        &driver,
        "--ipam-driver",
        &driver,
        "--subnet",
        "10.94.0.0/24",
        "--ip-range",
        "10.94.0.128/25",
        "--gateway",
        "10.94.0.254",
        "--aux-address",
        "printer=10.94.0.130",
        "--internal",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "opts",
    ]);
    cluster.wait_for("network opts on n1", Duration::from_secs(15), |c| {
        c.node(1).meshctl_ok(&["network", "ls"]).contains("10.94.0.0/24")
    });
    let ls = cluster.node(1).meshctl_ok(&["--format", "json", "network", "ls"]);
    let ls: serde_json::Value = serde_json::from_str(&ls).unwrap();
    let opts = ls.as_array().unwrap().iter().find(|n| n["name"] == "opts").expect("opts listed").clone();
    assert_eq!(opts["gateway"], "10.94.0.254", "{opts}");
    assert_eq!(opts["options"]["ip_range"], "10.94.0.128/25", "{opts}");
    assert_eq!(opts["options"]["aux_addresses"]["printer"], "10.94.0.130", "{opts}");
    assert_eq!(opts["options"]["internal"], true, "{opts}");
    assert_eq!(opts["options"]["mtu"], 1400, "{opts}");

    for name in ["o1", "o2"] {
        dockerd.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "opts",
            "local/busybox",
            "sh",
            "-c",
            &http_server(name),
        ]);
    }
    let o1 = dockerd.address("o1", "opts");
    let o2 = dockerd.address("o2", "opts");
    for address in [&o1, &o2] {
        let last: u8 = address.strip_prefix("10.94.0.").and_then(|l| l.parse().ok()).expect(address);
        assert!(
            last >= 128 && last != 130 && last != 254,
            "{address}: inside --ip-range, not aux nor gateway"
        );
    }
    let addr = dockerd.ok(&["exec", "o1", "ip", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("inet {o1}/24")), "{addr}");
    let link = dockerd.ok(&["exec", "o1", "ip", "link", "show", "eth0"]);
    assert!(link.contains("mtu 1400"), "{link}");
    // Docker gives a container of an internal network no default route; any route it has goes
    // through the network's gateway or is on-link.
    let routes = dockerd.ok(&["exec", "o1", "ip", "route"]);
    for line in routes.lines().filter(|l| l.contains(" via ")) {
        assert!(line.contains("via 10.94.0.254"), "{routes}");
    }
    // Its peer answers; the node and the underlay do not (internal: nothing leaves the overlay).
    let answer = dockerd.ok(&exec("o1", &http_get(&format!("http://{o2}/"))));
    assert_eq!(answer.trim(), "o2");
    for outside in [cluster.node(2).addr.to_string(), cluster.node(1).addr.to_string()] {
        let out = dockerd.docker(&["exec", "o1", "ping", "-c", "1", "-W", "1", &outside]);
        assert!(!out.status.success(), "o1 reached {outside} from an internal network");
    }
    dockerd.ok(&["rm", "--force", "o1", "o2"]);

    // An existing meshd network, and a Docker network over it with other options: refused,
    // the difference named, and the meshd network unchanged.
    cluster.node(1).meshctl_ok(&["network", "create", "plain", "--subnet", "10.95.0.0/24"]);
    cluster.wait_for("network plain on n2", Duration::from_secs(10), |c| {
        c.node(2).meshctl_ok(&["network", "ls"]).contains("10.95.0.0/24")
    });
    let out = dockerd.docker(&[
        "network",
        "create",
        "-d",
        &driver,
        "--ipam-driver",
        &driver,
        "--subnet",
        "10.95.0.0/24",
        "--internal",
        "-o",
        "meshd.network=plain",
        "plainx",
    ]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && said.contains("internal (meshd: false, Docker: true)"), "{said}");
    let inspect = cluster.node(1).meshctl_ok(&["network", "inspect", "plain"]);
    assert!(!inspect.contains("internal"), "{inspect}");
}
