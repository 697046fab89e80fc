//! Keeping the kernel equal to the cluster state: after every new snapshot (and every 5 s, to
//! repair anything changed behind meshd's back, and to release attachments whose namespace is
//! gone), the reconciler's answer is written into the maps, and meshd's nftables table, reserved ports and overlay routes follow the networks and
//! published ports. Each is written only when it differs from what was written last.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use super::ports::Host;
use super::{netns, Agent, AgentError};
use crate::bpf::cgroup;
use crate::host::nftables;
use crate::network::LocalAttachment;
use crate::service::ports::port_owners;

/// Reads the namespace cookie of every attachment that has none yet and whose namespace can be
/// entered now (Docker's appears at its Join, after the attachment): from then on its sockets
/// are balanced at connect(). One that cannot be read is marked (`Some(0)`) and not tried again
/// until the next start; its connections are balanced by the veth program as before.
fn read_netns_cookies(attachments: &mut [LocalAttachment]) {
    for attachment in attachments.iter_mut().filter(|a| a.netns_cookie.is_none()) {
        // Not there yet, or the path names another namespace now (a recycled /proc/PID/ns/net:
        // the reaper releases the attachment; its cookie would be a stranger's).
        if netns::identify(&attachment.netns).is_none()
            || netns::is_gone(&attachment.netns, attachment.netns_id)
        {
            continue;
        }
        attachment.netns_cookie = Some(match cgroup::netns_cookie_of(&attachment.netns) {
            Ok(cookie) => cookie,
            Err(error) => {
                tracing::warn!(%error, netns = %attachment.netns.display(), "cannot read the namespace's cookie; its connections to VIPs are balanced per packet");
                0
            }
        });
    }
}

/// How often the kernel is compared with the state even when nothing changed.
const RECONCILE_EVERY: Duration = Duration::from_secs(5);

impl Agent {
    pub(super) async fn reconcile_loop(self: Arc<Self>) {
        let mut snapshots = self.gossip.subscribe();
        let mut tick = tokio::time::interval(RECONCILE_EVERY);
        loop {
            let changed_at = tokio::select! {
                changed = snapshots.changed() => {
                    if changed.is_err() { return }
                    self.timing.state_changed();
                    Some(std::time::Instant::now())
                }
                _ = tick.tick() => None,
            };
            let start = std::time::Instant::now();
            let result = self.reconcile().await;
            self.timing.reconciled(start.elapsed(), changed_at, result.is_ok());
            if let Err(error) = result {
                tracing::warn!(%error, "overlay reconcile failed; retrying");
            }
            if changed_at.is_none() {
                if let Err(error) = self.reap().await {
                    tracing::warn!(%error, "cannot release vanished attachments; retrying");
                }
            }
        }
    }

    /// Brings the maps (and masquerade rules, reserved ports, routes and DNS names) in line with
    /// the latest snapshot.
    pub async fn reconcile(&self) -> Result<(), AgentError> {
        let snapshot = self.gossip.snapshot();
        self.discovery.update(&snapshot);
        let node_addrs = node_ipv4_addresses(self.host.as_ref()).await;
        let mut guard = self.inner.lock().await;
        let inner = &mut *guard;
        if let Some(addrs) = node_addrs {
            inner.node_addrs = addrs;
        }
        if self.socket_lb {
            read_netns_cookies(&mut inner.attachments);
        }
        let round = inner.reconciler.update(&snapshot, &inner.attachments, &inner.node_addrs);
        let (written, deleted) =
            inner.maps.sync_forwarding_touched(inner.reconciler.desired(), &round.touched)?;
        if written + deleted > 0 {
            tracing::debug!(written, deleted, "forwarding maps updated");
        }
        let mut subnets: Vec<ipnet::Ipv4Net> =
            snapshot.state.networks.live().map(|(_, n)| n.subnet).collect();
        subnets.sort();
        let node_dns = self.node_dns.get().map(|dns| dns.address());
        let owners = port_owners(&snapshot.state);
        let mut nodes: Vec<Ipv4Addr> = snapshot
            .state
            .nodes
            .live()
            .filter_map(|(_, node)| match node.gossip_addr.ip() {
                IpAddr::V4(addr) => Some(addr),
                IpAddr::V6(_) => None,
            })
            .collect();
        nodes.sort();
        nodes.dedup();
        let table = nftables::Table {
            subnets: subnets.clone(),
            node_dns,
            nodes,
            published: owners.keys().copied().collect(),
            data_path_port: self.cluster_settings().data_path_port,
        };
        if inner.masqueraded.as_ref() != Some(&table) {
            self.host.apply_nftables(&table).map_err(|e| AgentError::Kernel(e.to_string()))?;
            inner.masqueraded = Some(table);
        }
        let mut published: Vec<u16> = owners.keys().map(|(port, _)| *port).collect();
        published.dedup();
        if inner.reserved.as_ref() != Some(&published) {
            self.host
                .reserve_ports(&inner.reserved_base, &published)
                .map_err(|e| AgentError::Kernel(format!("cannot reserve the published ports: {e}")))?;
            inner.reserved = Some(published);
        }
        if subnets != inner.routed {
            self.host.sync_routes(self.vxlan_ifindex, self.advertise, &subnets, &inner.routed).await?;
            inner.routed = subnets;
        }
        Ok(())
    }

    /// Detaches the routing mesh (the underlay program and the socket programs): after `leave`,
    /// the node no longer answers published ports.
    pub async fn withdraw_published_ports(&self) -> Result<(), AgentError> {
        let mut inner = self.inner.lock().await;
        inner.maps.detach_mesh(&self.underlay_ifname)?;
        Ok(())
    }
}

/// The node's IPv4 addresses (published ports answer on each). None when they cannot be read
/// (logged): the caller keeps the last list, and the next reconcile tries again.
async fn node_ipv4_addresses(host: &dyn Host) -> Option<Vec<Ipv4Addr>> {
    match host.node_addresses().await {
        Ok(addrs) => Some(
            addrs
                .into_iter()
                .filter_map(|a| match a {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                })
                .collect(),
        ),
        Err(error) => {
            tracing::warn!(%error, "cannot list the node's addresses");
            None
        }
    }
}
