//! Packet tests: every tc program of meshd run on crafted packets with `BPF_PROG_TEST_RUN`, one
//! table per program file (Katran's style: maps' contents + input packet -> return code, verdict
//! counters, redirect target, tunnel key, output packet), against the test build of the objects
//! (`include/lib/test_hooks.h`). Needs root; runs in seconds.
//!
//! - `veth.rs`, `vxlan.rs`, `underlay.rs`: the tables;
//! - `world.rs`: the cluster the rows live in; `frames.rs`: packets built and checked with
//!   smoltcp; `fixture.rs`: loading, maps, running a row; `test_run.rs`: the syscall;
//! - below: every verdict reason has a row (or a stated exemption), and the socket programs
//!   (cgroup sock_addr) have no table because the kernel offers them no test run.
//!
//! Adding a drop reason or a map: docs/ebpf-packet-tests.md.

mod fixture;
mod frames;
mod test_run;
mod underlay;
mod veth;
mod vxlan;
mod world;

use std::collections::BTreeSet;

use meshd_ebpf::verdict::Reason;
use meshd_ebpf::Object;

/// The test builds of the objects (OUT_DIR/test, made by build.rs with -DMD_TEST).
pub const VETH_TEST: Object = Object {
    name: "veth.bpf.o",
    bytes: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/test/veth.bpf.o")),
};
pub const VXLAN_TEST: Object = Object {
    name: "vxlan.bpf.o",
    bytes: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/test/vxlan.bpf.o")),
};
pub const UNDERLAY_TEST: Object = Object {
    name: "underlay.bpf.o",
    bytes: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/test/underlay.bpf.o")),
};
pub const SOCK_TEST: Object = Object {
    name: "sock.bpf.o",
    bytes: aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/test/sock.bpf.o")),
};

/// Reasons no row can show, each with why. Keep it short: a reason belongs here only when no
/// program counts it on a packet a test run can give.
const NO_ROW: &[(Reason, &str)] = &[
    // Counted by meshd's nftables table (host/nftables.rs), not by a program.
    (Reason::DropToNode, "counted by nftables"),
    // Only when bpf_l4_csum_replace / bpf_l3_csum_replace / bpf_skb_store_bytes fail on a
    // packet the program already parsed: the kernel gives no well-formed packet that makes them.
    (Reason::DropRewrite, "a kernel helper failing on a parsed packet"),
    // Only when an update of an LRU table fails: an LRU evicts instead, so only a kernel out of
    // memory fails it.
    (Reason::DropCtFull, "an LRU update failing (out of memory)"),
];

/// Every known reason has a row in some table, or is in [`NO_ROW`] (and then has none): a
/// reason added to `abi/verdict.h` and `meshd_ebpf::verdict` without a row fails here.
#[test]
fn every_reason_has_a_row() {
    let rows = veth::rows().into_iter().chain(vxlan::rows()).chain(underlay::rows());
    let covered: BTreeSet<Reason> = rows.flat_map(|row| row.counted.into_iter().map(|(_, r)| r)).collect();
    let exempt: BTreeSet<Reason> = NO_ROW.iter().map(|(r, _)| *r).collect();
    let missing: Vec<String> = Reason::KNOWN
        .iter()
        .filter(|r| !covered.contains(r) && !exempt.contains(r))
        .map(|r| r.to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "reasons without a packet-test row: {missing:?} (see docs/ebpf-packet-tests.md)"
    );
    let stale: Vec<String> = exempt.intersection(&covered).map(|r| r.to_string()).collect();
    assert!(stale.is_empty(), "reasons exempted but shown by a row: {stale:?}: take them off NO_ROW");
}

/// The socket programs (cgroup/connect4 and the like, cgroup/sock_release) get no table: the
/// kernel runs no test run for cgroup programs and says so. The namespace tests
/// (tests/tests/socket_lb.rs, hostile_sock_lb.rs) cover them. If a kernel starts to allow it,
/// this fails: give them a table then.
#[test]
fn the_kernel_offers_no_test_run_for_socket_programs() {
    use std::os::fd::AsFd;

    use aya::programs::CgroupSockAddr;
    let pins = fixture::PinDir::new("sock");
    let mut ebpf = aya::EbpfLoader::new()
        .default_map_pin_directory(&pins.0)
        .load(SOCK_TEST.bytes)
        .expect("the test build of sock.bpf.o loads");
    for name in meshd_ebpf::sock::ALL {
        let prog: &mut CgroupSockAddr = ebpf.program_mut(name).expect(name).try_into().expect(name);
        prog.load().expect(name);
        let fd = prog.fd().expect(name);
        let packet = frames::raw(0x0800, 40);
        let err = test_run::run(fd.as_fd(), &packet, 0).err();
        let refused = err.as_ref().and_then(|e| e.raw_os_error());
        // EINVAL or ENOTSUPP (524): no test_run for this program type.
        assert!(matches!(refused, Some(libc::EINVAL) | Some(524)), "{name}: test run gave {err:?}");
    }
}
