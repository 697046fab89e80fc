//! The datapath writes the agent makes once the node is set up (setup itself uses the
//! concrete `Datapath`): programs on veths, the forwarding maps, and what the metrics read.

use std::collections::BTreeMap;
use std::path::Path;

use meshd_ebpf::verdict::{VerdictCounter, VerdictKey};

use crate::bpf::forwarding::{Forwarding, Touched};
use crate::bpf::{BpfError, Datapath, LbView};

pub trait Maps: Send {
    /// Attaches the veth programs to the node side of a pair.
    fn attach_veth(&mut self, host_ifname: &str) -> Result<(), BpfError>;
    /// Forgets the program links of `ifname` (its pins).
    fn forget_links(&mut self, ifname: &str) -> Result<(), BpfError>;
    /// Writes the entries `touched` names from `desired`; (written, deleted).
    fn sync_forwarding_touched(
        &mut self,
        desired: &Forwarding,
        touched: &Touched,
    ) -> Result<(usize, usize), BpfError>;
    fn verdicts(&self) -> Result<BTreeMap<VerdictKey, VerdictCounter>, BpfError>;
    fn lb_view(&self, vip: u32) -> Result<LbView, BpfError>;
    /// Where the maps are pinned (the metrics walk them there).
    fn pin_dir(&self) -> &Path;
    /// Detaches the routing mesh (underlay and socket programs).
    fn detach_mesh(&mut self, underlay_ifname: &str) -> Result<(), BpfError>;
}

impl Maps for Datapath {
    fn attach_veth(&mut self, host_ifname: &str) -> Result<(), BpfError> {
        Datapath::attach_veth(self, host_ifname)
    }
    fn forget_links(&mut self, ifname: &str) -> Result<(), BpfError> {
        Datapath::forget_links(self, ifname)
    }
    fn sync_forwarding_touched(
        &mut self,
        desired: &Forwarding,
        touched: &Touched,
    ) -> Result<(usize, usize), BpfError> {
        Datapath::sync_forwarding_touched(self, desired, touched)
    }
    fn verdicts(&self) -> Result<BTreeMap<VerdictKey, VerdictCounter>, BpfError> {
        Datapath::verdicts(self)
    }
    fn lb_view(&self, vip: u32) -> Result<LbView, BpfError> {
        Datapath::lb_view(self, vip)
    }
    fn pin_dir(&self) -> &Path {
        Datapath::pin_dir(self)
    }
    fn detach_mesh(&mut self, underlay_ifname: &str) -> Result<(), BpfError> {
        Datapath::detach_mesh(self, underlay_ifname)
    }
}
