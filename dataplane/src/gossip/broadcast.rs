//! State deltas riding on SWIM messages.
//!
//! foca hands every custom broadcast item it receives to [`DeltaHandler::receive_item`], which
//! merges it into the shared state and tells foca whether to keep spreading it: only a delta that
//! changed something is re-broadcast, so dissemination stops by itself. Local writes go the same
//! way (`Foca::add_broadcast`), so there is exactly one path into the state.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use foca::{BroadcastHandler, Invalidates};

use super::member::MemberId;
use super::stats::Stats;
use crate::state::DeltaKey;
use crate::state::{Applied, ClusterState, Delta, LamportClock, Version};

/// The state foca's handler and the gossip agent share.
#[derive(Debug, Default)]
pub struct Shared {
    pub state: ClusterState,
    pub clock: LamportClock,
    /// Set whenever the state changed; the agent clears it when it publishes a snapshot.
    pub dirty: bool,
}

pub type SharedState = Arc<Mutex<Shared>>;

/// Locks the shared state; a panic elsewhere while it was held does not make it unusable.
pub fn lock(shared: &SharedState) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Merges one delta into the shared state, counting the outcome. Returns whether it was new.
pub fn merge(shared: &mut Shared, delta: Delta, stats: &Stats) -> bool {
    shared.clock.observe(&delta.version);
    match shared.state.apply(delta, Instant::now()) {
        Ok(Applied::Newer) => {
            shared.dirty = true;
            Stats::bump(&stats.deltas_applied);
            true
        }
        Ok(Applied::Duplicate | Applied::Stale) => false,
        Err(error) => {
            tracing::debug!(%error, "state delta refused");
            Stats::bump(&stats.deltas_rejected);
            false
        }
    }
}

pub fn encode(delta: &Delta) -> Vec<u8> {
    postcard::to_allocvec(delta).expect("postcard encodes every Delta")
}

pub struct DeltaHandler {
    pub shared: SharedState,
    pub stats: Arc<Stats>,
}

/// foca's handle on a broadcast: a newer version of the same entry replaces an older one that
/// has not finished spreading.
#[derive(Debug, Clone)]
pub struct BroadcastKey {
    key: DeltaKey,
    version: Version,
}

impl Invalidates for BroadcastKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.key == other.key && self.version >= other.version
    }
}

#[derive(Debug, thiserror::Error)]
#[error("undecodable state delta: {0}")]
pub struct DecodeError(postcard::Error);

impl BroadcastHandler<MemberId> for DeltaHandler {
    type Key = BroadcastKey;
    type Error = DecodeError;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&MemberId>,
    ) -> Result<Option<BroadcastKey>, DecodeError> {
        let delta: Delta = postcard::from_bytes(data).map_err(|e| {
            Stats::bump(&self.stats.dropped_malformed);
            DecodeError(e)
        })?;
        let key = BroadcastKey { key: delta.key(), version: delta.version };
        let mut shared = lock(&self.shared);
        Ok(merge(&mut shared, delta, &self.stats).then_some(key))
    }
}
