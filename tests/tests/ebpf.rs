//! The eBPF objects against the real kernel: every program passes the verifier inside a network
//! namespace, and the container-veth programs count real packets.

use std::path::PathBuf;

use meshd::bpf::Datapath;
use meshd_ebpf::verdict::{Direction, Reason, VerdictCounter};
use meshd_tests::command::describe_failure;
use meshd_tests::names::unique_prefix;
use meshd_tests::{Cluster, Netns};

/// A pin directory of the test's own under bpffs, removed on drop.
struct PinDir(PathBuf);

impl PinDir {
    fn new(tag: &str) -> PinDir {
        meshd_tests::require_root();
        let root = PathBuf::from(meshd::bpf::bpffs::ROOT);
        meshd::bpf::bpffs::ensure_mounted(&root).expect("bpffs");
        let dir = root.join("meshd-tests").join(unique_prefix(tag));
        meshd::bpf::bpffs::create_pin_dir(&dir).expect("pin dir");
        PinDir(dir)
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_object_passes_the_verifier_in_a_namespace() {
    let pins = PinDir::new("verifier");
    let ns = Netns::new(&unique_prefix("verifier"));
    let dir = pins.0.clone();
    // Datapath::load loads every program of every object; an error carries the verifier log.
    let result = ns.run_inside(move || Datapath::load(&dir).map(|_| ()).map_err(|e| format!("{e}")));
    result.expect("the kernel accepts every program");
    // Every map the agent reads or writes by name is pinned under that name: a map renamed on
    // one side only (C or Rust) fails here rather than at the first reconcile.
    let by_name = [
        meshd_ebpf::verdict::MAP_NAME,
        meshd_ebpf::node::CONFIG_MAP,
        meshd_ebpf::endpoint::ENDPOINTS_MAP,
        meshd_ebpf::endpoint::IFACES_MAP,
        meshd_ebpf::lb::SERVICES_MAP,
        meshd_ebpf::lb::MAGLEV_MAP,
        meshd_ebpf::lb::CT_MAP,
        meshd_ebpf::lb::FLOWS_MAP,
        meshd_ebpf::node::NODES_MAP,
        meshd_ebpf::node::NODE_HOPS_MAP,
        meshd_ebpf::overlay::CONFIG_MAP,
        meshd_ebpf::overlay::HOPS_MAP,
        meshd_ebpf::mesh::FRONTENDS_MAP,
        meshd_ebpf::mesh::MESH_RNAT_MAP,
        meshd_ebpf::mesh::MESH_RETURN_MAP,
        meshd_ebpf::mesh::SOCK_RNAT_MAP,
    ];
    for name in by_name {
        assert!(pins.0.join(name).exists(), "map {name} is not pinned under that name");
    }
}

/// A map pinned by an older build under a name the objects no longer use (a layout change gave
/// it a new versioned name) is removed when the datapath loads; the current pins stay.
#[test]
fn a_map_pin_an_older_build_left_is_removed_at_load() {
    let pins = PinDir::new("retired");
    let old = pins.0.join("md_ifaces_v1");
    let created = std::process::Command::new("bpftool")
        .args(["map", "create"])
        .arg(&old)
        .args(["type", "hash", "key", "4", "value", "24", "entries", "16", "name", "md_ifaces_v1"])
        .output()
        .expect("bpftool");
    assert!(created.status.success(), "{}", describe_failure("bpftool map create", &created));
    assert!(old.exists());
    let ns = Netns::new(&unique_prefix("retired"));
    let dir = pins.0.clone();
    ns.run_inside(move || Datapath::load(&dir).map(|_| ()).map_err(|e| format!("{e}"))).expect("load");
    assert!(!old.exists(), "the retired pin md_ifaces_v1 is still there");
    assert!(pins.0.join(meshd_ebpf::endpoint::IFACES_MAP).exists(), "the current pin is kept");
}

#[test]
fn the_veth_programs_count_real_packets() {
    let pins = PinDir::new("count");
    let mut cluster = Cluster::new("count", 1);
    let c = cluster.add_plain_container(1);
    let container = &cluster.containers()[c];
    let node_ns = &cluster.node(1).ns;

    let dir = pins.0.clone();
    let ifname = container.host_ifname.clone();
    // Load and attach inside the node's namespace; keep the Datapath alive on that thread's
    // result so the programs stay attached while ping runs.
    let attached = ifname.clone();
    let (mut datapath, ifindex) = node_ns.run_inside(move || {
        let mut datapath = Datapath::load(&dir).expect("load");
        datapath.attach_veth(&attached).expect("attach");
        let ifindex = nix::net::if_::if_nametoindex(attached.as_str()).expect("ifindex");
        (datapath, ifindex)
    });

    let ping =
        container.ns.exec("ping", ["-c", "5", "-i", "0.2", "-W", "2", &container.host_addr.to_string()]);
    assert!(ping.status.success(), "{}", describe_failure("ping", &ping));

    let counters = datapath.verdicts().expect("read counters");
    let get = |dir: Direction| {
        counters
            .iter()
            .filter(|(k, _)| {
                k.ifindex == ifindex && k.dir == dir.code() && k.reason == Reason::PassStack.code()
            })
            .fold(VerdictCounter::default(), |mut acc, (_, v)| {
                acc.add(v);
                acc
            })
    };
    let from = get(Direction::FromContainer);
    let to = get(Direction::ToContainer);
    // 5 echo requests out, 5 replies in (ARP adds a few more each way).
    assert!(from.packets >= 5, "from-container: {from:?}");
    assert!(to.packets >= 5, "to-container: {to:?}");
    // An ICMP echo on Ethernet is 98 bytes.
    assert!(from.bytes >= 5 * 98, "from-container bytes: {from:?}");
    assert!(to.bytes >= 5 * 98, "to-container bytes: {to:?}");

    // A second load with the same pins sees the same counters: the map was reused, not recreated.
    let dir = pins.0.clone();
    let reloaded =
        node_ns.run_inside(move || Datapath::load(&dir).expect("reload").verdicts().expect("read"));
    let again = reloaded
        .iter()
        .filter(|(k, _)| k.ifindex == ifindex && k.dir == Direction::FromContainer.code())
        .map(|(_, v)| v.packets)
        .sum::<u64>();
    assert!(again >= from.packets, "pinned counters survive a reload: {again} < {}", from.packets);

    datapath.forget_links(&ifname).expect("detach");
}

#[test]
fn detached_programs_stop_counting() {
    let pins = PinDir::new("detach");
    let mut cluster = Cluster::new("detach", 1);
    let c = cluster.add_plain_container(1);
    let container = &cluster.containers()[c];
    let dir = pins.0.clone();
    let ifname = container.host_ifname.clone();
    let datapath = cluster.node(1).ns.run_inside(move || {
        let mut datapath = Datapath::load(&dir).expect("load");
        datapath.attach_veth(&ifname).expect("attach");
        datapath.forget_links(&ifname).expect("detach");
        datapath
    });
    // Link-up chatter (IPv6 DAD, MLD) may have been counted while attached; only growth counts.
    // Releasing an unpinned link is deferred work in the kernel: give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let total = || -> u64 { datapath.verdicts().expect("read").values().map(|v| v.packets).sum() };
    let before = total();
    let ping =
        container.ns.exec("ping", ["-c", "3", "-i", "0.2", "-W", "2", &container.host_addr.to_string()]);
    assert!(ping.status.success(), "{}", describe_failure("ping", &ping));
    assert_eq!(total(), before, "nothing counted after detach");
}
