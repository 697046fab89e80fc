//! Loading meshd's eBPF objects into the kernel and attaching their programs.
//!
//! Maps marked `LIBBPF_PIN_BY_NAME` in C are pinned under the node's pin directory; when a pin
//! already exists aya reuses it instead of creating a new map, which is how counters and (later)
//! forwarding state survive an agent restart.

use std::path::{Path, PathBuf};

use aya::programs::{SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};
use meshd_ebpf::{verdict, veth, Object, VETH};

use super::BpfError;

/// The loaded objects of one node.
#[derive(Debug)]
pub struct Datapath {
    veth: Ebpf,
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
        Ok(Datapath { veth, pin_dir: pin_dir.to_path_buf() })
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
