//! Endpoint claims held back until the grant that proves them arrives.
//!
//! A node attaches from a block as soon as the managers grant it, and gossips the endpoint;
//! the grant reaches the others through the managers' leader, in no particular order with it.
//! A claim that only an unheard-of grant (or network) could prove is therefore neither merged
//! nor refused: it waits here, and is admitted again when a grant or network of its network is
//! merged. Bounded in all, per writer and in time, so a lying node cannot fill it for others.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::identity::NodeId;
use crate::state::{Change, SignedDelta};

/// Claims held at once, in all.
pub const MAX_HELD: usize = 4096;
/// Claims held at once for one writer.
pub const MAX_HELD_PER_WRITER: usize = 256;
/// How long a claim waits for its grant. Grants travel as fast as the claims that use them;
/// push-pull (every 30 s) repairs anything dropped here.
pub const HOLD_FOR: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Parked {
    /// Oldest first: (when it was first held, the claim).
    held: VecDeque<(Instant, SignedDelta)>,
}

impl Parked {
    /// Holds `signed` (first held at `since`); a copy of the same claim replaces the older one.
    /// False if there is no room for it (it is dropped).
    pub fn hold(&mut self, signed: SignedDelta, since: Instant) -> bool {
        let (key, version, writer) = (signed.delta.key(), signed.delta.version, signed.delta.version.node);
        if let Some(at) = self.held.iter().position(|(_, held)| held.delta.key() == key) {
            if self.held[at].1.delta.version >= version {
                return true;
            }
            self.held.remove(at);
        }
        if self.held.len() >= MAX_HELD || self.count_of(&writer) >= MAX_HELD_PER_WRITER {
            return false;
        }
        self.held.push_back((since, signed));
        true
    }

    /// Takes out the claims on `network`, to be admitted again: (when each was first held, it).
    pub fn release(&mut self, network: &str) -> Vec<(Instant, SignedDelta)> {
        let (out, keep): (Vec<_>, Vec<_>) =
            self.held.drain(..).partition(|(_, held)| network_of(held) == Some(network));
        self.held = keep.into();
        out
    }

    /// Drops the claims held longer than [`HOLD_FOR`]; how many went.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.held.len();
        self.held.retain(|(since, _)| now.saturating_duration_since(*since) < HOLD_FOR);
        before - self.held.len()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    fn count_of(&self, writer: &NodeId) -> usize {
        self.held.iter().filter(|(_, held)| held.delta.version.node == *writer).count()
    }
}

/// The network a held claim is on.
fn network_of(signed: &SignedDelta) -> Option<&str> {
    match &signed.delta.change {
        Change::Endpoint { record: Some(record), .. } => Some(&record.network),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::state::{Delta, EndpointRecord, Signature, Version};

    fn claim(writer: u8, id: &str, network: &str, lamport: u64) -> SignedDelta {
        let record = EndpointRecord {
            network: network.into(),
            address: Ipv4Addr::new(10, 1, 0, 2),
            service: None,
            task: None,
            terminating: false,
            aliases: Vec::new(),
            health: Default::default(),
        };
        let owner = NodeId::from_bytes([writer; 16]);
        SignedDelta {
            delta: Delta {
                version: Version { lamport, node: owner },
                change: Change::Endpoint { owner, id: id.into(), record: Some(record) },
            },
            signature: Signature::NONE,
        }
    }

    #[test]
    fn claims_wait_for_their_network_once_and_not_forever() {
        let (mut parked, now) = (Parked::default(), Instant::now());
        assert!(parked.hold(claim(1, "a", "front", 1), now));
        assert!(parked.hold(claim(1, "a", "front", 1), now), "a copy");
        assert!(parked.hold(claim(1, "b", "back", 1), now));
        assert_eq!(parked.len(), 2);
        let released = parked.release("front");
        assert_eq!(released.len(), 1);
        assert_eq!(parked.len(), 1, "the claim on another network still waits");
        assert_eq!(parked.expire(now + HOLD_FOR), 1);
        assert!(parked.is_empty());
    }

    #[test]
    fn one_writer_cannot_take_all_the_room() {
        let (mut parked, now) = (Parked::default(), Instant::now());
        for n in 0..MAX_HELD_PER_WRITER {
            assert!(parked.hold(claim(1, &format!("e{n}"), "front", 1), now));
        }
        assert!(!parked.hold(claim(1, "more", "front", 1), now), "its share is full");
        assert!(parked.hold(claim(2, "other", "front", 1), now), "another writer still has room");
    }
}
