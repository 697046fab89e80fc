//! What crosses TCP 7946: length-prefixed frames carrying one [`TcpMessage`] each.
//!
//! ```text
//! | length (u32, BE) | frame |
//! ```
//!
//! Between members the frames travel inside mutual TLS (`tcp`); a joiner, which has no
//! certificate yet, seals its one request with the key its join token gives (see crypto), and
//! the answer comes back sealed the same way.
//!
//! Payloads are postcard (compact, serde-driven, no schema compiler); the enum tag doubles as
//! the message type, and decoding never trusts a length it has not bounded first.

use std::io;
use std::time::Duration;

use foca::Member;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::member::MemberId;
use crate::identity::{ClusterSettings, RequestedSettings, Secret};
use crate::state::{Signature, SignedDelta};
use crate::trust::ca::IssuedCert;
use crate::trust::keys::PublicKey;
use crate::util::hex::Bytes;

/// Largest frame accepted from a member. The largest message a member legitimately sends is
/// the whole state (a push-pull, or a Raft snapshot on a managers' channel). Every entry of it
/// is signed (64 bytes) and bounded by `state::validate` (a node record by its 4 KiB
/// certificate and 64-byte name: about 4.5 KB signed; an endpoint by its 253-byte task name:
/// about 400 bytes at its longest), so this holds some 7,000 node records or 80,000 endpoints
/// at their longest, several times what the benchmarks run. A longer frame is refused before
/// anything is read, and counted (`tcp_frame_too_large`).
pub const MAX_FRAME: usize = 32 * 1024 * 1024;

/// What a frame's buffer starts at. It grows only with the bytes that actually arrive (at most
/// doubling), so a length prefix alone, however large, costs the receiver nothing: a member
/// has to send a frame's bytes to make a node hold them.
pub const FIRST_CHUNK: usize = 64 * 1024;

/// Largest frame a joiner may send before it is known: a join request is a few hundred bytes,
/// and nothing larger is read (or allocated) for anyone not yet authenticated.
pub const MAX_JOIN_FRAME: usize = 16 * 1024;

/// How long one frame may take to arrive or leave.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// One gossip key and the salt that names it in the `secrets` record: what a manager hands a
/// member over mutual TLS (`key_material`), never gossiped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaltedKey {
    pub salt: Secret,
    pub key: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TcpMessage {
    /// Joiner -> manager, sealed with the join key: "admit me, with this key". `proof` is the
    /// key's signature over the request (see `join::proof_message`): the joiner holds it.
    /// `settings`: the cluster-wide settings this node's flags ask for; a manager refuses a
    /// joiner whose flags differ from the cluster's (`identity::settings`).
    JoinRequest {
        member: MemberId,
        name: String,
        key: PublicKey,
        proof: Signature,
        settings: RequestedSettings,
    },
    /// Manager -> joiner, sealed with the join key: the CA's certificate (the joiner checks it
    /// against its token's fingerprint), the joiner's certificate, the CA key for a manager,
    /// every entry of the state and the members to announce to.
    JoinAccept {
        ca_cert: Bytes,
        cert: IssuedCert,
        ca_key: Option<Bytes>,
        state: Vec<SignedDelta>,
        members: Vec<MemberId>,
        /// The settings the cluster was created with (pools, data path port).
        settings: ClusterSettings,
    },
    /// Either way between members (TLS): full state and membership, for anti-entropy.
    PushPull { from: MemberId, state: Vec<SignedDelta>, members: Vec<Member<MemberId>> },
    /// Member -> manager (TLS): a new certificate for the key the TLS handshake proved.
    RenewRequest,
    /// Manager -> member (TLS).
    Renewed { cert: IssuedCert },
    /// Manager -> manager (TLS): a node promoted to manager asks for the CA key.
    CaKeyRequest,
    /// Manager -> manager (TLS).
    CaKey { key: Bytes },
    /// Member -> member (TLS): a request refused, and why (a joiner only sees the connection
    /// close, or this, sealed, when it was admitted but the managers could not decide it).
    Refused { reason: String },
    /// Member <-> member (TLS): one frame of a lasting channel (see `channel`).
    Channel { payload: Bytes },
    /// Member -> manager (TLS): the gossip keys these salts of the `secrets` record name (see
    /// `key_material`); never asked or answered in gossip.
    GossipKeysRequest { salts: Vec<Secret> },
    /// Manager -> member (TLS): the keys of the requested salts the current record names.
    GossipKeys { keys: Vec<SaltedKey> },
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("frame of {0} bytes exceeds the limit")]
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

/// Reads one length-prefixed frame of at most [`MAX_FRAME`] bytes.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Vec<u8>, WireError> {
    read_frame_limited(reader, MAX_FRAME, FRAME_TIMEOUT).await
}

/// Reads one length-prefixed frame of at most `limit` bytes within `deadline`; a longer one is
/// refused before anything is allocated for it.
pub async fn read_frame_limited<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
    deadline: Duration,
) -> Result<Vec<u8>, WireError> {
    tokio::time::timeout(deadline, async {
        let mut len = [0u8; 4];
        match reader.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > limit {
            return Err(WireError::TooLarge(len));
        }
        read_body(reader, len).await
    })
    .await
    .map_err(|_| WireError::Timeout)?
}

/// Reads a frame's `len` bytes into a buffer that grows as they arrive (see [`FIRST_CHUNK`]).
async fn read_body<R: AsyncRead + Unpin>(reader: &mut R, len: usize) -> Result<Vec<u8>, WireError> {
    let mut frame = Vec::with_capacity(len.min(FIRST_CHUNK));
    let read = (&mut *reader).take(len as u64).read_to_end(&mut frame).await?;
    if read < len {
        return Err(WireError::Closed);
    }
    Ok(frame)
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
    use crate::state::{Change, Delta, Version};

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
            TcpMessage::JoinRequest {
                member: member(),
                name: "n7".into(),
                key: PublicKey([3; 32]),
                proof: Signature([4; 64]),
                settings: RequestedSettings { data_path_port: Some(4790), ..Default::default() },
            },
            TcpMessage::PushPull {
                from: member(),
                state: vec![SignedDelta { delta, signature: Signature([5; 64]) }],
                members: vec![Member::alive(member())],
            },
            TcpMessage::Renewed { cert: IssuedCert { der: vec![1, 2], not_after: 9, issued_at: 8 } },
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
    async fn a_length_prefix_alone_allocates_nothing_large() {
        // A member announces the largest frame and sends 1 KiB: what is held is about what came.
        let (mut near, mut far) = tokio::io::duplex(64 * 1024);
        far.write_all(&(MAX_FRAME as u32).to_be_bytes()).await.unwrap();
        far.write_all(&[7u8; 1024]).await.unwrap();
        drop(far);
        assert!(matches!(read_frame(&mut near).await, Err(WireError::Closed)));

        // Growth follows the bytes: a 1 MiB frame in a buffer of at most twice that.
        let (mut near, mut far) = tokio::io::duplex(64 * 1024);
        let frame = vec![9u8; 1 << 20];
        let sent = frame.clone();
        let writer = tokio::spawn(async move { write_frame(&mut far, &sent).await.unwrap() });
        let mut prefix = [0u8; 4];
        near.read_exact(&mut prefix).await.unwrap();
        let got = read_body(&mut near, u32::from_be_bytes(prefix) as usize).await.unwrap();
        writer.await.unwrap();
        assert_eq!(got, frame);
        assert!(got.capacity() <= 2 * frame.len(), "capacity {} for {} bytes", got.capacity(), frame.len());
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
