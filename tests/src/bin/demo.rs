//! The demo: a local meshd cluster in network namespaces, showing what works so far, with real
//! clients. Run by `scripts/demo.sh` (see the README). `--hold` keeps everything up until Enter
//! or Ctrl-C so it can be explored with `ip netns`, `meshctl --socket ...` and `bpftool`.

use std::time::Duration;

use meshd_tests::command::describe_failure;
use meshd_tests::runtimes::docker::Dockerd;
use meshd_tests::runtimes::global::GlobalFiles;
use meshd_tests::runtimes::image::{busybox_tarball, http_get};
use meshd_tests::runtimes::podman::Podman;
use meshd_tests::Cluster;
use nix::sys::signal::{SigSet, Signal};

const NODES: usize = 3;

fn say(text: &str) {
    println!("\n== {text}");
}

fn shell(prompt: &str, output: &str) {
    println!("$ {prompt}");
    print!("{output}");
}

/// The datapath table of `meshctl stats` (after the gossip counters).
fn datapath_part(stats: &str) -> String {
    stats.split("\n\n").nth(1).unwrap_or("").to_string()
}

fn main() {
    let hold = std::env::args().any(|a| a == "--hold");

    say(&format!("Building an underlay bridge and {NODES} node namespaces"));
    let mut cluster = Cluster::new("demo", NODES);
    for node in cluster.nodes() {
        println!("  {}  netns {}  underlay address {}", node.name, node.ns.name(), node.addr);
    }

    say("n1 starts a cluster; n2 and n3 join it with n1's join token (gossip on UDP/TCP 7946, encrypted)");
    cluster.form();
    let token = cluster.node(1).meshctl_ok(&["join-token", "manager"]);
    shell("meshctl join-token manager   # on n1", &token);
    for node in cluster.nodes().iter().skip(1) {
        println!(
            "$ meshd --state-dir ... --advertise-addr {} --join 10.77.0.1 --token-file join-token   # on {}",
            node.addr, node.name
        );
    }
    say(
        "Every node sees the same cluster; the three managers decide cluster-wide changes by majority (Raft)",
    );
    shell("meshctl node ls           # on n2", &cluster.node(2).meshctl_ok(&["node", "ls"]));

    say("Drain n3 from n1; the change reaches every node");
    cluster.node(1).meshctl_ok(&["node", "update", "--availability", "drain", "n3"]);
    cluster.wait_for("the drain everywhere", Duration::from_secs(10), |c| {
        c.nodes()
            .iter()
            .all(|n| n.nodes_json().iter().any(|x| x["name"] == "n3" && x["availability"] == "drain"))
    });
    println!("$ meshctl node update --availability drain n3   # on n1");
    shell("meshctl node ls           # on n2", &cluster.node(2).meshctl_ok(&["node", "ls"]));
    cluster.node(1).meshctl_ok(&["node", "update", "--availability", "active", "n3"]);

    say("kill -9 the meshd of n2: the others notice");
    cluster.node_mut(2).kill();
    let took = cluster.wait_for("n2 down on n1 and n3", Duration::from_secs(15), |c| {
        c.node(1).status_of("n2").as_deref() == Some("down")
            && c.node(3).status_of("n2").as_deref() == Some("down")
    });
    shell("meshctl node ls           # on n1", &cluster.node(1).meshctl_ok(&["node", "ls"]));
    println!(
        "(detected in {:.1} s; two of three managers are a majority: the cluster still decides)",
        took.as_secs_f64()
    );
    say("Start it again (same state directory, no join flags): it rejoins with the same ID");
    cluster.node_mut(2).start();
    cluster.wait_for("n2 back", Duration::from_secs(15), |c| {
        c.nodes().iter().all(|n| n.count_status("alive") == NODES)
    });
    shell("meshctl node ls           # on n3", &cluster.node(3).meshctl_ok(&["node", "ls"]));

    say("An overlay network, and two containers (network namespaces) on different nodes");
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.10.0.0/24"]);
    println!("$ meshctl network create front --subnet 10.10.0.0/24   # on n1");
    cluster.wait_listed(&["network", "ls"], "front");
    shell("meshctl network ls        # on n3", &cluster.node(3).meshctl_ok(&["network", "ls"]));
    let web = cluster.add_namespace("web");
    let client = cluster.add_namespace("client");
    let web_ip = cluster.node(3).meshctl_ok(&["attach", "--netns", &web, "--network", "front"]);
    shell(&format!("meshctl attach --netns {web} --network front   # on n3"), &web_ip);
    let client_ip = cluster.node(1).meshctl_ok(&["attach", "--netns", &client, "--network", "front"]);
    shell(&format!("meshctl attach --netns {client} --network front   # on n1"), &client_ip);
    let web_ip = web_ip.trim().to_string();
    cluster.wait_for("the overlay path", Duration::from_secs(10), |c| {
        c.namespace(&client).exec("ping", ["-c", "1", "-W", "1", &web_ip]).status.success()
    });
    let ping = cluster.namespace(&client).exec("ping", ["-c", "3", "-i", "0.2", &web_ip]);
    if !ping.status.success() {
        panic!("{}", describe_failure("ping", &ping));
    }
    shell(
        &format!("ip netns exec {client} ping -c 3 {web_ip}   # n1 -> n3 over VXLAN, forwarded in eBPF"),
        &String::from_utf8_lossy(&ping.stdout),
    );

    say("What the eBPF programs decided on n1 and n3 (per interface, direction and verdict)");
    shell(
        "meshctl stats             # on n1 (datapath part)",
        &datapath_part(&cluster.node(1).meshctl_ok(&["stats"])),
    );
    shell(
        "meshctl stats             # on n3 (datapath part)",
        &datapath_part(&cluster.node(3).meshctl_ok(&["stats"])),
    );

    say("A service: a VIP balanced in eBPF over tasks on two nodes, found by name at 127.0.0.11,\n   and port 8080 published on every node (the routing mesh)");
    cluster.node(1).meshctl_ok(&["service", "create", "web", "--network", "front", "--publish", "8080:80"]);
    println!("$ meshctl service create web --network front --publish 8080:80   # on n1");
    cluster.wait_listed(&["service", "ls"], "web");
    let mut servers = Vec::new();
    for node in [2, 3] {
        let task = format!("web.{}", node - 1);
        let ns = cluster.add_namespace(&format!("web{}", node - 1));
        cluster.node(node).meshctl_ok(&[
            "attach",
            "--netns",
            &ns,
            "--network",
            "front",
            "--service",
            "web",
            "--name",
            &task,
        ]);
        println!("$ meshctl attach --netns {ns} --network front --service web --name {task}   # on n{node}");
        // Each task answers with its name and the client address it sees.
        servers.push(meshd_tests::http::NamedServer::start_showing_client(cluster.namespace(&ns), 80, &task));
    }
    cluster.wait_for("both tasks healthy on n1", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["service", "ls"]).contains("2/2")
    });
    shell("meshctl service ls        # on n1", &cluster.node(1).meshctl_ok(&["service", "ls"]));
    shell("meshctl service ps web    # on n1", &cluster.node(1).meshctl_ok(&["service", "ps", "web"]));
    let dig = cluster.namespace(&client).exec("dig", ["+short", "web"]);
    shell(&format!("ip netns exec {client} dig +short web"), &String::from_utf8_lossy(&dig.stdout));
    let dig = cluster.namespace(&client).exec("dig", ["+short", "tasks.web"]);
    shell(&format!("ip netns exec {client} dig +short tasks.web"), &String::from_utf8_lossy(&dig.stdout));
    println!("$ for i in 1 2 3 4 5 6; do ip netns exec {client} curl -s http://web/; done");
    for _ in 0..6 {
        let out = cluster.namespace(&client).exec("curl", ["-s", "--max-time", "3", "http://web/"]);
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }

    say("The routing mesh: a client on the underlay (not a node) reaches port 8080 on every node,\n   n1 included though it has no task; the tasks see the client's own address (no SNAT)");
    let outside = cluster.add_underlay_client();
    let (outside_ns, outside_addr) = {
        let c = &cluster.clients()[outside];
        (c.ns.name().to_string(), c.addr)
    };
    println!("  underlay client: netns {outside_ns}, address {outside_addr}");
    for node in 1..=3 {
        let url = format!("http://{}:8080/", cluster.node(node).addr);
        println!("$ for i in 1 2 3; do ip netns exec {outside_ns} curl -s {url}; done");
        for _ in 0..3 {
            let out = cluster.clients()[outside].ns.exec("curl", ["-s", "--max-time", "3", &url]);
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }
    println!(
        "$ ip netns exec {} curl -s http://localhost:8080/   # from n1 itself",
        cluster.node(1).ns.name()
    );
    let out = cluster.node(1).ns.exec("curl", ["-s", "--max-time", "3", "http://localhost:8080/"]);
    print!("{}", String::from_utf8_lossy(&out.stdout));
    shell(
        "meshctl service inspect web   # on n1",
        &cluster.node(1).meshctl_ok(&["service", "inspect", "web"]),
    );
    drop(servers);

    // Made before meshd serves its Docker plugin socket, dropped after meshd removed it.
    let global = GlobalFiles::new();
    let runtimes = runtimes_scene(&mut cluster);

    say("Gossip counters on n1 (what was received, sent, and dropped and why)");
    let stats = cluster.node(1).meshctl_ok(&["stats"]);
    shell(
        "meshctl stats             # on n1 (gossip part)",
        &format!("{}\n", stats.split("\n\n").next().unwrap_or("")),
    );

    if hold {
        say("Holding the cluster up; press Ctrl-C to clean up");
        println!("  try: meshctl --socket {} node ls", cluster.node(1).socket().display());
        println!("       ip netns list | grep {}", cluster.prefix());
        // Blocked only now: meshd (already started) must not inherit a blocked SIGTERM, and
        // Ctrl-C must end this wait rather than kill the demo before its guards clean up.
        let mut signals = SigSet::empty();
        signals.add(Signal::SIGINT);
        signals.add(Signal::SIGTERM);
        signals.thread_block().expect("block signals");
        let _ = signals.wait();
    }

    say("Cleaning up: removing the containers, stopping dockerd and meshd, deleting namespaces and pins");
    drop(runtimes);
    drop(cluster);
    drop(global);
    println!("done");
}

