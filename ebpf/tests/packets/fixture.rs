//! The packet tests' fixture: one test build of an object (OUT_DIR/test, with the hooks of
//! `include/lib/test_hooks.h`) loaded with aya as the agent loads the real one, its maps pinned
//! in a directory of its own (removed on drop), and a table's rows run against it one by one.
//!
//! A row (Katran's style) is: the maps' contents, one input packet, and what must come out: the
//! program's return code, the verdict counters it incremented (exactly those), where a redirect
//! sends the packet, the tunnel key it set, and the packet it left.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::PathBuf;

use aya::maps::{Array, HashMap, HashOfMaps, Map, MapData, PerCpuHashMap};
use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader, Pod};
use meshd_ebpf::encrypt::{self, EncryptConfig, EncryptedNet, Tunnel};
use meshd_ebpf::endpoint::{self, Endpoint, Iface};
use meshd_ebpf::lb::{self, CtKey, CtVal, Flow, FlowKey, RnatKey, Service};
use meshd_ebpf::mesh::{self, Frontend, FrontendKey, MeshNat, MeshReturn};
use meshd_ebpf::node::{self, Node, NodeConfig, NodeHop};
use meshd_ebpf::overlay::{self, OverlayConfig, OverlayHop};
use meshd_ebpf::verdict::{self, Direction, Reason, VerdictCounter, VerdictKey};

use crate::test_run;

/// The interface every program runs on: a test run without an `ifindex` in its context runs on
/// the loopback device, which is 1 in every namespace. Rows key `md_ifaces_v2` with it.
pub const IFINDEX: u32 = 1;

/// `TC_ACT_*` (linux/pkt_cls.h).
pub const TC_ACT_UNSPEC: i32 = -1;
pub const TC_ACT_OK: i32 = 0;
pub const TC_ACT_SHOT: i32 = 2;
pub const TC_ACT_REDIRECT: i32 = 7;

