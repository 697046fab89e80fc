//! Loading meshd's eBPF objects into the kernel and attaching their programs.
//!
//! Maps marked `LIBBPF_PIN_BY_NAME` in C are pinned under the node's pin directory; when a pin
//! already exists aya reuses it instead of creating a new map, which is how counters and (later)
//! forwarding state survive an agent restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap as AyaHashMap, HashOfMaps, MapData};

use aya::programs::links::{FdLink, LinkOrder, PinnedLink};
use aya::programs::tc::{SchedClassifierLink, TcAttachOptions};
use aya::programs::{CgroupAttachMode, CgroupSockAddr, ProgramError, SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};
use meshd_ebpf::{
    endpoint, lb, mesh, node, sock, underlay, verdict, veth, vxlan, Object, SOCK, UNDERLAY, VETH, VXLAN,
};

use super::BpfError;

/// The loaded objects of one node.
#[derive(Debug)]
pub struct Datapath {
    veth: Ebpf,
    vxlan: Ebpf,
    underlay: Ebpf,
    sock: Ebpf,
    pin_dir: PathBuf,
    /// The Maglev tables this process installed (service id -> array contents), so an
    /// unchanged table is not written again.
    tables: std::collections::HashMap<u32, Vec<u32>>,
    /// What the forwarding maps held after the last sync, so a sync diffs in memory instead of
    /// reading 100,000 entries back from the kernel every time (read once, on the first sync).
    synced: Synced,
}

/// The agent's copy of the forwarding maps it owns (None: not read from the kernel yet).
#[derive(Debug, Default)]
struct Synced {
    ifaces: Option<BTreeMap<u32, endpoint::Iface>>,
    endpoints: Option<BTreeMap<u32, endpoint::Endpoint>>,
    services: Option<BTreeMap<u32, lb::Service>>,
    frontends: Option<BTreeMap<mesh::FrontendKey, mesh::Frontend>>,
}

