//! State deltas riding on SWIM messages.
//!
//! foca hands every custom broadcast item it receives to [`DeltaHandler::receive_item`], which
//! merges it into the shared state and tells foca whether to keep spreading it: only a delta that
//! changed something is re-broadcast, so dissemination stops by itself. Local writes go the same
//! way (`Foca::add_broadcast`), so there is exactly one path into the state.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use foca::{BroadcastHandler, Invalidates};

use super::admission::{Admission, Verdict};
use super::member::MemberId;
use super::parked::Parked;
use super::stats::Stats;
use crate::state::version::unix_millis;
use crate::state::{Applied, ClusterState, LamportClock, SignedDelta, Version};
use crate::state::{Change, DeltaKey};

/// The state foca's handler and the gossip agent share.
#[derive(Debug)]
pub struct Shared {
    pub state: ClusterState,
    pub clock: LamportClock,
    /// The gate every delta passes before it is merged.
    pub admission: Admission,
    /// Set whenever the state changed; the agent clears it when it publishes a snapshot.
    pub dirty: bool,
    /// Endpoint claims waiting for the grant that proves them.
    pub parked: Parked,
    /// Held claims whose network's grants changed: the agent admits them again, through foca
    /// (so that what is admitted is gossiped on), with when each was first held.
    pub retry: Vec<(Instant, SignedDelta)>,
}

impl Shared {
    pub fn new(admission: Admission) -> Shared {
        Shared {
            state: ClusterState::default(),
            clock: LamportClock::default(),
            admission,
            dirty: false,
            parked: Parked::default(),
            retry: Vec::new(),
        }
    }
}

pub type SharedState = Arc<Mutex<Shared>>;

/// Locks the shared state; a panic elsewhere while it was held does not make it unusable.
pub fn lock(shared: &SharedState) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Merges one delta into the shared state if admission lets it through, counting the outcome.
/// Returns whether it was new. The clock observes only admitted versions: a delta from the far
/// future is refused before it can drag every later write of this node along.
pub fn merge(shared: &mut Shared, signed: SignedDelta, stats: &Stats) -> bool {
    match shared.admission.admit(&shared.state, &signed, unix_millis()) {
        Ok(Verdict::Admit) => {}
        Ok(Verdict::NotNewer) => return false,
        Ok(Verdict::Hold) => {
            hold(shared, signed, Instant::now(), stats);
            return false;
        }
        Err((reason, detail)) => {
            tracing::debug!(?reason, detail, "state delta refused");
            stats.count_rejection(reason);
            return false;
        }
    }
    shared.clock.observe(&signed.delta.version);
    let grants_of = match &signed.delta.change {
        Change::Block { network, .. } | Change::Network { name: network, .. } => Some(network.clone()),
        _ => None,
    };
    match shared.state.apply_signed(signed, Instant::now()) {
        Ok(Applied::Newer) => {
            if let Some(network) = grants_of {
                // The grants of a network changed: what waited for them may be proven now.
                let released = shared.parked.release(&network);
                shared.retry.extend(released);
            }
            shared.dirty = true;
            Stats::bump(&stats.deltas_applied);
            true
        }
        Ok(Applied::Duplicate | Applied::Stale) => false,
        Err(error) => {
            tracing::debug!(%error, "state delta refused");
            Stats::bump(&stats.deltas_rejected_owner);
            false
        }
    }
}

/// Holds a claim that a grant not heard of yet may prove (first held at `since`), counted; one
/// there is no room for is dropped, and counted as such.
pub fn hold(shared: &mut Shared, signed: SignedDelta, since: Instant, stats: &Stats) {
    if shared.parked.hold(signed, since) {
        Stats::bump(&stats.deltas_held);
    } else {
        Stats::bump(&stats.deltas_held_expired);
    }
}

pub fn encode(signed: &SignedDelta) -> Vec<u8> {
    postcard::to_allocvec(signed).expect("postcard encodes every SignedDelta")
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
        let signed: SignedDelta = postcard::from_bytes(data).map_err(|e| {
            Stats::bump(&self.stats.dropped_malformed);
            DecodeError(e)
        })?;
        let key = BroadcastKey { key: signed.delta.key(), version: signed.delta.version };
        let mut shared = lock(&self.shared);
        Ok(merge(&mut shared, signed, &self.stats).then_some(key))
    }
}
