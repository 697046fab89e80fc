//! Node identity: a random 128-bit ID, created once and kept in the state directory.
//!
//! The ID, not the name or the address, is what the cluster knows a node by: a node that restarts
//! with another address is still itself, and two nodes with one hostname are still two.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Number of hex digits shown where people read IDs (tables); JSON carries the full ID.
pub const SHORT_LEN: usize = 12;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; 16]);

impl NodeId {
    /// A fresh random ID from the OS's CSPRNG.
    pub fn random() -> Result<NodeId, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(NodeId(bytes))
    }

    pub fn from_bytes(bytes: [u8; 16]) -> NodeId {
        NodeId(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The first [`SHORT_LEN`] hex digits, as `docker node ls` style tables show.
    pub fn short(&self) -> String {
        let mut full = self.to_string();
        full.truncate(SHORT_LEN);
        full
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::util::hex::encode(&self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid node ID {0:?}: expected 32 hex digits")]
pub struct ParseNodeIdError(String);

impl FromStr for NodeId {
    type Err = ParseNodeIdError;

    fn from_str(s: &str) -> Result<NodeId, ParseNodeIdError> {
        crate::util::hex::decode_array::<16>(s.trim())
            .map(NodeId)
            .ok_or_else(|| ParseNodeIdError(s.chars().take(64).collect()))
    }
}

/// Hex in JSON (state files, the API); 16 raw bytes in binary formats (gossip).
impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<NodeId, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            <[u8; 16]>::deserialize(deserializer).map(NodeId)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_parse_round_trip() {
        let id = NodeId::random().unwrap();
        assert_eq!(id.to_string().len(), 32);
        assert_eq!(id.to_string().parse::<NodeId>().unwrap(), id);
        assert_eq!(id.short().len(), SHORT_LEN);
        assert!(id.to_string().starts_with(&id.short()));
    }

    #[test]
    fn rejects_bad_ids() {
        assert!("".parse::<NodeId>().is_err());
        assert!("zz".repeat(16).parse::<NodeId>().is_err());
        assert!("ab".repeat(15).parse::<NodeId>().is_err());
        assert!("ab".repeat(17).parse::<NodeId>().is_err());
    }

    #[test]
    fn json_is_the_hex_string() {
        let id = NodeId::from_bytes([0xab; 16]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(16)));
        assert_eq!(serde_json::from_str::<NodeId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<NodeId>("\"nope\"").is_err());
    }
}