impl Datapath {
    /// Loads every object and every program in it (so the verifier checks all of them now, not
    /// on first use), pinning maps under `pin_dir`, which must exist on a bpffs.
    pub fn load(pin_dir: &Path) -> Result<Datapath, BpfError> {
        let mut veth = load_object(&VETH, pin_dir)?;
        for program in [veth::FROM_CONTAINER, veth::TO_CONTAINER] {
            load_classifier(&mut veth, &VETH, program)?;
        }
        // Loaded after it: their maps are the pinned ones the veth object created.
        let mut vxlan = load_object(&VXLAN, pin_dir)?;
        for program in [vxlan::INGRESS, vxlan::TO_TUNNEL] {
            load_classifier(&mut vxlan, &VXLAN, program)?;
        }
        let mut underlay = load_object(&UNDERLAY, pin_dir)?;
        load_classifier(&mut underlay, &UNDERLAY, underlay::INGRESS)?;
        let mut sock = load_object(&SOCK, pin_dir)?;
        for program in sock::ALL {
            let prog: &mut CgroupSockAddr = program_of(&mut sock, &SOCK, program)?;
            prog.load().map_err(|source| BpfError::Program {
                object: SOCK.name,
                program,
                source: Box::new(source),
            })?;
        }
        Ok(Datapath {
            veth,
            vxlan,
            underlay,
            sock,
            pin_dir: pin_dir.to_path_buf(),
            tables: std::collections::HashMap::new(),
            synced: Synced::default(),
        })
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Attaches the container-veth programs to the host side of a container's veth pair: tc
    /// ingress sees what the container sends, tc egress what it receives through the stack.
    ///
    /// The TCX links are pinned under the node's pin directory, so they outlive this process: an
    /// agent restart finds them and swaps in its freshly loaded programs atomically
    /// (`bpf_link_update`); traffic never runs without a program.
    pub fn attach_veth(&mut self, host_ifname: &str) -> Result<VethAttachment, BpfError> {
        let mut pins = Vec::with_capacity(2);
        for (program, side, suffix) in [
            (veth::FROM_CONTAINER, TcAttachType::Ingress, "ingress"),
            (veth::TO_CONTAINER, TcAttachType::Egress, "egress"),
        ] {
            let pin = self.link_pin(host_ifname, suffix);
            attach_pinned(&mut self.veth, &VETH, program, host_ifname, side, &pin)?;
            pins.push(pin);
        }
        Ok(VethAttachment { pins })
    }

    /// Detaches what [`attach_veth`](Self::attach_veth) attached (removing the pins releases
    /// the links).
    pub fn detach_veth(&mut self, attachment: VethAttachment) -> Result<(), BpfError> {
        for pin in attachment.pins {
            remove_pin(&pin)?;
        }
        Ok(())
    }

    /// Removes the link pins of an interface that is gone (or going).
    pub fn forget_links(&mut self, ifname: &str) -> Result<(), BpfError> {
        for suffix in ["ingress", "egress"] {
            remove_pin(&self.link_pin(ifname, suffix))?;
        }
        Ok(())
    }

    /// Attaches the tunnel programs to tc ingress and egress of the VXLAN device, pinned like the
    /// veth links.
    pub fn attach_vxlan(&mut self, ifname: &str) -> Result<(), BpfError> {
        let pin = self.link_pin(ifname, "ingress");
        attach_pinned(&mut self.vxlan, &VXLAN, vxlan::INGRESS, ifname, TcAttachType::Ingress, &pin)?;
        let pin = self.link_pin(ifname, "egress");
        attach_pinned(&mut self.vxlan, &VXLAN, vxlan::TO_TUNNEL, ifname, TcAttachType::Egress, &pin)
    }

    /// Attaches the routing mesh's front door to tc ingress of the underlay interface.
    pub fn attach_underlay(&mut self, ifname: &str) -> Result<(), BpfError> {
        let pin = self.link_pin(ifname, "ingress");
        attach_pinned(&mut self.underlay, &UNDERLAY, underlay::INGRESS, ifname, TcAttachType::Ingress, &pin)
    }

    /// Attaches the socket programs to the cgroup v2 directory `cgroup` (the hierarchy's root, so
    /// every process of the node is covered). The links are pinned; a restarted agent attaches
    /// its new programs first and only then releases the old links, so no connect() slips
    /// through untranslated (while both are attached the second one sees a backend address,
    /// which is not a published port, and leaves it).
    pub fn attach_sockets(&mut self, cgroup: &Path) -> Result<(), BpfError> {
        let attach_err = |program: &'static str| {
            move |source: ProgramError| BpfError::Attach {
                program,
                interface: cgroup.display().to_string(),
                source: Box::new(source),
            }
        };
        let file = std::fs::File::open(cgroup)
            .map_err(|source| BpfError::PinDir { path: cgroup.to_path_buf(), source })?;
        for program in sock::ALL {
            let pin = self.link_pin("cgroup", program);
            // bpffs refuses names with a dot.
            let fresh = self.link_pin("cgroup", &format!("{program}-new"));
            let prog: &mut CgroupSockAddr = program_of(&mut self.sock, &SOCK, program)?;
            // Through bpf_link_create, which takes no attach flags (EINVAL otherwise): cgroup links
            // always stack with the other links on the cgroup (each node's agent has its own).
            let id = prog.attach(&file, CgroupAttachMode::Single).map_err(attach_err(program))?;
            let link = prog.take_link(id).map_err(attach_err(program))?;
            let fd_link = FdLink::try_from(link).map_err(|source| BpfError::Link {
                program,
                interface: cgroup.display().to_string(),
                source: Box::new(source),
            })?;
            pin_link(fd_link, &fresh)?;
            // Replacing the pin releases the previous run's link (if any).
            std::fs::rename(&fresh, &pin).map_err(|source| BpfError::PinDir { path: pin.clone(), source })?;
        }
        Ok(())
    }

    /// Releases the routing mesh's links (underlay program, socket programs) by removing their
    /// pins.
    pub fn detach_mesh(&mut self, underlay_ifname: &str) -> Result<(), BpfError> {
        remove_pin(&self.link_pin(underlay_ifname, "ingress"))?;
        for program in sock::ALL {
            remove_pin(&self.link_pin("cgroup", program))?;
        }
        Ok(())
    }

    fn link_pin(&self, ifname: &str, suffix: &str) -> PathBuf {
        self.pin_dir.join("links").join(format!("{ifname}-{suffix}"))
    }

    /// Writes the node-wide settings map.
    pub fn set_config(&mut self, config: node::NodeConfig) -> Result<(), BpfError> {
        let map_err = |source| BpfError::Map { map: node::CONFIG_MAP, source: Box::new(source) };
        let map = self
            .veth
            .map_mut(node::CONFIG_MAP)
            .ok_or(BpfError::MissingMap { object: VETH.name, map: node::CONFIG_MAP })?;
        let mut array: Array<&mut MapData, node::NodeConfig> = Array::try_from(map).map_err(map_err)?;
        array.set(0, config, 0).map_err(map_err)
    }

