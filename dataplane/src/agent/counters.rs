//! The datapath's verdict counters, summed over CPUs, with interfaces by name where the agent
//! knows them (its veths, the VXLAN device and the underlay interface; others as `ifN`).

use std::collections::HashMap;

use meshd_ebpf::verdict::{Direction, Reason};

use super::{Agent, AgentError};
use crate::netlink::vxlan;

/// One counter: packets and bytes with one verdict, on one interface, in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictRow {
    pub interface: String,
    pub direction: Direction,
    pub reason: Reason,
    pub packets: u64,
    pub bytes: u64,
}

impl Agent {
    pub async fn counters(&self) -> Result<Vec<VerdictRow>, AgentError> {
        let inner = self.inner.lock().await;
        let counters = inner.maps.verdicts()?;
        let mut names: HashMap<u32, String> =
            inner.attachments.iter().map(|a| (a.host_ifindex, a.host_ifname.clone())).collect();
        names.insert(self.vxlan_ifindex, vxlan::DEVICE.to_string());
        // The underlay interface: published ports, VXLAN checks and the overlay fast path.
        if let Ok(index) = nix::net::if_::if_nametoindex(self.underlay_ifname.as_str()) {
            names.insert(index, self.underlay_ifname.clone());
        }
        let mut rows: Vec<VerdictRow> = counters
            .iter()
            .map(|(key, value)| VerdictRow {
                interface: names.get(&key.ifindex).cloned().unwrap_or_else(|| format!("if{}", key.ifindex)),
                direction: Direction::from_code(key.dir),
                reason: Reason::from_code(key.reason),
                packets: value.packets,
                bytes: value.bytes,
            })
            .collect();
        // The one drop that nftables decides (it needs conntrack): containers to the node.
        match self.host.to_node_dropped() {
            Ok((packets, bytes)) if packets > 0 => rows.push(VerdictRow {
                interface: "nftables".to_string(),
                direction: Direction::FromContainer,
                reason: Reason::DropToNode,
                packets,
                bytes,
            }),
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "cannot read the nftables counter"),
        }
        Ok(rows)
    }
}

impl Agent {
    /// The embedded DNS's counters, as (name, value).
    pub fn dns_counters(&self) -> Vec<(&'static str, u64)> {
        self.discovery.counters()
    }
}
