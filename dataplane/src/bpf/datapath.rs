//! Loading meshd's eBPF objects into the kernel and attaching their programs.
//!
//! Maps marked `LIBBPF_PIN_BY_NAME` in C are pinned under the node's pin directory; when a pin
//! already exists aya reuses it instead of creating a new map, which is how counters and (later)
//! forwarding state survive an agent restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap as AyaHashMap, MapData};

use aya::programs::{SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};
use meshd_ebpf::{endpoint, verdict, veth, vxlan, Object, VETH, VXLAN};

use super::BpfError;

/// The loaded objects of one node.
#[derive(Debug)]
pub struct Datapath {
    veth: Ebpf,
    vxlan: Ebpf,
    pin_dir: PathBuf,
}

impl Datapath {
    /// Loads every object and every program in it (so the verifier checks all of them now, not
    /// on first use), pinning maps under `pin_dir`, which must exist on a bpffs.
    pub fn load(pin_dir: &Path) -> Result<Datapath, BpfError> {
        let mut veth = load_object(&VETH, pin_dir)?;
        for program in [veth::FROM_CONTAINER, veth::TO_CONTAINER] {
            classifier(&mut veth, &VETH, program)?.load().map_err(|source| BpfError::Program {
                object: VETH.name,
                program,
                source: Box::new(source),
            })?;
        }
        // Loaded second: its maps are the pinned ones the veth object created.
        let mut vxlan = load_object(&VXLAN, pin_dir)?;
        classifier(&mut vxlan, &VXLAN, vxlan::INGRESS)?.load().map_err(|source| BpfError::Program {
            object: VXLAN.name,
            program: vxlan::INGRESS,
            source: Box::new(source),
        })?;
        Ok(Datapath { veth, vxlan, pin_dir: pin_dir.to_path_buf() })
    }

    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Attaches the container-veth programs to the host side of a container's veth pair: tc
    /// ingress sees what the container sends, tc egress what it receives through the stack.
    /// The programs stay attached while the returned value (and this `Datapath`) live.
    pub fn attach_veth(&mut self, host_ifname: &str) -> Result<VethAttachment, BpfError> {
        let mut links = Vec::with_capacity(2);
        for (program, side) in
            [(veth::FROM_CONTAINER, TcAttachType::Ingress), (veth::TO_CONTAINER, TcAttachType::Egress)]
        {
            let prog = classifier(&mut self.veth, &VETH, program)?;
            let link = prog.attach(host_ifname, side).map_err(|source| BpfError::Attach {
                program,
                interface: host_ifname.to_string(),
                source: Box::new(source),
            })?;
            links.push((program, link));
        }
        Ok(VethAttachment { interface: host_ifname.to_string(), links })
    }

    /// Detaches what [`attach_veth`](Self::attach_veth) attached.
    pub fn detach_veth(&mut self, attachment: VethAttachment) -> Result<(), BpfError> {
        for (program, link) in attachment.links {
            classifier(&mut self.veth, &VETH, program)?.detach(link).map_err(|source| BpfError::Attach {
                program,
                interface: attachment.interface.clone(),
                source: Box::new(source),
            })?;
        }
        Ok(())
    }

    /// Attaches the tunnel program to tc ingress of the VXLAN device; kept while `self` lives.
    pub fn attach_vxlan(&mut self, ifname: &str) -> Result<(), BpfError> {
        let prog = classifier(&mut self.vxlan, &VXLAN, vxlan::INGRESS)?;
        prog.attach(ifname, TcAttachType::Ingress).map_err(|source| BpfError::Attach {
            program: vxlan::INGRESS,
            interface: ifname.to_string(),
            source: Box::new(source),
        })?;
        Ok(())
    }

    /// Writes the node-wide settings map.
    pub fn set_config(&mut self, config: endpoint::Config) -> Result<(), BpfError> {
        let map_err = |source| BpfError::Map { map: endpoint::CONFIG_MAP, source: Box::new(source) };
        let map = self
            .veth
            .map_mut(endpoint::CONFIG_MAP)
            .ok_or(BpfError::MissingMap { object: VETH.name, map: endpoint::CONFIG_MAP })?;
        let mut array: Array<&mut MapData, endpoint::Config> = Array::try_from(map).map_err(map_err)?;
        array.set(0, config, 0).map_err(map_err)
    }

    /// Replaces the contents of a forwarding map with `desired`, writing only the differences.
    fn sync_map<V: aya::Pod + PartialEq + Copy>(
        &mut self,
        name: &'static str,
        desired: &BTreeMap<u32, V>,
    ) -> Result<(usize, usize), BpfError> {
        let map_err = |source| BpfError::Map { map: name, source: Box::new(source) };
        let map = self.veth.map_mut(name).ok_or(BpfError::MissingMap { object: VETH.name, map: name })?;
        let mut hash: AyaHashMap<&mut MapData, u32, V> = AyaHashMap::try_from(map).map_err(map_err)?;
        let current: BTreeMap<u32, V> = hash.iter().filter_map(Result::ok).collect();
        let (upserts, deletes) = crate::overlay::reconcile::diff(&current, desired);
        for (key, value) in &upserts {
            hash.insert(key, value, 0).map_err(map_err)?;
        }
        for key in &deletes {
            // Already gone is what we wanted.
            let _ = hash.remove(key);
        }
        Ok((upserts.len(), deletes.len()))
    }

    /// Brings md_endpoints_v1 and md_ifaces_v1 to `desired`. Returns (written, deleted).
    pub fn sync_forwarding(
        &mut self,
        desired: &crate::overlay::reconcile::Desired,
    ) -> Result<(usize, usize), BpfError> {
        // Interfaces first: a local endpoint is only useful once its veth is known.
        let (w1, d1) = self.sync_map(endpoint::IFACES_MAP, &desired.ifaces)?;
        let (w2, d2) = self.sync_map(endpoint::ENDPOINTS_MAP, &desired.endpoints)?;
        Ok((w1 + w2, d1 + d2))
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

/// Programs attached by [`Datapath::attach_veth`].
#[derive(Debug)]
pub struct VethAttachment {
    interface: String,
    links: Vec<(&'static str, aya::programs::tc::SchedClassifierLinkId)>,
}

fn load_object(object: &Object, pin_dir: &Path) -> Result<Ebpf, BpfError> {
    EbpfLoader::new()
        .default_map_pin_directory(pin_dir)
        .load(object.bytes)
        .map_err(|source| BpfError::Object { object: object.name, source: Box::new(source) })
}

fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    object: &Object,
    program: &'static str,
) -> Result<&'a mut SchedClassifier, BpfError> {
    let missing = || BpfError::MissingProgram { object: object.name, program };
    let prog = ebpf.program_mut(program).ok_or_else(missing)?;
    prog.try_into().map_err(|source| BpfError::Program {
        object: object.name,
        program,
        source: Box::new(source),
    })
}
