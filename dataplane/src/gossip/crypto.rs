//! Sealing every gossip datagram and TCP frame: XChaCha20-Poly1305 with a keyring.
//!
//! A sealed frame is
//!
//! ```text
//! | 0x01 | key id (4) | nonce (24) | ciphertext( timestamp ms (8, BE) | payload ) | tag (16) |
//! ```
//!
//! - The version byte and key id are authenticated as associated data; nothing else is in clear.
//!   The key id is a hash of the key, so a receiver picks the key at once instead of trying each.
//! - XChaCha's 24-byte nonce is random per frame: no counter state to keep or to lose in a
//!   restart, and collisions are negligible.
//! - The timestamp, inside the encryption, bounds how long a captured frame could be replayed;
//!   [`ReplayGuard`] remembers the nonces it accepted for that long, so within the window a
//!   replay is caught too; each source address has its own share of it, so one member that
//!   floods cannot make a node refuse the others' frames.
//! - The primary key (first in the ring) seals; every key in the ring opens, so a key rotation
//!   never splits the cluster while the new key spreads.
//!
//! Keys are derived from the cluster's secrets with a purpose label: gossip frames and join
//! frames can never be mistaken for each other, even if a secret were reused.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::identity::Secret;

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const TIMESTAMP_LEN: usize = 8;
const HEADER_LEN: usize = 1 + KEY_ID_LEN;

/// Bytes a sealed frame adds to its payload.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TIMESTAMP_LEN + TAG_LEN;

/// What a key is for; part of the key derivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Gossip datagrams and push-pull frames between members.
    Gossip,
    /// The join handshake, keyed by the join token's secret.
    Join,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Gossip => b"meshd gossip key v1",
            Purpose::Join => b"meshd join key v1",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("frame too short")]
    Truncated,
    #[error("unknown frame version {0}")]
    Version(u8),
    #[error("sealed with a key this node does not have")]
    UnknownKey,
    #[error("authentication failed (forged or corrupted)")]
    Forged,
    #[error("timestamp outside the replay window")]
    Stale,
    #[error("replayed frame")]
    Replayed,
    #[error("its source sent more than its share of frames within the replay window")]
    OverShare,
    #[error("the replay guard is full")]
    GuardFull,
}

struct Key {
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha20Poly1305,
}

/// Keys for one purpose, primary first.
pub struct Keyring {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} keys)", self.keys.len())
    }
}

/// A frame that opened: when it was sealed, its nonce (for the replay guard) and its payload.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened {
    pub timestamp_ms: u64,
    pub nonce: [u8; NONCE_LEN],
    pub payload: Vec<u8>,
}

/// The key derived from `secret` for `purpose`, and its id.
fn derive(purpose: Purpose, secret: &Secret) -> (chacha20poly1305::Key, [u8; KEY_ID_LEN]) {
    let key = Sha256::new().chain_update(purpose.label()).chain_update(secret.as_bytes()).finalize();
    let id_hash = Sha256::new().chain_update(b"meshd key id").chain_update(key).finalize();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&id_hash[..KEY_ID_LEN]);
    (key, id)
}

/// The id of the key `secret` gives for `purpose` (what a frame carries in clear, and what a
/// node reports holding during a key rotation).
pub fn key_id(purpose: Purpose, secret: &Secret) -> u32 {
    u32::from_be_bytes(derive(purpose, secret).1)
}

impl Keyring {
    /// Derives one key per secret. `secrets` must not be empty; the first one seals.
    pub fn new(purpose: Purpose, secrets: &[Secret]) -> Keyring {
        assert!(!secrets.is_empty(), "a keyring needs at least one key");
        let keys = secrets
            .iter()
            .map(|secret| {
                let (key, id) = derive(purpose, secret);
                Key { id, cipher: XChaCha20Poly1305::new(&key) }
            })
            .collect();
        Keyring { keys }
    }

    /// The ids of the keys, the sealing one first.
    pub fn ids(&self) -> Vec<u32> {
        self.keys.iter().map(|k| u32::from_be_bytes(k.id)).collect()
    }

    /// Seals `payload` with the primary key, stamped with `now_ms`.
    pub fn seal(&self, payload: &[u8], now_ms: u64) -> Vec<u8> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the OS random source failed");
        let mut plaintext = Vec::with_capacity(TIMESTAMP_LEN + payload.len());
        plaintext.extend_from_slice(&now_ms.to_be_bytes());
        plaintext.extend_from_slice(payload);

