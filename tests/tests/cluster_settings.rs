//! Cluster-wide settings fixed when the cluster is created (Swarm's `swarm init` flags): the
//! default address pools that networks without `--subnet` come from, picked by the managers so
//! no subnet is handed out twice even while the leader dies; the data path (VXLAN) port, which
//! a joining node learns and the tunnel really uses; and bad flags refused before anything is
//! created.

use std::time::{Duration, Instant};

use meshd_tests::cluster::{Cluster, Node};
use serde_json::Value;

fn json(node: &Node, args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&node.meshctl_ok(&all)).expect("meshctl JSON")
}

fn leader(from: &Node) -> Option<String> {
    from.nodes_json()
        .iter()
        .find(|n| n["manager_status"] == "leader")
        .and_then(|n| n["name"].as_str())
        .map(str::to_string)
}

/// name -> subnet, as `network ls` on `node` shows them.
fn subnets(node: &Node) -> Vec<(String, Ipv4Net)> {
    let mut out: Vec<(String, Ipv4Net)> = json(node, &["network", "ls"])
        .as_array()
        .expect("a list")
        .iter()
        .map(|n| {
            let name = n["name"].as_str().expect("a name").to_string();
            (name, n["subnet"].as_str().expect("a subnet").parse().expect("a CIDR"))
        })
        .collect();
    out.sort();
    out
}

/// An IPv4 CIDR as the tests need it (the test crate does without ipnet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Ipv4Net {
    start: u32,
    prefix: u8,
}

impl std::str::FromStr for Ipv4Net {
    type Err = String;
    fn from_str(text: &str) -> Result<Ipv4Net, String> {
        let (ip, prefix) = text.split_once('/').ok_or(text.to_string())?;
        let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| text.to_string())?;
        let prefix: u8 = prefix.parse().map_err(|_| text.to_string())?;
        Ok(Ipv4Net { start: u32::from(ip), prefix })
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", std::net::Ipv4Addr::from(self.start), self.prefix)
    }
}

impl Ipv4Net {
    fn end(&self) -> u64 {
        u64::from(self.start) + (1u64 << (32 - u32::from(self.prefix))) - 1
    }
    fn contains(&self, other: &Ipv4Net) -> bool {
        self.start <= other.start && other.end() <= self.end()
    }
}

fn overlap(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    u64::from(a.start) <= b.end() && u64::from(b.start) <= a.end()
}

fn meshctl(socket: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(meshd_tests::binaries::meshctl())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run meshctl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[test]
fn networks_without_a_subnet_get_distinct_ones_from_the_pools_while_the_leader_dies() {
    let mut cluster = Cluster::new("poolkill", 3);
    // Two pools holding exactly 20 /26s (16 + 4). The joiners repeat the founder's flags: the
    // same values are accepted (only differing ones are refused).
    cluster.form_with(&[
        "--default-addr-pool",
        "10.130.0.0/22",
        "--default-addr-pool",
        "10.140.0.0/24",
        "--default-addr-pool-mask-length",
        "26",
    ]);
    let pools: [Ipv4Net; 2] = ["10.130.0.0/22".parse().unwrap(), "10.140.0.0/24".parse().unwrap()];
    let old_leader = leader(cluster.node(1)).expect("a leader");
    let leader_index: usize = old_leader[1..].parse().unwrap();
    let survivors: Vec<usize> = (1..=3).filter(|i| *i != leader_index).collect();

    // 20 creations spread over the three managers, some before the kill and some after.
    let sockets: Vec<std::path::PathBuf> = cluster.nodes().iter().map(|n| n.socket().to_path_buf()).collect();
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let socket = sockets[i % 3].clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(40 * i as u64));
                let name = format!("p{i}");
                (name.clone(), meshctl(&socket, &["network", "create", &name]))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(350));
    cluster.node_mut(leader_index).kill();
    let results: Vec<(String, Result<String, String>)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    // Those that failed (on the dead node, or during the election) are retried on a survivor;
    // one that did get through before its answer was lost is there already.
    let retry_on = cluster.node(survivors[0]).socket().to_path_buf();
    for (name, result) in &results {
        if let Err(first) = result {
            eprintln!("{name}: {first}; retrying");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match meshctl(&retry_on, &["network", "create", name]) {
                    Ok(_) => break,
                    Err(e) if e.contains("already exists") => break,
                    Err(e) if Instant::now() < deadline => {
                        eprintln!("{name}: {e}");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    Err(e) => panic!("network create {name} never succeeded: {e}"),
                }
            }
        }
    }

    let live: Vec<&Node> = survivors.iter().map(|&i| cluster.node(i)).collect();
    cluster.wait_for("the survivors to list 20 networks alike", Duration::from_secs(20), |_| {
        let views: Vec<_> = live.iter().map(|n| subnets(n)).collect();
        views[0].len() == 20 && views.iter().all(|v| v == &views[0])
    });
    let view = subnets(live[0]);
    for (i, (name, subnet)) in view.iter().enumerate() {
        assert_eq!(subnet.prefix, 26, "{name}: {subnet} is not of the mask length");
        assert!(pools.iter().any(|p| p.contains(subnet)), "{name}: {subnet} is outside the pools");
        for (other, other_subnet) in &view[..i] {
            assert!(!overlap(subnet, other_subnet), "{name} {subnet} overlaps {other} {other_subnet}");
        }
    }
    // The pools are full now: a clear refusal, and nothing created.
    let full = live[0].meshctl(&["network", "create", "one-more"]);
    let err = String::from_utf8_lossy(&full.stderr);
    assert!(!full.status.success(), "a 21st network fit in 20 subnets");
    assert!(err.contains("have no free /26 left: pass --subnet"), "{err}");
    assert!(!live[0].meshctl_ok(&["network", "ls"]).contains("one-more"));
    // With --subnet it still works, and `inspect` shows a pool network's subnet.
    live[0].meshctl_ok(&["network", "create", "fixed", "--subnet", "10.150.0.0/24"]);
    let detail = live[1].meshctl_ok(&["network", "inspect", &view[0].0]);
    assert!(detail.contains(&view[0].1.to_string()), "{detail}");
}

