//! Where the programs run: TCX links on the container veths, the VXLAN device and the underlay
//! interface, and cgroup links on the cgroup v2 root or `--cgroup-root`. Every link is pinned under
//! `<pin dir>/links/`, so it outlives the agent; removing the pin releases it.

use std::path::{Path, PathBuf};

use aya::programs::links::{FdLink, LinkOrder, PinnedLink};
use aya::programs::tc::{SchedClassifierLink, TcAttachOptions};
use aya::programs::{
    CgroupAttachMode, CgroupSock, CgroupSockAddr, ProgramError, SchedClassifier, TcAttachType,
};
use aya::Ebpf;
use meshd_ebpf::{sock, underlay, veth, vxlan, Object, SOCK, UNDERLAY, VETH, VXLAN};

use super::datapath::program_of;
use super::{BpfError, Datapath};

impl Datapath {
    /// Attaches the container-veth programs to the host side of a container's veth pair: tc
    /// ingress sees what the container sends, tc egress what it receives through the stack.
    ///
    /// The TCX links are pinned under the node's pin directory, so they outlive this process: an
    /// agent restart finds them and swaps in its freshly loaded programs atomically
    /// (`bpf_link_update`); traffic never runs without a program. [`forget_links`](Self::forget_links)
    /// releases them.
    pub fn attach_veth(&mut self, host_ifname: &str) -> Result<(), BpfError> {
        for (program, side, suffix) in [
            (veth::FROM_CONTAINER, TcAttachType::Ingress, "ingress"),
            (veth::TO_CONTAINER, TcAttachType::Egress, "egress"),
        ] {
            let pin = self.link_pin(host_ifname, suffix);
            attach_pinned(&mut self.veth, &VETH, program, host_ifname, side, &pin)?;
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
        for program in sock::ALL.iter().copied().chain([sock::RELEASE]) {
            let pin = self.link_pin("cgroup", program);
            // bpffs refuses names with a dot.
            let fresh = self.link_pin("cgroup", &format!("{program}-new"));
            // Through bpf_link_create, which takes no attach flags (EINVAL otherwise): cgroup links
            // always stack with the other links on the cgroup (each node's agent has its own).
            let fd_link = if program == sock::RELEASE {
                let prog: &mut CgroupSock = program_of(&mut self.sock, &SOCK, program)?;
                let id = prog.attach(&file, CgroupAttachMode::Single).map_err(attach_err(program))?;
                let link = prog.take_link(id).map_err(attach_err(program))?;
                FdLink::try_from(link)
            } else {
                let prog: &mut CgroupSockAddr = program_of(&mut self.sock, &SOCK, program)?;
                let id = prog.attach(&file, CgroupAttachMode::Single).map_err(attach_err(program))?;
                let link = prog.take_link(id).map_err(attach_err(program))?;
                FdLink::try_from(link)
            }
            .map_err(|source| BpfError::Link {
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
        for program in sock::ALL.iter().copied().chain([sock::RELEASE]) {
            remove_pin(&self.link_pin("cgroup", program))?;
        }
        Ok(())
    }

    fn link_pin(&self, ifname: &str, suffix: &str) -> PathBuf {
        self.pin_dir.join("links").join(format!("{ifname}-{suffix}"))
    }
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

fn remove_pin(pin: &Path) -> Result<(), BpfError> {
    match std::fs::remove_file(pin) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(BpfError::PinDir { path: pin.to_path_buf(), source }),
    }
}