        let mut frame = Vec::with_capacity(OVERHEAD + payload.len());
        frame.push(VERSION);
        frame.extend_from_slice(&key.id);
        let aad = frame.clone();
        frame.extend_from_slice(&nonce);
        let ciphertext = key
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: &plaintext, aad: &aad })
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        frame.extend_from_slice(&ciphertext);
        frame
    }

    /// Opens a frame sealed by any key of the ring. Checks authenticity only; the caller runs
    /// the result through a [`ReplayGuard`].
    pub fn open(&self, frame: &[u8]) -> Result<Opened, OpenError> {
        if frame.len() < OVERHEAD {
            return Err(OpenError::Truncated);
        }
        if frame[0] != VERSION {
            return Err(OpenError::Version(frame[0]));
        }
        let (aad, rest) = frame.split_at(HEADER_LEN);
        let key = self.keys.iter().find(|k| k.id == aad[1..]).ok_or(OpenError::UnknownKey)?;
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let plaintext = key
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad })
            .map_err(|_| OpenError::Forged)?;
        let (stamp, payload) = plaintext.split_at(TIMESTAMP_LEN);
        Ok(Opened {
            timestamp_ms: u64::from_be_bytes(stamp.try_into().expect("split at 8")),
            nonce: nonce.try_into().expect("split at 24"),
            payload: payload.to_vec(),
        })
    }

    /// Whether a frame's key id is one of this ring's (without trying to open it).
    pub fn knows(&self, frame: &[u8]) -> bool {
        frame.len() >= HEADER_LEN
            && frame[0] == VERSION
            && self.keys.iter().any(|k| k.id == frame[1..HEADER_LEN])
    }
}

/// Nonces one source address may have accepted within one window: far above what a member
/// legitimately sends one peer (SWIM sends each peer a few datagrams a second; 2^14 in 30 s is
/// about 550 a second), so a member that floods fills its own share and nobody else's.
pub const REPLAY_PER_SOURCE: usize = 1 << 14;
/// Nonces remembered in all within one window (about 24 MiB of nonces at most over the three
/// generations): filling it takes 64 sources each flooding at its full share.
pub const REPLAY_TOTAL: usize = 1 << 20;

/// Rejects frames outside the time window and frames whose nonce was already accepted, with a
/// share per source address.
///
/// Nonces are kept in three generations of `window` each, so a nonce is remembered for at least
/// twice the window: as long as a frame stamped within the window of one acceptance can still be
/// accepted. A nonce is a replay whichever source sends it again. Each source may have at most
/// `per_source` nonces accepted in the current generation, and all sources together `total`;
/// past its share a source's frames are refused ([`OpenError::OverShare`]) while every other
/// source's are still accepted. Past the total (only many sources flooding at once can reach
/// it) the guard fails closed ([`OpenError::GuardFull`]).
#[derive(Debug)]
pub struct ReplayGuard {
    window_ms: u64,
    per_source: usize,
    total: usize,
    generations: [Generation; 3],
    rotated_at_ms: u64,
}

/// The nonces accepted within one window, and how many came from each source.
#[derive(Debug, Default)]
struct Generation {
    nonces: HashSet<[u8; NONCE_LEN]>,
    per_source: HashMap<IpAddr, usize>,
}

impl Generation {
    fn clear(&mut self) {
        self.nonces.clear();
        self.per_source.clear();
    }
}

impl ReplayGuard {
    pub fn new(window_ms: u64, per_source: usize, total: usize) -> ReplayGuard {
        ReplayGuard { window_ms, per_source, total, generations: Default::default(), rotated_at_ms: 0 }
    }

    /// Accepts `opened`, received from `source` at local time `now_ms`, or says why not.
    pub fn check(&mut self, source: IpAddr, opened: &Opened, now_ms: u64) -> Result<(), OpenError> {
        if now_ms.abs_diff(opened.timestamp_ms) > self.window_ms {
            return Err(OpenError::Stale);
        }
        self.rotate(now_ms);
        if self.generations.iter().any(|g| g.nonces.contains(&opened.nonce)) {
            return Err(OpenError::Replayed);
        }
        let current = &mut self.generations[0];
        let share = current.per_source.get(&source).copied().unwrap_or(0);
        if share >= self.per_source {
            return Err(OpenError::OverShare);
        }
        if current.nonces.len() >= self.total {
            // Only many sources holding the key can get here; better to drop than to grow.
            return Err(OpenError::GuardFull);
        }
        current.nonces.insert(opened.nonce);
        current.per_source.insert(source, share + 1);
        Ok(())
    }

    /// Whether `source` is already past its share of the current window: its frames can be
    /// dropped before they are even opened (a flood then costs a lookup, not a decryption).
    pub fn over_share(&mut self, source: IpAddr, now_ms: u64) -> bool {
        self.rotate(now_ms);
        self.generations[0].per_source.get(&source).is_some_and(|n| *n >= self.per_source)
    }