    /// Brings the forwarding maps (interfaces, endpoints, Maglev tables, services, published
    /// ports) to `desired`. Returns (entries written, entries deleted).
    pub fn sync_forwarding(
        &mut self,
        desired: &crate::overlay::reconcile::Desired,
    ) -> Result<(usize, usize), BpfError> {
        let veth = &mut self.veth;
        let synced = &mut self.synced;
        // Interfaces first: a local endpoint is only useful once its veth is known.
        let (w1, d1) = sync_map(veth, endpoint::IFACES_MAP, &mut synced.ifaces, &desired.ifaces)?;
        let (w2, d2) = sync_map(veth, endpoint::ENDPOINTS_MAP, &mut synced.endpoints, &desired.endpoints)?;
        // Tables before the services that point at them.
        let (w3, d3) = self.sync_maglev(&desired.maglev)?;
        let veth = &mut self.veth;
        let synced = &mut self.synced;
        let (w4, d4) = sync_map(veth, lb::SERVICES_MAP, &mut synced.services, &desired.services)?;
        let (w5, d5) = sync_map(veth, mesh::FRONTENDS_MAP, &mut synced.frontends, &desired.frontends)?;
        Ok((w1 + w2 + w3 + w4 + w5, d1 + d2 + d3 + d4 + d5))
    }

    /// Brings md_maglev_v2 to `desired` (service id -> table). A changed table is written into a
    /// fresh array and swapped in with one update of the outer map: a packet sees the old table
    /// or the new one, never a mix, and the table carries its own size. A table installed by an
    /// earlier run of the agent is kept when its size and fingerprint match. Returns (tables
    /// written, tables removed).
    fn sync_maglev(&mut self, desired: &BTreeMap<u32, Vec<u32>>) -> Result<(usize, usize), BpfError> {
        let map_err = |source| BpfError::Map { map: lb::MAGLEV_MAP, source: Box::new(source) };
        let map = self
            .veth
            .map_mut(lb::MAGLEV_MAP)
            .ok_or(BpfError::MissingMap { object: VETH.name, map: lb::MAGLEV_MAP })?;
        let mut outer: HashOfMaps<&mut MapData, u32, Array<MapData, u32>> =
            HashOfMaps::try_from(map).map_err(map_err)?;
        let present: std::collections::HashSet<u32> = outer.keys().filter_map(Result::ok).collect();
        let mut todo: Vec<(u32, &Vec<u32>)> = Vec::new();
        for (id, table) in desired {
            if present.contains(id) {
                if self.tables.get(id) == Some(table) {
                    continue;
                }
                if !self.tables.contains_key(id) && same_table(&outer, *id, table) {
                    self.tables.insert(*id, table.clone());
                    continue;
                }
            }
            todo.push((*id, table));
        }
        let mut removed = 0;
        for id in present.iter().filter(|id| !desired.contains_key(id)) {
            // Already gone is what we wanted.
            let _ = outer.remove(id);
            self.tables.remove(id);
            removed += 1;
        }

        // Every update of a map of maps from user space waits for an RCU grace period (a few ms:
        // the kernel makes sure no program still runs with the old table). Waits in parallel
        // share grace periods, so thousands of tables are written by a pool of threads, each
        // with its own handle on the pinned outer map.
        let pin = self.pin_dir.join(lb::MAGLEV_MAP);
        let workers = todo.len().clamp(1, 64);
        let per_worker = todo.len().div_ceil(workers).max(1);
        let results: Vec<Result<Vec<u32>, BpfError>> = std::thread::scope(|scope| {
            let handles: Vec<_> =
                todo.chunks(per_worker).map(|chunk| scope.spawn(|| write_tables(&pin, chunk))).collect();
            handles.into_iter().map(|h| h.join().expect("table writer panicked")).collect()
        });
        let mut written = 0;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(ids) => {
                    for id in ids {
                        self.tables.insert(id, desired[&id].clone());
                        written += 1;
                    }
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok((written, removed)),
        }
    }