/// A capture on the underlay bridge of the UDP packets to `port` while `during` runs.
fn capture_udp(cluster: &Cluster, port: u16, during: impl FnOnce()) -> String {
    let capture = std::process::Command::new("ip")
        .args(["netns", "exec", cluster.underlay().name(), "timeout", "4", "tcpdump", "-n", "-l"])
        .args(["-i", "br0", "-c", "4", "udp", "dst", "port", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tcpdump");
    std::thread::sleep(Duration::from_millis(700));
    during();
    String::from_utf8_lossy(&capture.wait_with_output().expect("tcpdump output").stdout).into_owned()
}

#[test]
fn the_data_path_port_is_learnt_by_joiners_and_carries_the_overlay() {
    let mut cluster = Cluster::new("dpport", 3);
    // Only the founder says 4790; n2 joins without the flag and learns it.
    let founder_args: Vec<String> = [
        cluster.node(1).base_args(),
        ["--data-path-port", "4790", "--metrics-addr", "127.0.0.1:9646"].map(String::from).to_vec(),
    ]
    .concat();
    cluster.node_mut(1).start_with(&founder_args);
    let token = cluster.node(1).meshctl_ok(&["join-token", "worker"]).trim().to_string();
    let seed = cluster.node(1).addr.to_string();
    let n2 = cluster.node(2);
    let n2_args = [n2.base_args(), n2.join_args(&seed, &token)].concat();
    cluster.node_mut(2).start_with(&n2_args);
    cluster.wait_for("both nodes alive", Duration::from_secs(20), |c| c.node(1).count_status("alive") == 2);

    // The metrics say it.
    let metrics = cluster.node(1).ns.exec("curl", ["-sf", "http://127.0.0.1:9646/metrics"]);
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(metrics.contains("meshd_data_path_port 4790"), "{metrics}");
    assert!(
        metrics.contains("meshd_default_addr_pools{pool=\"10.0.0.0/8\",mask_length=\"24\"} 1"),
        "{metrics}"
    );

    // The VXLAN device of the joiner listens on the cluster's port.
    let link = cluster.node(2).ns.exec("ip", ["-d", "link", "show", "md-vxlan"]);
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(link.contains("dstport 4790"), "{link}");

    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.41.0.0/24"]);
    cluster.wait_for("n2 to list front", Duration::from_secs(10), |c| {
        c.node(2).meshctl_ok(&["network", "ls"]).contains("front")
    });
    let a = cluster.add_namespace("a");
    let b = cluster.add_namespace("b");
    let attach = |node: &Node, ns: &str| {
        node.meshctl_ok(&["attach", "--netns", ns, "--network", "front"]).trim().to_string()
    };
    attach(cluster.node(1), &a);
    let ip_b = attach(cluster.node(2), &b);
    let ping = |c: &Cluster| c.namespace(&a).exec("ping", ["-c", "1", "-W", "1", &ip_b]).status.success();
    cluster.wait_for("a reaches b across the nodes", Duration::from_secs(10), ping);

    let on_4790 = capture_udp(&cluster, 4790, || assert!(ping(&cluster)));
    assert!(
        on_4790.contains("10.77.0.1.") && on_4790.contains(".4790:"),
        "no tunnel packet to UDP 4790 seen:\n{on_4790}"
    );
    let on_4789 = capture_udp(&cluster, 4789, || assert!(ping(&cluster)));
    assert!(on_4789.trim().is_empty(), "packets to UDP 4789 on a 4790 cluster:\n{on_4789}");

    // A node asking for another port is refused with the reason, and is not admitted.
    let n3 = cluster.node(3);
    let args = [n3.base_args(), n3.join_args(&seed, &token), vec!["--data-path-port".into(), "4791".into()]]
        .concat();
    let out = n3.meshd_command(&args).output().expect("run meshd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a joiner on another data path port was admitted");
    assert!(err.contains("--data-path-port 4791 differs from the cluster's 4790"), "{err}");
    assert!(!n3.state_dir().join("cluster.json").exists(), "the refused joiner saved a cluster");
    assert_eq!(cluster.node(1).nodes_json().len(), 2, "the refused joiner is listed");

    // A restart without the flag keeps the cluster's port (from cluster.json).
    cluster.node_mut(2).stop();
    cluster.node_mut(2).start();
    let link = cluster.node(2).ns.exec("ip", ["-d", "link", "show", "md-vxlan"]);
    assert!(String::from_utf8_lossy(&link.stdout).contains("dstport 4790"));
    cluster.wait_for("a reaches b after the restart", Duration::from_secs(10), ping);
}

#[test]
fn bad_settings_flags_are_refused_before_anything_is_created() {
    let cluster = Cluster::new("badset", 1);
    let node = cluster.node(1);
    let cases: [(&[&str], &str); 6] = [
        (&["--default-addr-pool", "10.20.0.0"], "--default-addr-pool \"10.20.0.0\" is not an IPv4 CIDR"),
        (&["--default-addr-pool", "10.20.0.1/16"], "did you mean 10.20.0.0/16?"),
        (
            &["--default-addr-pool", "10.20.0.0/16", "--default-addr-pool-mask-length", "12"],
            "--default-addr-pool-mask-length 12 is shorter than pool 10.20.0.0/16",
        ),
        (&["--default-addr-pool-mask-length", "31"], "must be between 8 and 28"),
        (&["--data-path-port", "80"], "--data-path-port 80 must be between 1024 and 49151"),
        (&["--data-path-port", "7946"], "also --listen-port"),
    ];
    for (flags, expected) in cases {
        let args = [node.base_args(), flags.iter().map(|f| f.to_string()).collect()].concat();
        let out = node.meshd_command(&args).output().expect("run meshd");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} accepted");
        assert!(err.contains(expected), "{flags:?}: {err}");
        assert!(!node.state_dir().join("cluster.json").exists(), "{flags:?} created a cluster");
        assert!(!node.socket().exists(), "{flags:?} left a socket");
    }
}

#[test]
fn a_docker_network_without_a_subnet_gets_one_from_the_clusters_pools() {
    // Dropped in reverse: dockerd, the cluster (meshd removes its plugin socket), the global
    // paths.
    let _global = meshd_tests::runtimes::global::GlobalFiles::new();
    let mut cluster = Cluster::new("dockpool", 1);
    let driver = format!("{}-meshd", cluster.prefix());
    let docker_dir = cluster.work_dir().join("docker1");
    std::fs::create_dir_all(&docker_dir).unwrap();
    let docker_host = format!("unix://{}", docker_dir.join("docker.sock").display());
    let args: Vec<String> = [
        cluster.node(1).base_args(),
        [
            "--default-addr-pool",
            "10.160.0.0/24",
            "--default-addr-pool-mask-length",
            "25",
            "--docker-plugin",
            "--docker-plugin-socket",
            &format!("/run/docker/plugins/{driver}.sock"),
            "--docker-host",
            &docker_host,
        ]
        .map(String::from)
        .to_vec(),
    ]
    .concat();
    cluster.node_mut(1).start_with(&args);
    let dockerd = meshd_tests::runtimes::docker::Dockerd::start(&docker_dir, &cluster.node(1).ns.path());
    // meshctl takes the pool's first /25, Docker the next.
    cluster.node(1).meshctl_ok(&["network", "create", "first"]);
    dockerd.ok(&["network", "create", "-d", &driver, "--ipam-driver", &driver, "second"]);
    cluster.wait_for("the Docker network's meshd network", Duration::from_secs(10), |c| {
        subnets(c.node(1)).iter().any(|(name, _)| name == "second")
    });
    let view: Vec<(String, String)> =
        subnets(cluster.node(1)).into_iter().map(|(name, subnet)| (name, subnet.to_string())).collect();
    assert_eq!(
        view,
        [
            ("first".to_string(), "10.160.0.0/25".to_string()),
            ("second".to_string(), "10.160.0.128/25".to_string())
        ]
    );
    let inspect =
        dockerd.ok(&["network", "inspect", "second", "--format", "{{range .IPAM.Config}}{{.Subnet}}{{end}}"]);
    assert_eq!(inspect.trim(), "10.160.0.128/25");
    // The pool is full now: Docker gets meshd's reason.
    let full = dockerd.docker(&["network", "create", "-d", &driver, "--ipam-driver", &driver, "third"]);
    let err = String::from_utf8_lossy(&full.stderr);
    assert!(!full.status.success(), "a third /25 fit in a /24");
    assert!(err.contains("have no free /25 left: pass --subnet"), "{err}");
    drop(dockerd);
}
