//! Container start to first answer: the time from `podman run -d` / `docker run -d` until the
//! container's HTTP server first answers a client, for each runtime on meshd (through the
//! service VIP, from a client on another node) and on its own default bridge (from its node,
//! the only place a bridge reaches). Rounds take turns between the four cases, so load on the
//! machine hits them alike; median and range per case.
//!
//! n1: meshd and a client namespace attached to `front`. n2: meshd (with the Docker driver),
//! podman (CNI backend: meshd-cni, and its default `podman` bridge) and dockerd (the meshd
//! driver, and a bridge network of its own).

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use meshd_tests::runtimes::docker::Dockerd;
use meshd_tests::runtimes::global::GlobalFiles;
use meshd_tests::runtimes::image::{busybox_tarball, http_server};
use meshd_tests::runtimes::podman::Podman;
use meshd_tests::{Cluster, Netns};

/// How long one start may take before the round counts as failed.
const START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Case {
    PodmanMeshd,
    PodmanBridge,
    DockerMeshd,
    DockerBridge,
}

impl Case {
    const ALL: [Case; 4] = [Case::PodmanMeshd, Case::PodmanBridge, Case::DockerMeshd, Case::DockerBridge];

    fn label(self) -> &'static str {
        match self {
            Case::PodmanMeshd => "podman run, meshd-cni: VIP from another node",
            Case::PodmanBridge => "podman run, default bridge (CNI bridge+portmap+firewall): from its node",
            Case::DockerMeshd => "docker run, meshd driver: VIP from another node",
            Case::DockerBridge => "docker run, bridge network: from its node",
        }
    }
}