    /// What the kernel holds for one VIP, read back from the maps (not from the cluster state):
    /// its table size, each backend's Maglev slots, and each backend's tracked flows.
    pub fn lb_view(&self, vip: u32) -> Result<LbView, BpfError> {
        let map = |name: &'static str| {
            self.veth.map(name).ok_or(BpfError::MissingMap { object: VETH.name, map: name })
        };
        let err = |name: &'static str| move |source| BpfError::Map { map: name, source: Box::new(source) };
        let services: AyaHashMap<&MapData, u32, lb::Service> =
            AyaHashMap::try_from(map(lb::SERVICES_MAP)?).map_err(err(lb::SERVICES_MAP))?;
        let Ok(service) = services.get(&vip, 0) else { return Ok(LbView::default()) };
        let mut view = LbView::default();
        let maglev: HashOfMaps<&MapData, u32, Array<MapData, u32>> =
            HashOfMaps::try_from(map(lb::MAGLEV_MAP)?).map_err(err(lb::MAGLEV_MAP))?;
        if let Ok(table) = maglev.get(&service.id, 0) {
            // The size and the fingerprint come first; the slots follow.
            view.table_size = table.get(&lb::MAGLEV_SIZE, 0).unwrap_or(0);
            for backend in table.iter().skip(lb::MAGLEV_SLOTS as usize).filter_map(Result::ok) {
                *view.slots.entry(backend).or_insert(0) += 1;
            }
        }
        let frontends: AyaHashMap<&MapData, mesh::FrontendKey, mesh::Frontend> =
            AyaHashMap::try_from(map(mesh::FRONTENDS_MAP)?).map_err(err(mesh::FRONTENDS_MAP))?;
        for (key, frontend) in frontends.iter().filter_map(Result::ok) {
            if frontend.vip == vip {
                view.frontends.push((key, frontend));
            }
        }
        view.frontends.sort_by_key(|(key, _)| *key);
        let ct: AyaHashMap<&MapData, lb::CtKey, lb::CtVal> =
            AyaHashMap::try_from(map(lb::CT_MAP)?).map_err(err(lb::CT_MAP))?;
        for (key, value) in ct.iter().filter_map(Result::ok) {
            // A published flow is tracked under the node address it arrived on.
            let published = view
                .frontends
                .iter()
                .any(|(f, _)| (f.addr, f.port, f.proto) == (key.vip, key.port, key.proto));
            if key.vip == vip || published {
                *view.flows.entry(value.backend_ip).or_insert(0) += 1;
            }
        }
        Ok(view)
    }

    /// Packets and bytes per (interface, reason, direction), summed over CPUs.
    pub fn verdicts(
        &self,
    ) -> Result<std::collections::BTreeMap<verdict::VerdictKey, verdict::VerdictCounter>, BpfError> {
        let map = self
            .veth
            .map(verdict::MAP_NAME)
            .ok_or(BpfError::MissingMap { object: VETH.name, map: verdict::MAP_NAME })?;
        super::verdicts::read(map)
    }
}

/// One VIP as the kernel's maps hold it (addresses in map byte order).
#[derive(Debug, Default, Clone)]
pub struct LbView {
    pub table_size: u32,
    /// Backend -> Maglev slots it owns.
    pub slots: BTreeMap<u32, u32>,
    /// Backend -> flows tracked to it on this node (through the VIP and published ports).
    pub flows: BTreeMap<u32, u32>,
    /// The published ports on this node's addresses that lead to this VIP.
    pub frontends: Vec<(mesh::FrontendKey, mesh::Frontend)>,
}

/// Programs attached by [`Datapath::attach_veth`]: the pins that hold their links.
#[derive(Debug)]
pub struct VethAttachment {
    pins: Vec<PathBuf>,
}

/// Attaches `program` to `ifname` through a TCX link pinned at `pin`: a link pinned by an earlier
/// run is updated in place to this run's program; otherwise a new link is made and pinned.
fn attach_pinned(
    ebpf: &mut Ebpf,
    object: &Object,
    program: &'static str,
    ifname: &str,
    side: TcAttachType,
    pin: &Path,
) -> Result<(), BpfError> {
    let attach_err = |source: ProgramError| BpfError::Attach {
        program,
        interface: ifname.to_string(),
        source: Box::new(source),
    };
    let link_err =
        |source| BpfError::Link { program, interface: ifname.to_string(), source: Box::new(source) };
    let prog: &mut SchedClassifier = program_of(ebpf, object, program)?;
    if let Ok(pinned) = PinnedLink::from_pin(pin) {
        let link = SchedClassifierLink::try_from(FdLink::from(pinned)).map_err(link_err)?;
        prog.attach_to_link(link).map_err(attach_err)?;
        return Ok(());
    }
    let id = prog
        .attach_with_options(ifname, side, TcAttachOptions::TcxOrder(LinkOrder::default()))
        .map_err(attach_err)?;
    let link = prog.take_link(id).map_err(attach_err)?;
    let fd_link = FdLink::try_from(link).map_err(link_err)?;
    pin_link(fd_link, pin)
}