    fn rotate(&mut self, now_ms: u64) {
        while now_ms.saturating_sub(self.rotated_at_ms) >= self.window_ms {
            self.generations.rotate_right(1);
            self.generations[0].clear();
            self.rotated_at_ms =
                if self.rotated_at_ms == 0 { now_ms } else { self.rotated_at_ms + self.window_ms };
            if now_ms.saturating_sub(self.rotated_at_ms) >= 3 * self.window_ms {
                // Long idle: everything is old, start afresh.
                self.generations.iter_mut().for_each(Generation::clear);
                self.rotated_at_ms = now_ms;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(n: u8) -> Secret {
        serde_json::from_str(&format!("\"{}\"", format!("{n:02x}").repeat(32))).unwrap()
    }

    #[test]
    fn seal_open_round_trip_and_nothing_in_clear() {
        let ring = Keyring::new(Purpose::Gossip, &[secret(1)]);
        let payload = b"node n1 at 10.0.0.1 says hello";
        let frame = ring.seal(payload, 1234);
        assert_eq!(frame.len(), payload.len() + OVERHEAD);
        assert!(!frame.windows(5).any(|w| w == b"n1 at"), "payload is not readable");
        let opened = ring.open(&frame).unwrap();
        assert_eq!(opened.payload, payload);
        assert_eq!(opened.timestamp_ms, 1234);
    }

    #[test]
    fn tampering_wrong_keys_and_garbage_are_refused() {
        let ring = Keyring::new(Purpose::Gossip, &[secret(1)]);
        let frame = ring.seal(b"payload", 1);
        for i in 0..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 0x40;
            assert!(ring.open(&bad).is_err(), "flipped byte {i} accepted");
        }
        assert_eq!(ring.open(&frame[..OVERHEAD - 1]), Err(OpenError::Truncated));
        assert_eq!(ring.open(&[]), Err(OpenError::Truncated));
        let other = Keyring::new(Purpose::Gossip, &[secret(2)]);
        assert_eq!(other.open(&frame), Err(OpenError::UnknownKey));
        let join = Keyring::new(Purpose::Join, &[secret(1)]);
        assert_eq!(join.open(&frame), Err(OpenError::UnknownKey), "purposes never mix");
        assert_eq!(ring.open(&[0u8; 100]), Err(OpenError::Version(0)));
    }

    #[test]
    fn older_keys_open_while_the_primary_seals() {
        let old = Keyring::new(Purpose::Gossip, &[secret(1)]);
        let rotated = Keyring::new(Purpose::Gossip, &[secret(2), secret(1)]);
        assert!(rotated.open(&old.seal(b"x", 1)).is_ok(), "old key still opens");
        assert_eq!(old.open(&rotated.seal(b"x", 1)), Err(OpenError::UnknownKey), "new key seals");
    }

    #[test]
    fn replay_guard_rejects_repeats_and_stale_frames() {
        let ring = Keyring::new(Purpose::Gossip, &[secret(1)]);
        let mut guard = ReplayGuard::new(10_000, 1_000, 10_000);
        let frame = ring.seal(b"x", 100_000);
        let opened = ring.open(&frame).unwrap();
        assert_eq!(guard.check(A, &opened, 100_500), Ok(()));
        assert_eq!(guard.check(A, &opened, 100_600), Err(OpenError::Replayed));
        assert_eq!(guard.check(B, &opened, 100_600), Err(OpenError::Replayed), "from any source");
        // Still remembered for as long as the timestamp is acceptable.
        assert_eq!(guard.check(A, &opened, 109_900), Err(OpenError::Replayed));
        assert_eq!(guard.check(A, &opened, 110_001), Err(OpenError::Stale));
        let future = ring.open(&ring.seal(b"x", 200_000)).unwrap();
        assert_eq!(guard.check(A, &future, 100_000), Err(OpenError::Stale));
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn fresh(ring: &Keyring, at: u64) -> Opened {
        ring.open(&ring.seal(b"x", at)).unwrap()
    }

    #[test]
    fn a_flooding_source_fills_only_its_own_share() {
        let ring = Keyring::new(Purpose::Gossip, &[secret(1)]);
        let mut guard = ReplayGuard::new(10_000, 3, 100);
        for _ in 0..3 {
            assert_eq!(guard.check(A, &fresh(&ring, 5), 5), Ok(()));
        }
        for _ in 0..50 {
            assert_eq!(guard.check(A, &fresh(&ring, 5), 5), Err(OpenError::OverShare), "A is over its share");
        }
        assert_eq!(guard.check(B, &fresh(&ring, 5), 5), Ok(()), "B is still heard");
        assert!(guard.over_share(A, 6) && !guard.over_share(B, 6));
        // The next window gives A a new share (its old nonces are still remembered).
        assert_eq!(guard.check(A, &fresh(&ring, 10_005), 10_005), Ok(()));
    }

    #[test]
    fn replay_guard_is_bounded_in_total() {
        let ring = Keyring::new(Purpose::Gossip, &[secret(1)]);
        let mut guard = ReplayGuard::new(10_000, 2, 4);
        let sources: Vec<IpAddr> =
            (1..=3).map(|i| IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 1, i))).collect();
        for source in &sources[..2] {
            for _ in 0..2 {
                assert_eq!(guard.check(*source, &fresh(&ring, 5), 5), Ok(()));
            }
        }
        assert_eq!(
            guard.check(sources[2], &fresh(&ring, 5), 5),
            Err(OpenError::GuardFull),
            "fails closed when full"
        );
        let remembered: usize = guard.generations.iter().map(|g| g.nonces.len()).sum();
        assert_eq!(remembered, 4);
    }
}
