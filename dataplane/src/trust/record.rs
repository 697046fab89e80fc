//! Signing and checking the records a node writes: every delta carries its writer's Ed25519
//! signature over the delta's encoding (domain-separated), so a receiver can tell who wrote it
//! whichever node relayed it.

use super::keys::{NodeKey, PublicKey};
use crate::state::{Delta, Signature, SignedDelta};

/// What a record signature signs, before the delta's postcard encoding.
pub const RECORD_DOMAIN: &[u8] = b"meshd-record-v1";

/// `delta` signed by `key` (which must be the key of `delta.version.node`).
pub fn sign(key: &NodeKey, delta: Delta) -> SignedDelta {
    let signature = Signature(key.sign(RECORD_DOMAIN, &encode(&delta)));
    SignedDelta { delta, signature }
}

/// Whether `signed` carries `key`'s signature over its delta.
pub fn verify(key: &PublicKey, signed: &SignedDelta) -> bool {
    key.verify(RECORD_DOMAIN, &encode(&signed.delta), &signed.signature.0)
}

fn encode(delta: &Delta) -> Vec<u8> {
    postcard::to_allocvec(delta).expect("postcard encodes every Delta")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Availability, Change, Version};

    #[test]
    fn a_signature_covers_every_field_of_the_delta() {
        let key = NodeKey::generate().unwrap();
        let me = key.node_id();
        let delta = Delta {
            version: Version { lamport: 7, node: me },
            change: Change::Availability { id: me, value: Some(Availability::Drain) },
        };
        let signed = sign(&key, delta.clone());
        assert!(verify(&key.public(), &signed));
        let mut later = signed.clone();
        later.delta.version.lamport = 8;
        assert!(!verify(&key.public(), &later), "another version");
        let mut active = signed.clone();
        active.delta.change = Change::Availability { id: me, value: Some(Availability::Active) };
        assert!(!verify(&key.public(), &active), "another value");
        assert!(!verify(&NodeKey::generate().unwrap().public(), &signed), "another key");
    }
}