fn pin_link(link: FdLink, pin: &Path) -> Result<(), BpfError> {
    if let Some(dir) = pin.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|source| BpfError::PinDir { path: dir.to_path_buf(), source })?;
    }
    link.pin(pin).map_err(|e| BpfError::PinDir {
        path: pin.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(())
}

/// Whether the table of service `id` in the kernel has the size and fingerprint of `table`.
fn same_table(outer: &HashOfMaps<&mut MapData, u32, Array<MapData, u32>>, id: u32, table: &[u32]) -> bool {
    let Ok(existing) = outer.get(&id, 0) else { return false };
    let at = |index: u32| existing.get(&index, 0).ok();
    at(lb::MAGLEV_SIZE) == table.first().copied() && at(lb::MAGLEV_FINGERPRINT) == table.get(1).copied()
}

/// Writes each table into a fresh array and swaps it into the pinned outer map at `pin`; returns
/// the ids written.
fn write_tables(pin: &Path, tables: &[(u32, &Vec<u32>)]) -> Result<Vec<u32>, BpfError> {
    let map_err = |source| BpfError::Map { map: lb::MAGLEV_MAP, source: Box::new(source) };
    let data = MapData::from_pin(pin).map_err(map_err)?;
    let mut outer: HashOfMaps<MapData, u32, Array<MapData, u32>> =
        HashOfMaps::try_from(aya::maps::Map::HashOfMaps(data)).map_err(map_err)?;
    let mut written = Vec::with_capacity(tables.len());
    for (id, table) in tables {
        let mut array =
            Array::<MapData, u32>::create(table.len() as u32, lb::MAGLEV_TABLE_FLAGS).map_err(map_err)?;
        for (index, value) in table.iter().enumerate() {
            array.set(index as u32, value, 0).map_err(map_err)?;
        }
        outer.insert(id, &array, 0).map_err(map_err)?;
        written.push(*id);
    }
    Ok(written)
}

/// Replaces the contents of a forwarding map with `desired`, writing only the differences from
/// `synced` (what the map held after the last sync; read from the kernel when unknown), and
/// remembers `desired` as the new contents.
fn sync_map<K: aya::Pod + Ord + Copy, V: aya::Pod + PartialEq + Copy>(
    ebpf: &mut Ebpf,
    name: &'static str,
    synced: &mut Option<BTreeMap<K, V>>,
    desired: &BTreeMap<K, V>,
) -> Result<(usize, usize), BpfError> {
    let map_err = |source| BpfError::Map { map: name, source: Box::new(source) };
    let map = ebpf.map_mut(name).ok_or(BpfError::MissingMap { object: VETH.name, map: name })?;
    let mut hash: AyaHashMap<&mut MapData, K, V> = AyaHashMap::try_from(map).map_err(map_err)?;
    let current = synced.get_or_insert_with(|| hash.iter().filter_map(Result::ok).collect());
    let (upserts, deletes) = crate::overlay::reconcile::diff(current, desired);
    // On an error the kernel holds part of the change: forget the copy so that the next sync
    // reads the truth back.
    let result = (|| {
        for (key, value) in &upserts {
            hash.insert(key, value, 0)?;
        }
        for key in &deletes {
            // Already gone is what we wanted.
            let _ = hash.remove(key);
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            *synced = Some(desired.clone());
            Ok((upserts.len(), deletes.len()))
        }
        Err(source) => {
            *synced = None;
            Err(map_err(source))
        }
    }
}

fn remove_pin(pin: &Path) -> Result<(), BpfError> {
    match std::fs::remove_file(pin) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(BpfError::PinDir { path: pin.to_path_buf(), source }),
    }
}

fn load_object(object: &Object, pin_dir: &Path) -> Result<Ebpf, BpfError> {
    EbpfLoader::new()
        .default_map_pin_directory(pin_dir)
        .load(object.bytes)
        .map_err(|source| BpfError::Object { object: object.name, source: Box::new(source) })
}

fn load_classifier(ebpf: &mut Ebpf, object: &Object, program: &'static str) -> Result<(), BpfError> {
    let prog: &mut SchedClassifier = program_of(ebpf, object, program)?;
    prog.load().map_err(|source| BpfError::Program { object: object.name, program, source: Box::new(source) })
}

/// A program of `object` as its concrete type (the section name told aya which it is).
fn program_of<'a, P>(
    ebpf: &'a mut Ebpf,
    object: &Object,
    program: &'static str,
) -> Result<&'a mut P, BpfError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let missing = || BpfError::MissingProgram { object: object.name, program };
    let prog = ebpf.program_mut(program).ok_or_else(missing)?;
    prog.try_into().map_err(|source| BpfError::Program {
        object: object.name,
        program,
        source: Box::new(source),
    })
}
