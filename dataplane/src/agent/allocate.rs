//! The address a new endpoint or VIP gets: from a block this node holds, or from a block the
//! managers grant it first (see `network::ipam` for why that keeps addresses unique).

use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;

use super::{Agent, AgentError, Inner};
use crate::manager::ManagerError;
use crate::network::ipam::{self, Plan};

/// How many blocks one allocation may ask for (a grant can find its block's addresses taken
/// already by attaches that raced it; then it asks again).
const MAX_GRANTS: usize = 3;

impl Agent {
    /// Finds a free address, asking the managers for a new block when this node has none free.
    pub(super) async fn allocate(
        &self,
        inner: &mut Inner,
        network: &str,
        record: &crate::state::NetworkRecord,
    ) -> Result<Ipv4Addr, AgentError> {
        // Addresses attached here or reserved for an owner (the state may not show them yet).
        let pending: HashSet<Ipv4Addr> = inner.pending_addresses();
        for _ in 0..=MAX_GRANTS {
            let snapshot = self.gossip.snapshot();
            // Once gossip has any word of a block (the grant mirrored, or since removed with its
            // network), gossip is the authority on it.
            inner.granted.retain(|key| snapshot.state.blocks.entry(key).is_none());
            let granted: BTreeSet<u32> =
                inner.granted.iter().filter(|(net, _)| net == network).map(|(_, index)| *index).collect();
            match ipam::plan(&snapshot.state, self.node_id, network, record, &pending, &granted) {
                Plan::Use(address) => return Ok(address),
                Plan::NeedBlock => match self.managers.grant_block(network).await {
                    Ok(index) => {
                        tracing::info!(network, index, "address block granted");
                        inner.granted.insert((network.to_string(), index));
                    }
                    Err(ManagerError::Refused(reason)) if reason.contains("no free address block") => {
                        return Err(AgentError::Exhausted(network.to_string()))
                    }
                    Err(error) => return Err(error.into()),
                },
            }
        }
        Err(AgentError::Exhausted(network.to_string()))
    }
}
