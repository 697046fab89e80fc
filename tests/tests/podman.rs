//! podman (CNI backend) and containerd (`ctr run --cni`) on meshd through `meshd-cni`: a
//! service whose tasks are podman containers on two nodes and a ctr container on a third.

use std::time::Duration;

use meshd_tests::load::spread;
use meshd_tests::runtimes::containerd::Containerd;
use meshd_tests::runtimes::image::{busybox_tarball, http_get, http_server};
use meshd_tests::runtimes::podman::Podman;
use meshd_tests::Cluster;
use serde_json::json;

#[test]
fn podman_and_ctr_containers_are_tasks_of_one_service() {
    let mut cluster = Cluster::new("podman", 3);
    cluster.form();
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "front", "--subnet", "10.91.0.0/24"]);
    n1.meshctl_ok(&["service", "create", "web", "--network", "front", "--publish", "8091:80"]);
    cluster.wait_listed(&["service", "ls"], "web");
    let tarball = busybox_tarball(cluster.work_dir());
    let cni_name = format!("{}-front", cluster.prefix());

    // One podman per node, each with a meshd-cni network pointing at its node's meshd.
    let podmen: Vec<Podman> = [1, 2]
        .iter()
        .map(|&i| {
            let node = cluster.node(i);
            let podman = Podman::new(
                &cluster.work_dir().join(format!("podman{i}")),
                &node.ns.path(),
                &cni_name,
                "front",
                node.socket(),
                None,
            );
            podman.import(&tarball);
            podman
        })
        .collect();
    // `--network-alias web` makes each a task of service web; the container's name is its
    // task name (podman passes it as K8S_POD_NAME).
    for (i, podman) in podmen.iter().enumerate() {
        let name = format!("pweb{}", i + 1);
        podman.ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &podman.network,
            "--network-alias",
            "web",
            "--cap-add",
            "NET_RAW",
            "localhost/busybox",
            "sh",
            "-c",
            &http_server(&name),
        ]);
    }
    let addr1 = podmen[0].address("pweb1");
    let addr2 = podmen[1].address("pweb2");
    assert!(
        addr1.starts_with("10.91.0.") && addr2.starts_with("10.91.0.") && addr1 != addr2,
        "{addr1} {addr2}"
    );
    cluster.wait_for("both podman tasks in service web everywhere", Duration::from_secs(15), |c| {
        c.nodes().iter().all(|n| {
            let ps = n.meshctl_ok(&["service", "ps", "web"]);
            ps.contains("pweb1") && ps.contains("pweb2")
        })
    });
    let resolv = podmen[0].ok(&["exec", "pweb1", "cat", "/etc/resolv.conf"]);
    assert!(resolv.lines().next().unwrap_or_default().contains("127.0.0.11"), "{resolv}");

    // By name across the overlay: ping and HTTP, and through the VIP to both tasks.
    podmen[0].ok(&["exec", "pweb1", "ping", "-c", "1", "-W", "3", "pweb2"]);
    let answer = podmen[0].ok(&exec("pweb1", &http_get("http://pweb2/")));
    assert_eq!(answer.trim(), "pweb2");
    let answer = podmen[1].ok(&[
        "exec",
        "pweb2",
        "timeout",
        "5",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{addr1}/"),
    ]);
    assert_eq!(answer.trim(), "pweb1");
    // Through the VIP, from a container that is not a task (a task reaching itself through
    // its own VIP is a hairpin, which meshd's balancer does not do).
    podmen[1].ok(&[
        "run",
        "-d",
        "--name",
        "pclient",
        "--network",
        &podmen[1].network,
        "localhost/busybox",
        "sleep",
        "3600",
    ]);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let out = podmen[1].cmd(&exec("pclient", &http_get("http://web/")));
        seen.insert(String::from_utf8_lossy(&out.stdout).trim().to_string());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["pweb1", "pweb2"], "the VIP balances over both");

    // A third node runs the same service's task with ctr (its configuration names the service:
    // ctr passes no CNI_ARGS); the routing mesh brings a client on the underlay to it.
    let node3 = cluster.node(3);
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": cni_name,
        "plugins": [{"type": "meshd-cni", "network": "front", "service": "web", "socket": node3.socket().display().to_string()}]
    });
    let containerd = Containerd::start(&cluster.work_dir().join("containerd3"), &node3.ns.path(), &conflist);
    let archive = cluster.work_dir().join("busybox-oci.tar");
    podmen[0].ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        "localhost/busybox:latest",
    ]);
    containerd.ctr_ok(&["images", "import", archive.to_str().unwrap()]);
    containerd.ctr_ok(&[
        "run",
        "-d",
        "--cni",
        "localhost/busybox:latest",
        "ctrweb",
        "sh",
        "-c",
        &http_server("ctrweb"),
    ]);
    // ctr's container ID for CNI is NAMESPACE-ID; its first 12 characters name the task.
    cluster.wait_for("the ctr task in service web everywhere", Duration::from_secs(15), |c| {
        c.nodes().iter().all(|n| n.meshctl_ok(&["service", "ps", "web"]).contains("default-ctrw"))
    });
    let outside = cluster.add_underlay_client();
    let url = format!("http://{}:8091/", cluster.node(1).addr);
    let mut answers = std::collections::BTreeMap::new();
    let start = std::time::Instant::now();
    while !answers.contains_key("ctrweb") && start.elapsed() < Duration::from_secs(30) {
        for (answer, count) in spread(&cluster.clients()[outside].ns, &url, 10) {
            *answers.entry(answer).or_insert(0) += count;
        }
    }
    assert!(answers.contains_key("ctrweb"), "the ctr task answers through the published port: {answers:?}");
    assert!(!answers.contains_key("FAILED"), "{answers:?}");

    // podman rm: DEL releases the attachment; the task leaves the service on every node.
    podmen[1].ok(&["rm", "--force", "--time", "0", "pweb2"]);
    cluster.wait_for("pweb2 gone everywhere", Duration::from_secs(10), |c| {
        c.nodes().iter().all(|n| !n.meshctl_ok(&["service", "ps", "web"]).contains("pweb2"))
    });
    let left = cluster.node(2).meshctl_ok(&["attachment", "ls"]);
    assert!(!left.contains(&format!("{addr2}/")), "pweb2's attachment is gone: {left}");

    // ctr kills its task without any DEL: meshd notices the namespace is gone.
    containerd.ctr_ok(&["tasks", "kill", "--signal", "SIGKILL", "ctrweb"]);
    cluster.wait_for("the ctr task released by the reaper", Duration::from_secs(20), |c| {
        c.nodes().iter().all(|n| !n.meshctl_ok(&["service", "ps", "web"]).contains("default-ctrw"))
    });
    drop(containerd);
    drop(podmen);
}

/// `exec CONTAINER COMMAND...` as podman arguments.
fn exec(container: &str, command: &[String]) -> Vec<String> {
    let mut args = vec!["exec".to_string(), container.to_string()];
    args.extend_from_slice(command);
    args
}
