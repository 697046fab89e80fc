//! Attachments whose veth the runtime moves into the container itself (Docker's network driver
//! protocol: the driver makes the pair and names the peer, Docker moves it, renames it `ethN`
//! and sets its address and routes). meshd wires the node side exactly as for `attach`, and the
//! container asks meshd's DNS at the node's DNS address (its 127.0.0.11 is Docker's).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::attachments::random_id;
use super::{netns, Agent, AgentError};
use crate::network::attachment::DnsPlacement;
use crate::network::LocalAttachment;
use crate::service::plan;
use crate::state::{EndpointRecord, Health};

/// What a runtime asks for.
#[derive(Debug, Clone)]
pub struct Handover {
    /// The attachment's owner key (one attachment per owner).
    pub owner: String,
    pub network: String,
    /// The address, reserved before on `network` ([`Agent::reserve`]).
    pub address: Ipv4Addr,
    /// The namespace the runtime will move the peer into.
    pub netns: PathBuf,
    pub service: Option<String>,
    pub task: Option<String>,
    /// A MAC the container must have (the runtime keeps the peer's).
    pub mac: Option<[u8; 6]>,
    /// The task's health from the start (the Docker driver: `starting` until it has read the
    /// container's health check, or its absence, from Docker).
    pub health: Health,
}

impl Agent {
    /// Makes the pair, wires the node side and publishes the endpoint. The same owner again
    /// gets its attachment back (a runtime retrying a call).
    pub async fn attach_handover(&self, request: Handover) -> Result<LocalAttachment, AgentError> {
        super::owner_key::validate(&request.owner)?;
        let inner = self.inner.lock().await;
        if let Some(existing) = inner.attachments.iter().find(|a| a.owner.as_ref() == Some(&request.owner)) {
            return Ok(existing.clone());
        }
        let reserved =
            inner.reservations.values().any(|r| r.network == request.network && r.address == request.address);
        if !reserved {
            return Err(AgentError::BadRequest(format!(
                "{} is not an address reserved on network {:?}",
                request.address, request.network
            )));
        }
        if inner.attachments.iter().any(|a| a.address == request.address) {
            return Err(AgentError::BadRequest(format!("{} is attached already", request.address)));
        }
        let snapshot = self.gossip.snapshot();
        let Some(record) = snapshot.state.networks.get(&request.network) else {
            return Err(crate::network::NetworkError::NotFound(request.network.clone()).into());
        };
        let mtu = record.container_mtu(self.mtu);
        if let Some(service) = &request.service {
            plan::check_task(&snapshot.state, service, &request.network)?;
        }
        let id = random_id();
        let host_ifname = format!("md{}", &id[..8]);
        let peer_ifname = format!("p{host_ifname}");
        let pair =
            self.links.create_handover(&host_ifname, &peer_ifname, mtu, request.address, request.mac).await?;
        let attachment = LocalAttachment {
            id,
            netns: request.netns.clone(),
            network: request.network.clone(),
            address: request.address,
            host_ifname,
            host_ifindex: pair.host_ifindex,
            host_mac: pair.host_mac,
            container_ifname: pair.peer_ifname,
            container_mac: pair.peer_mac,
            resolv_conf: false,
            owner: Some(request.owner.clone()),
            netns_id: netns::identify(&request.netns),
            default_route: false,
            dns: DnsPlacement::Node,
            netns_cookie: None,
        };
        let endpoint = EndpointRecord {
            network: request.network.clone(),
            address: request.address,
            service: request.service,
            task: request.task,
            terminating: false,
            aliases: Vec::new(),
            health: request.health,
        };
        self.commit(inner, attachment.clone(), endpoint).await?;
        tracing::info!(address = %request.address, network = request.network, owner = request.owner, "attached (handed over)");
        Ok(attachment)
    }
}
