//! Loading meshd's eBPF objects into the kernel: every program of every object is loaded (and so
//! verified) at start, and every map is pinned under the node's pin directory.
//!
//! Maps marked `LIBBPF_PIN_BY_NAME` in C are pinned there; when a pin already exists aya reuses
//! it instead of creating a new map, which is how counters and forwarding state survive an agent
//! restart. What the programs are attached to is in [`super::links`]; what the maps hold, in
//! [`super::forwarding`], [`super::maglev_tables`] and [`super::inspect`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aya::maps::{Array, MapData};
use aya::programs::{CgroupSock, CgroupSockAddr, ProgramError, SchedClassifier};
use aya::{Ebpf, EbpfLoader};
use meshd_ebpf::{node, overlay, sock, underlay, verdict, veth, vxlan, Object, SOCK, UNDERLAY, VETH, VXLAN};

use super::forwarding::Synced;
use super::BpfError;

/// The loaded objects of one node, and what the agent last wrote into their maps.
#[derive(Debug)]
pub struct Datapath {
    pub(super) veth: Ebpf,
    pub(super) vxlan: Ebpf,
    pub(super) underlay: Ebpf,
    pub(super) sock: Ebpf,
    pub(super) pin_dir: PathBuf,
    /// The Maglev tables this process installed (service id -> array contents), so an
    /// unchanged table is not written again.
    pub(super) tables: std::collections::HashMap<u32, std::sync::Arc<Vec<u32>>>,
    /// Whether `tables` is every table in md_maglev_v3 (false until the first sync succeeds,
    /// and after a failed one: then the kernel's keys are read back).
    pub(super) tables_known: bool,
    /// What the forwarding maps held after the last sync, so a sync diffs in memory instead of
    /// reading 100,000 entries back from the kernel every time (read once, on the first sync).
    pub(super) synced: Synced,
    /// The cookie of the node's own network namespace (`set_config`; 0 until then): its sockets
    /// have a socket table of their own (`sock_tables`).
    pub(super) own_netns: u64,
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
        let release: &mut CgroupSock = program_of(&mut sock, &SOCK, sock::RELEASE)?;
        release.load().map_err(|source| BpfError::Program {
            object: SOCK.name,
            program: sock::RELEASE,
            source: Box::new(source),
        })?;
        let in_use: std::collections::BTreeSet<&str> = [&veth, &vxlan, &underlay, &sock]
            .into_iter()
            .flat_map(|o| o.maps().map(|(name, _)| name))
            .collect();
        super::retired_pins::remove(pin_dir, &in_use);
        Ok(Datapath {
            veth,
            vxlan,
            underlay,
            sock,
            pin_dir: pin_dir.to_path_buf(),
            tables: std::collections::HashMap::new(),
            tables_known: false,
            synced: Synced::default(),
            own_netns: 0,
        })
    }

    /// Writes the node-wide settings map.
    pub fn set_config(&mut self, config: node::NodeConfig) -> Result<(), BpfError> {
        let map_err = |source| BpfError::Map { map: node::CONFIG_MAP, source: Box::new(source) };
        let map = self
            .veth
            .map_mut(node::CONFIG_MAP)
            .ok_or(BpfError::MissingMap { object: VETH.name, map: node::CONFIG_MAP })?;
        let mut array: Array<&mut MapData, node::NodeConfig> = Array::try_from(map).map_err(map_err)?;
        array.set(0, config, 0).map_err(map_err)?;
        self.own_netns = config.netns_cookie;
        Ok(())
    }

    /// Writes the overlay fast path's settings (`md_overlay_v1`; flags 0 turns the fast path
    /// off: every packet then takes the VXLAN device).
    pub fn set_overlay(&mut self, config: overlay::OverlayConfig) -> Result<(), BpfError> {
        let map_err = |source| BpfError::Map { map: overlay::CONFIG_MAP, source: Box::new(source) };
        let map = self
            .veth
            .map_mut(overlay::CONFIG_MAP)
            .ok_or(BpfError::MissingMap { object: VETH.name, map: overlay::CONFIG_MAP })?;
        let mut array: Array<&mut MapData, overlay::OverlayConfig> = Array::try_from(map).map_err(map_err)?;
        array.set(0, config, 0).map_err(map_err)
    }

    /// Packets and bytes per (interface, reason, direction), summed over CPUs.
    pub fn verdicts(&self) -> Result<BTreeMap<verdict::VerdictKey, verdict::VerdictCounter>, BpfError> {
        let map = self
            .veth
            .map(verdict::MAP_NAME)
            .ok_or(BpfError::MissingMap { object: VETH.name, map: verdict::MAP_NAME })?;
        super::verdicts::read(map)
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
pub(super) fn program_of<'a, P>(
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
