//! The address a new endpoint or VIP gets: from a block this node holds, or from a block it
//! claims first and lets settle (see `network::ipam` for why that keeps addresses unique).

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::{Agent, AgentError};
use crate::network::ipam::{self, Plan};
use crate::state::{BlockClaim, Change};

/// How long a fresh block claim must stand before its addresses are used: longer than gossip
/// takes to reach every node (docs/benchmarks.md), so a concurrent claim is seen and settled.
const CLAIM_SETTLE: Duration = Duration::from_millis(1500);

impl Agent {
    /// Finds a free address, claiming (and settling) a new block when this node has none free.
    /// `pending` are addresses this node handed out that the state may not show yet.
    pub(super) async fn allocate(
        &self,
        network: &str,
        subnet: &ipnet::Ipv4Net,
        pending: &HashSet<Ipv4Addr>,
    ) -> Result<Ipv4Addr, AgentError> {
        for _ in 0..5 {
            let snapshot = self.gossip.snapshot();
            match ipam::plan(&snapshot.state, self.node_id, network, subnet, pending, rand::random()) {
                Plan::Use(address) => return Ok(address),
                Plan::Exhausted => return Err(AgentError::Exhausted(network.to_string())),
                Plan::Claim(index) => {
                    let claim = Change::Block {
                        network: network.to_string(),
                        index,
                        claim: Some(BlockClaim { owner: self.node_id }),
                    };
                    self.gossip.write(vec![claim]).await.map_err(AgentError::Gossip)?;
                    tokio::time::sleep(CLAIM_SETTLE).await;
                    // If another node's claim won, the next plan simply picks another block.
                }
            }
        }
        Err(AgentError::Exhausted(network.to_string()))
    }
}