/// What the runtime scene leaves running (for `--hold`); dropped before the cluster.
struct Runtimes {
    _dockerd: Dockerd,
    _podman: Podman,
}

/// A podman container (CNI, meshd-cni) on n2 and a Docker container (the meshd driver) on n3
/// reach each other by service name over the overlay.
fn runtimes_scene(cluster: &mut Cluster) -> Runtimes {
    say("Real container runtimes: podman on n2 through the CNI plugin meshd-cni, Docker on n3\n   through meshd's network driver; each container is a task of a service");
    let driver = format!("{}-meshd", cluster.prefix());
    let docker_dir = cluster.work_dir().join("docker3");
    std::fs::create_dir_all(&docker_dir).unwrap();
    let docker_flags = [
        "--docker-plugin".to_string(),
        "--docker-plugin-socket".to_string(),
        format!("/run/docker/plugins/{driver}.sock"),
        "--docker-host".to_string(),
        format!("unix://{}", docker_dir.join("docker.sock").display()),
    ];
    cluster.node_mut(3).stop();
    let mut args = cluster.node(3).base_args();
    args.extend(docker_flags.iter().cloned());
    cluster.node_mut(3).start_with(&args);
    println!("$ meshd ... {}   # n3 restarted as the node's Docker network driver", docker_flags.join(" "));
    let dockerd = Dockerd::start(&docker_dir, &cluster.node(3).ns.path());
    let tarball = busybox_tarball(cluster.work_dir());
    dockerd.import(&tarball);
    let node2 = cluster.node(2);
    let cni_name = format!("{}-front", cluster.prefix());
    let podman = Podman::new(
        &cluster.work_dir().join("podman2"),
        &node2.ns.path(),
        &cni_name,
        "front",
        node2.socket(),
        None,
    );
    podman.import(&tarball);
    println!("  n2: podman with the CNI backend; its network {cni_name} is a meshd-cni conflist:");
    println!("      {{\"cniVersion\":\"1.0.0\",\"name\":\"{cni_name}\",\"plugins\":[{{\"type\":\"meshd-cni\",\"network\":\"front\",...}}]}}");

    cluster.node(1).meshctl_ok(&["service", "create", "podweb", "--network", "front"]);
    cluster.node(1).meshctl_ok(&["service", "create", "dockweb", "--network", "front"]);
    println!(
        "$ meshctl service create podweb --network front; meshctl service create dockweb --network front"
    );
    cluster.wait_listed(&["service", "ls"], "dockweb");

    let created = dockerd.ok(&[
        "network",
        "create",
        "-d",
        &driver,
        "--ipam-driver",
        &driver,
        "--subnet",
        "10.10.0.0/24",
        "front",
    ]);
    shell(
        &format!("docker network create -d meshd --ipam-driver meshd --subnet 10.10.0.0/24 front   # on n3 (driver {driver})"),
        &created,
    );
    let page = |name: &str, runtime: &str| {
        format!("echo 'hello from {name} ({runtime})' > /www/index.html && exec httpd -f -p 80 -h /www")
    };
    podman.ok(&[
        "run",
        "-d",
        "--name",
        "pod1",
        "--network",
        &podman.network,
        "--network-alias",
        "podweb",
        "localhost/busybox",
        "sh",
        "-c",
        &page("pod1", "podman on n2"),
    ]);
    println!(
        "$ podman run -d --name pod1 --network {cni_name} --network-alias podweb busybox httpd ...   # on n2"
    );
    dockerd.ok(&[
        "run",
        "-d",
        "--name",
        "dock1",
        "--network",
        "name=front,driver-opt=meshd.service=dockweb",
        "--dns",
        "169.254.53.53",
        "local/busybox",
        "sh",
        "-c",
        &page("dock1", "docker on n3"),
    ]);
    println!("$ docker run -d --name dock1 --network name=front,driver-opt=meshd.service=dockweb --dns 169.254.53.53 busybox httpd ...   # on n3");
    cluster.wait_for("both containers as tasks on n1", Duration::from_secs(15), |c| {
        let ls = c.node(1).meshctl_ok(&["service", "ls"]);
        ls.lines()
            .filter(|l| (l.starts_with("podweb") || l.starts_with("dockweb")) && l.contains("1/1"))
            .count()
            == 2
    });
    shell("meshctl service ps podweb   # on n1", &cluster.node(1).meshctl_ok(&["service", "ps", "podweb"]));
    shell("meshctl service ps dockweb  # on n1", &cluster.node(1).meshctl_ok(&["service", "ps", "dockweb"]));
    let mut podman_exec = vec!["exec".to_string(), "pod1".to_string()];
    podman_exec.extend(http_get("http://dockweb/"));
    shell(
        "podman exec pod1 wget -qO- http://dockweb/   # on n2: to the Docker container on n3",
        &podman.ok(&podman_exec),
    );
    let mut docker_exec = vec!["exec".to_string(), "dock1".to_string()];
    docker_exec.extend(http_get("http://podweb/"));
    shell(
        "docker exec dock1 wget -qO- http://podweb/   # on n3: to the podman container on n2",
        &dockerd.ok(&docker_exec),
    );
    println!("  (Docker's resolver at 127.0.0.11 in dock1 forwards meshd's names to --dns 169.254.53.53,");
    println!("   which meshd answers on n3 for the networks of the asking container)");
    Runtimes { _dockerd: dockerd, _podman: podman }
}