/// Mirrors of the test hooks' maps (`include/lib/test_hooks.h`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestRedirect {
    pub ifindex: u32,
    pub flags: u32,
    pub peer: u32,
    pub calls: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestSetKey {
    pub remote_ipv4: u32,
    pub local_ipv4: u32,
    pub tunnel_id: u32,
    pub calls: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TestTunnel {
    pub set: u32,
    pub remote_ipv4: u32,
    pub tunnel_id: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TestFib {
    pub set: u32,
    pub ret: i32,
    pub ifindex: u32,
    pub dmac: [u8; 6],
    pub smac: [u8; 6],
}

// SAFETY: repr(C), integers and byte arrays only, no implicit padding (sizes 16, 16, 16, 24):
// every bit pattern is a valid value and no byte is left uninitialised.
#[allow(unsafe_code)]
unsafe impl Pod for TestRedirect {}
#[allow(unsafe_code)]
unsafe impl Pod for TestSetKey {}
#[allow(unsafe_code)]
unsafe impl Pod for TestTunnel {}
#[allow(unsafe_code)]
unsafe impl Pod for TestFib {}

/// `BPF_FIB_LKUP_RET_SUCCESS`.
pub const FIB_SUCCESS: i32 = 0;

/// An address as the maps hold it: network order, read as a native u32.
pub fn be(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

/// A port as the maps hold it.
pub fn port(p: u16) -> u16 {
    p.to_be()
}

/// `bpf_ktime_get_ns()` from user space: CLOCK_MONOTONIC.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid one passed.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One map entry a row puts before its packet runs.
#[derive(Debug, Clone)]
pub enum Put {
    /// `md_ifaces_v2`: an attached veth.
    Iface(u32, Iface),
    /// `md_endpoints_v2`.
    Endpoint(Ipv4Addr, Endpoint),
    /// `md_services_v1`: a VIP and its service id.
    Service(Ipv4Addr, u32),
    /// `md_maglev_v3`: a service's Maglev table, one slot per backend listed.
    Maglev(u32, Vec<Ipv4Addr>),
    /// `md_flows_v1`: an empty flow table for a local endpoint.
    FlowTable(Ipv4Addr),
    /// An entry in the flow table of the endpoint (made if missing).
    Flow(Ipv4Addr, FlowKey, Flow),
    /// `md_frontends_v2`.
    Frontend(FrontendKey, Frontend),
    /// `md_mesh_rnat_v2` (last_seen: now).
    MeshNat(RnatKey, MeshNat),
    /// `md_mesh_return_v2` (last_seen: now).
    MeshReturn(RnatKey, MeshReturn),
    /// `md_ct_v3` (last_seen: now).
    Ct(CtKey, CtVal),
    /// `md_config_v4`.
    Config(NodeConfig),
    /// `md_nodes_v1`: a member node.
    Node(Ipv4Addr),
    /// `md_node_hops_v1`: the hop a node's tunnel packets were last confirmed through.
    NodeHop(Ipv4Addr, [u8; 6]),
    /// `md_overlay_v1`.
    Overlay(OverlayConfig),
    /// `md_overlay_hops_v1` (checked: now, so the program uses it without a route lookup).
    OverlayHop(Ipv4Addr, OverlayHop),
    /// Test hook: the tunnel key `bpf_skb_get_tunnel_key` gives (remote node, VNI).
    TunnelKey(Ipv4Addr, u32),
    /// Test hook: the answer of `bpf_fib_lookup`.
    Fib(TestFib),
    /// `md_encrypted_nets_v1`: the network of this VNI is encrypted.
    EncryptedNet(u32),
    /// `md_tunnels_v1`: a WireGuard tunnel to this node is up.
    Tunnel(Ipv4Addr),
    /// `md_encrypt_v1`: the engine's interface, table and mark.
    Encrypt(EncryptConfig),
}

/// What the program must return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// TC_ACT_OK: on to the stack.
    Ok,
    /// TC_ACT_SHOT: dropped.
    Shot,
    /// TC_ACT_UNSPEC: none of this program's business (the next program or the stack decides).
    Unspec,
    /// TC_ACT_REDIRECT to `ifindex`: into the peer's namespace (`bpf_redirect_peer`) or out of
    /// the device (`bpf_redirect`).
    Redirect { ifindex: u32, peer: bool },
}

/// A check of the packet a program emits.
pub type Check = Box<dyn Fn(&[u8]) -> Result<(), String>>;

/// What must come out of the program.
pub enum Out {
    /// The packet as it went in.
    Unchanged,
    /// Not looked at (a drop).
    Any,
    /// Checked field by field (frames.rs).
    Check(Check),
}

/// A check of the maps after the run (state the program must have written).
pub type After = Box<dyn Fn(&mut Fixture) -> Result<(), String>>;

/// One row of a table.
pub struct Row {
    pub name: &'static str,
    pub program: &'static str,
    pub maps: Vec<Put>,
    /// `skb->ingress_ifindex` (0: sent by this host).
    pub ingress_ifindex: u32,
    pub packet: Vec<u8>,
    pub verdict: Verdict,
    /// Every (direction, reason) counted, once each; nothing else may be.
    pub counted: Vec<(Direction, Reason)>,
    /// The tunnel key set: (remote node, VNI, local address).
    pub set_key: Option<(Ipv4Addr, u32, Ipv4Addr)>,
    pub out: Out,
    pub after: Option<After>,
}

impl Row {
    pub fn new(name: &'static str, program: &'static str, packet: Vec<u8>) -> Row {
        Row {
            name,
            program,
            maps: Vec::new(),
            ingress_ifindex: 0,
            packet,
            verdict: Verdict::Ok,
            counted: Vec::new(),
            set_key: None,
            out: Out::Any,
            after: None,
        }
    }

    pub fn maps(mut self, maps: impl IntoIterator<Item = Put>) -> Row {
        self.maps.extend(maps);
        self
    }

    pub fn ingress(mut self, ifindex: u32) -> Row {
        self.ingress_ifindex = ifindex;
        self
    }

    /// The verdict and the counters it must bring.
    pub fn expect(mut self, verdict: Verdict, counted: &[(Direction, Reason)]) -> Row {
        self.verdict = verdict;
        self.counted = counted.to_vec();
        self
    }

    pub fn set_key(mut self, remote: Ipv4Addr, vni: u32, local: Ipv4Addr) -> Row {
        self.set_key = Some((remote, vni, local));
        self
    }

    pub fn out(mut self, out: Out) -> Row {
        self.out = out;
        self
    }

    pub fn check(self, check: impl Fn(&[u8]) -> Result<(), String> + 'static) -> Row {
        self.out(Out::Check(Box::new(check)))
    }

    pub fn after(mut self, after: impl Fn(&mut Fixture) -> Result<(), String> + 'static) -> Row {
        self.after = Some(Box::new(after));
        self
    }
}

/// A pin directory of a test's own, removed on drop (also when the test fails). Under the
/// integration tests' pin root, so scripts/sweep-test-leftovers.sh finds what a killed run left.
pub struct PinDir(pub PathBuf);

impl PinDir {
    pub fn new(tag: &str) -> PinDir {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(euid, 0, "the packet tests load eBPF programs: run them as root");
        let dir =
            PathBuf::from("/sys/fs/bpf/meshd-tests").join(format!("packets-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {} (is bpffs mounted?): {e}", dir.display()));
        PinDir(dir)
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loaded test object with a pin directory of its own.
pub struct Fixture {
    ebpf: Ebpf,
    _pins: PinDir,
}

/// The maps rows write, cleared before each row: (name, how).
type Clear = fn(&mut Ebpf, &'static str);

const STATE: &[(&str, Clear)] = &[
    (endpoint::IFACES_MAP, clear_hash::<u32, Iface>),
    (endpoint::ENDPOINTS_MAP, clear_hash::<u32, Endpoint>),
    (lb::SERVICES_MAP, clear_hash::<u32, Service>),
    (lb::MAGLEV_MAP, clear_outer),
    (lb::FLOWS_MAP, clear_outer),
    (lb::CT_MAP, clear_hash::<CtKey, CtVal>),
    (mesh::FRONTENDS_MAP, clear_hash::<FrontendKey, Frontend>),
    (mesh::MESH_RNAT_MAP, clear_hash::<RnatKey, MeshNat>),
    (mesh::MESH_RETURN_MAP, clear_hash::<RnatKey, MeshReturn>),
    (node::NODES_MAP, clear_hash::<u32, Node>),
    (node::NODE_HOPS_MAP, clear_hash::<u32, NodeHop>),
    (overlay::HOPS_MAP, clear_hash::<u32, OverlayHop>),
    (node::CONFIG_MAP, clear_array::<NodeConfig>),
    (overlay::CONFIG_MAP, clear_array::<OverlayConfig>),
    (encrypt::NETS_MAP, clear_hash::<u32, EncryptedNet>),
    (encrypt::TUNNELS_MAP, clear_hash::<u32, Tunnel>),
    (encrypt::CONFIG_MAP, clear_array::<EncryptConfig>),
    ("md_t_redirect", clear_array::<TestRedirect>),
    ("md_t_set_key", clear_array::<TestSetKey>),
    ("md_t_tunnel", clear_array::<TestTunnel>),
    ("md_t_fib", clear_array::<TestFib>),
];

fn clear_hash<K: Pod, V: Pod>(ebpf: &mut Ebpf, name: &'static str) {
    let Some(map) = ebpf.map_mut(name) else { return };
    let mut map: HashMap<&mut MapData, K, V> = HashMap::try_from(map).expect(name);
    let keys: Vec<K> = map.keys().filter_map(Result::ok).collect();
    for key in keys {
        map.remove(&key).expect(name);
    }
}

fn clear_outer(ebpf: &mut Ebpf, name: &'static str) {
    let Some(map) = ebpf.map_mut(name) else { return };
    let mut map: HashOfMaps<&mut MapData, u32, MapData> = HashOfMaps::try_from(map).expect(name);
    let keys: Vec<u32> = map.keys().filter_map(Result::ok).collect();
    for key in keys {
        map.remove(&key).expect(name);
    }
}

fn clear_array<V: Pod + Default>(ebpf: &mut Ebpf, name: &'static str) {
    let Some(map) = ebpf.map_mut(name) else { return };
    let mut map: Array<&mut MapData, V> = Array::try_from(map).expect(name);
    map.set(0, V::default(), 0).expect(name);
}

impl Fixture {
    /// Loads the test build of object `name` (e.g. "veth.bpf.o") and its tc `programs`.
    pub fn load(name: &str, bytes: &[u8], programs: &[&str]) -> Fixture {
        let pins = PinDir::new(name.trim_end_matches(".bpf.o"));
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&pins.0)
            .load(bytes)
            .unwrap_or_else(|e| panic!("loading the test build of {name}: {e}"));
        for program in programs {
            let prog: &mut SchedClassifier = ebpf
                .program_mut(program)
                .unwrap_or_else(|| panic!("{name} has no program {program}"))
                .try_into()
                .expect("a tc program");
            prog.load().unwrap_or_else(|e| panic!("loading {program}: {e:?}"));
        }
        Fixture { ebpf, _pins: pins }
    }

    /// Runs every row; panics with every row that failed (and why) at the end.
    pub fn run_table(&mut self, table: &str, rows: Vec<Row>) {
        let started = std::time::Instant::now();
        let count = rows.len();
        let mut failures = Vec::new();
        for row in rows {
            if let Err(why) = self.run_row(&row) {
                failures.push(format!("  {table} / {}: {why}", row.name));
            }
        }
        eprintln!("{table}: {count} rows in {:?}", started.elapsed());
        assert!(failures.is_empty(), "{} of {count} rows failed:\n{}", failures.len(), failures.join("\n"));
    }

    fn run_row(&mut self, row: &Row) -> Result<(), String> {
        for (name, clear) in STATE {
            clear(&mut self.ebpf, name);
        }
        self.clear_verdicts();
        for put in &row.maps {
            self.put(put);
        }
        let prog: &SchedClassifier = self
            .ebpf
            .program(row.program)
            .ok_or_else(|| format!("no program {}", row.program))?
            .try_into()
            .map_err(|e| format!("{e}"))?;
        let fd = prog.fd().map_err(|e| format!("{e}"))?;
        let ran = test_run::run(fd.as_fd(), &row.packet, row.ingress_ifindex)
            .map_err(|e| format!("BPF_PROG_TEST_RUN: {e}"))?;

        let redirect: TestRedirect = self.array("md_t_redirect");
        let got = match ran.retval {
            TC_ACT_OK => Verdict::Ok,
            TC_ACT_SHOT => Verdict::Shot,
            TC_ACT_UNSPEC => Verdict::Unspec,
            TC_ACT_REDIRECT if redirect.calls == 1 => {
                Verdict::Redirect { ifindex: redirect.ifindex, peer: redirect.peer == 1 }
            }
            other => return Err(format!("return code {other} (redirect hook: {redirect:?})")),
        };
        if got != row.verdict {
            return Err(format!("verdict {got:?}, expected {:?}", row.verdict));
        }

        let counted = self.verdicts();
        let mut expected: BTreeMap<(Direction, Reason), u64> = BTreeMap::new();
        for key in &row.counted {
            *expected.entry(*key).or_default() += 1;
        }
        if counted != expected {
            return Err(format!("counted {counted:?}, expected {expected:?}"));
        }

        let key: TestSetKey = self.array("md_t_set_key");
        let set = (key.calls > 0)
            .then(|| (Ipv4Addr::from(key.remote_ipv4), key.tunnel_id, Ipv4Addr::from(key.local_ipv4)));
        if set != row.set_key {
            return Err(format!("tunnel key set {set:?}, expected {:?}", row.set_key));
        }

        match &row.out {
            Out::Any => {}
            Out::Unchanged if ran.packet == row.packet => {}
            Out::Unchanged => return Err("the packet was changed".into()),
            Out::Check(check) => check(&ran.packet).map_err(|e| format!("output packet: {e}"))?,
        }
        if let Some(after) = &row.after {
            after(self).map_err(|e| format!("maps after the run: {e}"))?;
        }
        Ok(())
    }

    fn put(&mut self, put: &Put) {
        let now = now_ns();
        match put.clone() {
            Put::Iface(ifindex, iface) => self.insert(endpoint::IFACES_MAP, ifindex, iface),
            Put::Endpoint(addr, ep) => self.insert(endpoint::ENDPOINTS_MAP, be(addr), ep),
            Put::Service(vip, id) => self.insert(lb::SERVICES_MAP, be(vip), Service { id, pad: 0 }),
            Put::Maglev(id, backends) => {
                let mut slots = vec![backends.len() as u32, 0];
                slots.extend(backends.iter().map(|b| be(*b)));
                let mut table: Array<MapData, u32> =
                    Array::create(slots.len() as u32, lb::MAGLEV_TABLE_FLAGS).expect("a Maglev table");
                for (i, slot) in slots.iter().enumerate() {
                    table.set(i as u32, *slot, 0).expect("a Maglev slot");
                }
                let map = self.ebpf.map_mut(lb::MAGLEV_MAP).expect(lb::MAGLEV_MAP);
                let mut outer: HashOfMaps<&mut MapData, u32, Array<MapData, u32>> =
                    HashOfMaps::try_from(map).expect(lb::MAGLEV_MAP);
                outer.insert(id, &table, 0).expect("md_maglev_v3 insert");
            }
            Put::FlowTable(addr) => {
                self.flow_table(addr);
            }
            Put::Flow(addr, key, flow) => {
                let mut table = self.flow_table(addr);
                table.insert(key, flow, 0).expect("a flow");
            }
            Put::Frontend(key, fe) => self.insert(mesh::FRONTENDS_MAP, key, fe),
            Put::MeshNat(key, nat) => {
                self.insert(mesh::MESH_RNAT_MAP, key, MeshNat { last_seen: now, ..nat })
            }
            Put::MeshReturn(key, back) => {
                self.insert(mesh::MESH_RETURN_MAP, key, MeshReturn { last_seen: now, ..back })
            }
            Put::Ct(key, val) => self.insert(lb::CT_MAP, key, CtVal { last_seen: now, ..val }),
            Put::Config(config) => self.set_array(node::CONFIG_MAP, config),
            Put::Node(addr) => {
                self.insert(node::NODES_MAP, be(addr), Node { flags: node::NODE_MEMBER, pad: 0 })
            }
            Put::NodeHop(addr, mac) => {
                self.insert(node::NODE_HOPS_MAP, be(addr), NodeHop { mac, pad: [0; 2] })
            }
            Put::Overlay(config) => self.set_array(overlay::CONFIG_MAP, config),
            Put::OverlayHop(addr, hop) => {
                self.insert(overlay::HOPS_MAP, be(addr), OverlayHop { checked_ns: now, ..hop })
            }
            Put::TunnelKey(remote, vni) => self.set_array(
                "md_t_tunnel",
                TestTunnel { set: 1, remote_ipv4: u32::from(remote), tunnel_id: vni, pad: 0 },
            ),
            Put::Fib(fib) => self.set_array("md_t_fib", TestFib { set: 1, ..fib }),
            Put::EncryptedNet(vni) => self.insert(encrypt::NETS_MAP, vni, EncryptedNet::default()),
            Put::Tunnel(addr) => {
                self.insert(encrypt::TUNNELS_MAP, be(addr), Tunnel { flags: encrypt::TUNNEL_READY, pad: 0 })
            }
            Put::Encrypt(config) => self.set_array(encrypt::CONFIG_MAP, config),
        }
    }

    fn insert<K: Pod, V: Pod>(&mut self, name: &'static str, key: K, value: V) {
        let map = self.ebpf.map_mut(name).unwrap_or_else(|| panic!("no map {name}"));
        let mut map: HashMap<&mut MapData, K, V> = HashMap::try_from(map).expect(name);
        map.insert(key, value, 0).unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    fn set_array<V: Pod>(&mut self, name: &'static str, value: V) {
        let map = self.ebpf.map_mut(name).unwrap_or_else(|| panic!("no map {name}"));
        let mut map: Array<&mut MapData, V> = Array::try_from(map).expect(name);
        map.set(0, value, 0).unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    fn array<V: Pod>(&self, name: &'static str) -> V {
        let map = self.ebpf.map(name).unwrap_or_else(|| panic!("no map {name}"));
        let map: Array<&MapData, V> = Array::try_from(map).expect(name);
        map.get(&0, 0).expect(name)
    }

    /// The flow table of local endpoint `addr`, made (as the agent makes it) if missing.
    pub fn flow_table(&mut self, addr: Ipv4Addr) -> HashMap<MapData, FlowKey, Flow> {
        let map = self.ebpf.map_mut(lb::FLOWS_MAP).expect(lb::FLOWS_MAP);
        let mut outer: HashOfMaps<&mut MapData, u32, HashMap<MapData, FlowKey, Flow>> =
            HashOfMaps::try_from(map).expect(lb::FLOWS_MAP);
        if let Ok(table) = outer.get(&be(addr), 0) {
            return table;
        }
        let obj = aya_obj::Map::new_from_params(
            lb::FLOW_TABLE_TYPE,
            size_of::<FlowKey>() as u32,
            size_of::<Flow>() as u32,
            lb::FLOWS_PER_ENDPOINT,
            lb::FLOW_TABLE_FLAGS,
        );
        let data = MapData::create(obj, "md_flow_table", None).expect("a flow table");
        let table: HashMap<MapData, FlowKey, Flow> =
            HashMap::try_from(Map::LruHashMap(data)).expect("an LRU flow table");
        outer.insert(be(addr), &table, 0).expect("md_flows_v1 insert");
        table
    }

    /// An entry of a hash map after the run.
    pub fn lookup<K: Pod, V: Pod>(&self, name: &'static str, key: &K) -> Option<V> {
        let map = self.ebpf.map(name).unwrap_or_else(|| panic!("no map {name}"));
        let map: HashMap<&MapData, K, V> = HashMap::try_from(map).expect(name);
        map.get(key, 0).ok()
    }

    fn clear_verdicts(&mut self) {
        let map = self.ebpf.map_mut(verdict::MAP_NAME).expect(verdict::MAP_NAME);
        let mut map: PerCpuHashMap<&mut MapData, VerdictKey, VerdictCounter> =
            PerCpuHashMap::try_from(map).expect(verdict::MAP_NAME);
        let keys: Vec<VerdictKey> = map.keys().filter_map(Result::ok).collect();
        for key in keys {
            map.remove(&key).expect(verdict::MAP_NAME);
        }
    }

    /// Packets counted per (direction, reason), summed over CPUs; every key must be on
    /// [`IFINDEX`] with zero padding.
    fn verdicts(&self) -> BTreeMap<(Direction, Reason), u64> {
        let map = self.ebpf.map(verdict::MAP_NAME).expect(verdict::MAP_NAME);
        let map: PerCpuHashMap<&MapData, VerdictKey, VerdictCounter> =
            PerCpuHashMap::try_from(map).expect(verdict::MAP_NAME);
        let mut counted = BTreeMap::new();
        for (key, per_cpu) in map.iter().filter_map(Result::ok) {
            assert_eq!((key.ifindex, key.pad), (IFINDEX, 0), "a verdict key off the program's interface");
            let mut sum = VerdictCounter::default();
            for slot in per_cpu.iter() {
                sum.add(slot);
            }
            counted.insert((Direction::from_code(key.dir), Reason::from_code(key.reason)), sum.packets);
        }
        counted
    }
}
