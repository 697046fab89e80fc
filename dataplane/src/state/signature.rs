//! The signature a record carries: 64 bytes of Ed25519, opaque to the state layer (which only
//! stores and carries it); `trust` makes and checks it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Ed25519 signature (64 bytes). The state layer only stores and carries it; `trust`
/// verifies it against the writer's certified key before a delta is merged.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// The signature of an entry that was never signed (unit tests of the merge rules).
    pub const NONE: Signature = Signature([0; 64]);
}

impl Default for Signature {
    fn default() -> Signature {
        Signature::NONE
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}..)", crate::util::hex::encode(&self.0[..6]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::util::hex::Bytes(self.0.to_vec()).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Signature, D::Error> {
        let bytes = crate::util::hex::Bytes::deserialize(deserializer)?;
        let array: [u8; 64] =
            bytes.0.try_into().map_err(|_| serde::de::Error::custom("a signature is 64 bytes"))?;
        Ok(Signature(array))
    }
}