/// Polls `addr` (from the calling thread's namespace) until an HTTP answer arrives; returns
/// when it did. A thread in the namespace tries every 5 ms: no process per try.
fn poll_http(addr: SocketAddr, deadline: Instant) -> Option<Instant> {
    use std::io::{Read, Write};
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            if stream.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok() {
                let mut buf = [0u8; 64];
                if matches!(stream.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.")) {
                    return Some(Instant::now());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// [`poll_http`] from inside `ns`, on a thread of its own started now (before the run command,
/// so the clock includes everything the runtime does).
fn spawn_poll(ns: &Netns, addr: SocketAddr, deadline: Instant) -> std::thread::JoinHandle<Option<Instant>> {
    let path = ns.path();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("client namespace");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        poll_http(addr, deadline)
    })
}

pub fn run_suite(quick: bool) {
    let rounds = if quick { 1 } else { 7 };
    let global = GlobalFiles::new();
    let podman_ipam_existed = std::path::Path::new("/var/lib/cni/networks/podman").exists();
    let mut cluster = Cluster::new("bruntime", 2);
    let driver = format!("{}-meshd", cluster.prefix());
    let docker_dir = cluster.work_dir().join("docker2");
    std::fs::create_dir_all(&docker_dir).unwrap();
    let docker_flags = vec![
        "--docker-plugin".to_string(),
        "--docker-plugin-socket".to_string(),
        format!("/run/docker/plugins/{driver}.sock"),
        "--docker-host".to_string(),
        format!("unix://{}", docker_dir.join("docker.sock").display()),
    ];
    cluster.form_per_node(|i| if i == 2 { docker_flags.clone() } else { Vec::new() });
    let n2 = cluster.node(2);
    let dockerd = Dockerd::start(&docker_dir, &n2.ns.path());
    let podman = Podman::new(
        &cluster.work_dir().join("podman2"),
        &n2.ns.path(),
        &format!("{}-front", cluster.prefix()),
        "front",
        n2.socket(),
        None,
    );
    let tarball = busybox_tarball(cluster.work_dir());
    podman.import(&tarball);
    dockerd.import(&tarball);
    dockerd.ok(&[
        "network",
        "create",
        "-d",
        &driver,
        "--ipam-driver",
        &driver,
        "--subnet",
        "10.62.0.0/24",
        "front",
    ]);
    dockerd.ok(&["network", "create", "-d", "bridge", "--subnet", "10.63.0.0/24", "plain"]);
    cluster.wait_for("the network on n1", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["network", "ls"]).contains("front")
    });
    let created =
        cluster.node(1).meshctl_ok(&["--format", "json", "service", "create", "web", "--network", "front"]);
    let vip: std::net::Ipv4Addr = serde_json::from_str::<serde_json::Value>(&created).unwrap()[0]["vip"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let client = cluster.add_namespace("client");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &client, "--network", "front"]);
    cluster.wait_for("the service on n2", Duration::from_secs(10), |c| {
        c.node(2).meshctl_ok(&["service", "ls"]).contains("web")
    });

    let mut samples: Vec<(Case, Vec<Duration>)> = Case::ALL.iter().map(|c| (*c, Vec::new())).collect();
    // Round 0 warms up and is not counted: images into the page cache, and the node's first
    // address block on the network (claimed once per node and network, then settled 1.5 s).
    for round in 0..=rounds {
        for case in Case::ALL {
            let name = format!("b{round}");
            let start = Instant::now();
            let deadline = start + START_TIMEOUT;
            let answered = match case {
                Case::PodmanMeshd => {
                    let poll =
                        spawn_poll(cluster.namespace(&client), SocketAddr::new(vip.into(), 80), deadline);
                    podman.ok(&[
                        "run",
                        "-d",
                        "--name",
                        &name,
                        "--network",
                        &podman.network,
                        "--network-alias",
                        "web",
                        "localhost/busybox",
                        "sh",
                        "-c",
                        &http_server(&name),
                    ]);
                    poll.join().unwrap()
                }
                Case::PodmanBridge => {
                    podman.ok(&[
                        "run",
                        "-d",
                        "--name",
                        &name,
                        "--network",
                        "podman",
                        "localhost/busybox",
                        "sh",
                        "-c",
                        &http_server(&name),
                    ]);
                    let address = podman.ok(&[
                        "inspect",
                        "--format",
                        "{{.NetworkSettings.Networks.podman.IPAddress}}",
                        &name,
                    ]);
                    let addr = SocketAddr::new(address.trim().parse().unwrap(), 80);
                    cluster.node(2).ns.run_inside(move || poll_http(addr, deadline))
                }
                Case::DockerMeshd => {
                    let poll =
                        spawn_poll(cluster.namespace(&client), SocketAddr::new(vip.into(), 80), deadline);
                    dockerd.ok(&[
                        "run",
                        "-d",
                        "--name",
                        &name,
                        "--network",
                        "name=front,driver-opt=meshd.service=web",
                        "local/busybox",
                        "sh",
                        "-c",
                        &http_server(&name),
                    ]);
                    poll.join().unwrap()
                }
                Case::DockerBridge => {
                    dockerd.ok(&[
                        "run",
                        "-d",
                        "--name",
                        &name,
                        "--network",
                        "plain",
                        "local/busybox",
                        "sh",
                        "-c",
                        &http_server(&name),
                    ]);
                    let address = dockerd.address(&name, "plain");
                    let addr = SocketAddr::new(address.parse().unwrap(), 80);
                    cluster.node(2).ns.run_inside(move || poll_http(addr, deadline))
                }
            };
            let took = answered.map(|at| at - start);
            match took {
                Some(_) if round == 0 => {}
                Some(took) => samples.iter_mut().find(|(c, _)| *c == case).unwrap().1.push(took),
                None => eprintln!("round {round}: {} did not answer within {START_TIMEOUT:?}", case.label()),
            }
            // Gone, and (for meshd) out of n1's table, before the next start.
            match case {
                Case::PodmanMeshd | Case::PodmanBridge => {
                    podman.ok(&["rm", "--force", "--time", "0", &name]);
                }
                Case::DockerMeshd | Case::DockerBridge => {
                    dockerd.ok(&["rm", "--force", &name]);
                }
            }
            cluster.wait_for("no backend left", Duration::from_secs(20), |c| {
                c.node(1).meshctl_ok(&["service", "ps", "web"]).lines().count() <= 1
            });
        }
    }

    println!(
        "\n### Container start to first answered request ({rounds} rounds after a warm-up, taking turns)\n"
    );
    println!("| case | median | min | max | rounds |");
    println!("|---|---|---|---|---|");
    for (case, mut times) in samples {
        times.sort();
        if times.is_empty() {
            println!("| {} | - | - | - | 0 |", case.label());
            continue;
        }
        let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
        println!(
            "| {} | {} | {} | {} | {} |",
            case.label(),
            ms(times[times.len() / 2]),
            ms(times[0]),
            ms(*times.last().unwrap()),
            times.len()
        );
    }
    drop(dockerd);
    drop(podman);
    drop(cluster);
    if !podman_ipam_existed {
        // host-local's leases of podman's default bridge (a global path).
        let _ = std::fs::remove_dir_all("/var/lib/cni/networks/podman");
    }
    drop(global);
}
