//! The demo: a local meshd cluster in network namespaces, showing what works so far, with real
//! clients. Run by `scripts/demo.sh` (see the README). `--hold` keeps everything up until Enter
//! or Ctrl-C so it can be explored with `ip netns`, `meshctl --socket ...` and `bpftool`.

use std::path::PathBuf;
use std::time::Duration;

use meshd::bpf::{bpffs, Datapath};
use meshd::cli::render::table;
use meshd_ebpf::verdict::{Direction, Reason};
use meshd_tests::command::describe_failure;
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

fn main() {
    let hold = std::env::args().any(|a| a == "--hold");

    say(&format!("Building an underlay bridge and {NODES} node namespaces"));
    let mut cluster = Cluster::new("demo", NODES);
    for node in cluster.nodes() {
        println!("  {}  netns {}  underlay address {}", node.name, node.ns.name(), node.addr);
    }

    say("n1 starts a cluster; n2 and n3 join it with n1's join token (gossip on UDP/TCP 7946, encrypted)");
    cluster.form();
    let token = cluster.node(1).meshctl_ok(&["join-token"]);
    shell("meshctl join-token        # on n1", &token);
    for node in cluster.nodes().iter().skip(1) {
        println!(
            "$ meshd --state-dir ... --advertise-addr {} --join 10.77.0.1 --token MESHTKN-1-...   # on {}",
            node.addr, node.name
        );
    }
    say("Every node sees the same cluster");
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
    println!("(detected in {:.1} s)", took.as_secs_f64());
    say("Start it again (same state directory, no join flags): it rejoins with the same ID");
    cluster.node_mut(2).start();
    cluster.wait_for("n2 back", Duration::from_secs(15), |c| {
        c.nodes().iter().all(|n| n.count_status("alive") == NODES)
    });
    shell("meshctl node ls           # on n3", &cluster.node(3).meshctl_ok(&["node", "ls"]));

    say("A container on n1, wired by a veth pair, with meshd's container-veth programs attached");
    let c = cluster.add_plain_container(1);
    let container = &cluster.containers()[c];
    let pin_dir = PathBuf::from(bpffs::ROOT).join("meshd-demo").join(cluster.prefix());
    bpffs::create_pin_dir(&pin_dir).expect("pin dir");
    let ifname = container.host_ifname.clone();
    let dir = pin_dir.clone();
    let (datapath, attachment) = cluster.node(1).ns.run_inside(move || {
        let mut datapath = Datapath::load(&dir).expect("load eBPF");
        let attachment = datapath.attach_veth(&ifname).expect("attach");
        (datapath, attachment)
    });
    let ping = container.ns.exec("ping", ["-c", "5", "-i", "0.2", &container.host_addr.to_string()]);
    if !ping.status.success() {
        panic!("{}", describe_failure("ping", &ping));
    }
    shell(
        &format!("ip netns exec {} ping -c 5 {}", container.ns.name(), container.host_addr),
        &String::from_utf8_lossy(&ping.stdout),
    );

    say("What the eBPF programs counted (per interface, direction and verdict)");
    let counters = datapath.verdicts().expect("read counters");
    let rows: Vec<Vec<String>> = counters
        .iter()
        .map(|(key, value)| {
            vec![
                key.ifindex.to_string(),
                Direction::from_code(key.dir).to_string(),
                Reason::from_code(key.reason).to_string(),
                value.packets.to_string(),
                value.bytes.to_string(),
            ]
        })
        .collect();
    print!("{}", table(&["IFINDEX", "DIRECTION", "VERDICT", "PACKETS", "BYTES"], &rows));

    say("Gossip counters on n1 (what was received, sent, and dropped and why)");
    shell("meshctl stats             # on n1", &cluster.node(1).meshctl_ok(&["stats"]));

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

    say("Cleaning up: stopping meshd, deleting namespaces and pins");
    let mut datapath = datapath;
    let _ = datapath.detach_veth(attachment);
    drop(datapath);
    let _ = std::fs::remove_dir_all(&pin_dir);
    drop(cluster);
    println!("done");
}
