//! What crosses TCP 7946: length-prefixed sealed frames carrying one [`TcpMessage`] each.
//!
//! ```text
//! | length (u32, BE) | sealed frame (see crypto) |
//! ```
//!
//! Payloads are postcard (compact, serde-driven, no schema compiler); the enum tag doubles as
//! the message type, and decoding never trusts a length it has not bounded first.

use std::io;
use std::time::Duration;

use foca::Member;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::member::MemberId;
use crate::identity::Secret;
use crate::state::Delta;

/// Largest frame accepted; a full state of many thousands of entries fits well below it.
pub const MAX_FRAME: usize = 32 * 1024 * 1024;

/// How long one frame may take to arrive or leave.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TcpMessage {
    /// Joiner -> member, sealed with the join key: "admit me".
    JoinRequest { member: MemberId, name: String },
    /// Member -> joiner, sealed with the join key: the cluster's identity (the joiner checks it
    /// against its token's fingerprint), every entry of the state and the members to announce to.
    JoinAccept { cluster_id: Secret, state: Vec<Delta>, members: Vec<MemberId> },
    /// Either way, sealed with the gossip key: full state and membership, for anti-entropy.
    PushPull { from: MemberId, state: Vec<Delta>, members: Vec<Member<MemberId>> },
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("timed out")]
    Timeout,
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("undecodable message: {0}")]
    Decode(postcard::Error),
}

pub fn encode(message: &TcpMessage) -> Vec<u8> {
    postcard::to_allocvec(message).expect("postcard encodes every TcpMessage")
}

pub fn decode(bytes: &[u8]) -> Result<TcpMessage, WireError> {
    postcard::from_bytes(bytes).map_err(WireError::Decode)
}

/// Reads one length-prefixed frame (still sealed).
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Vec<u8>, WireError> {
    tokio::time::timeout(FRAME_TIMEOUT, async {
        let mut len = [0u8; 4];
        match reader.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(WireError::TooLarge(len));
        }
        let mut frame = vec![0u8; len];
        reader.read_exact(&mut frame).await.map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                WireError::Closed
            } else {
                e.into()
            }
        })?;
        Ok(frame)
    })
    .await
    .map_err(|_| WireError::Timeout)?
}

/// Writes one sealed frame with its length prefix.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, frame: &[u8]) -> Result<(), WireError> {
    if frame.len() > MAX_FRAME {
        return Err(WireError::TooLarge(frame.len()));
    }
    tokio::time::timeout(FRAME_TIMEOUT, async {
        writer.write_all(&(frame.len() as u32).to_be_bytes()).await?;
        writer.write_all(frame).await?;
        writer.flush().await
    })
    .await
    .map_err(|_| WireError::Timeout)?
    .map_err(WireError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::NodeId;
    use crate::state::{Change, Version};

    fn member() -> MemberId {
        MemberId { node: NodeId::from_bytes([7; 16]), addr: "10.0.0.7:7946".parse().unwrap(), generation: 42 }
    }

    #[test]
    fn messages_round_trip() {
        let delta = Delta {
            version: Version { lamport: 9, node: NodeId::from_bytes([7; 16]) },
            change: Change::Availability { id: NodeId::from_bytes([7; 16]), value: None },
        };
        let messages = [
            TcpMessage::JoinRequest { member: member(), name: "n7".into() },
            TcpMessage::PushPull {
                from: member(),
                state: vec![delta],
                members: vec![Member::alive(member())],
            },
        ];
        for message in messages {
            assert_eq!(decode(&encode(&message)).unwrap(), message);
        }
    }

    #[test]
    fn garbage_never_panics() {
        // A cheap deterministic sweep; the proptest in tests/ goes further.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..512 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = decode(&bytes);
        }
    }

    #[tokio::test]
    async fn frames_are_bounded() {
        let mut too_big: &[u8] = &((MAX_FRAME as u32) + 1).to_be_bytes();
        assert!(matches!(read_frame(&mut too_big).await, Err(WireError::TooLarge(_))));
        let mut cut: &[u8] = &[0, 0, 0, 10, 1, 2];
        assert!(matches!(read_frame(&mut cut).await, Err(WireError::Closed)));
        let mut empty: &[u8] = &[];
        assert!(matches!(read_frame(&mut empty).await, Err(WireError::Closed)));
        let mut out = Vec::new();
        write_frame(&mut out, b"abc").await.unwrap();
        let mut back: &[u8] = &out;
        assert_eq!(read_frame(&mut back).await.unwrap(), b"abc");
    }
}
