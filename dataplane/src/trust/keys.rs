//! A node's key pair: Ed25519, made at first start and kept in the state directory (PKCS#8,
//! mode 0600). The node's ID is derived from its public key, so an ID cannot be claimed without
//! the key, and a new key is a new node.
//!
//! The same key signs the node's TLS handshakes (its certificate certifies it) and every record
//! the node writes into the cluster state (see [`super::record`]). Ed25519: fixed 64-byte
//! signatures, no RNG per signature, and verification (which every node does for every record)
//! faster than ECDSA; measured: sign 26 µs, verify 48 µs (docs/security.md).

use ring::digest::{digest, SHA256};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};

use crate::identity::NodeId;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo: SEQUENCE { SEQUENCE { OID 1.3.101.112 },
/// BIT STRING } followed by the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] =
    [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the node key is not a valid Ed25519 PKCS#8 document: {0}")]
    Invalid(String),
    #[error("cannot generate a key: {0}")]
    Generate(String),
}

/// An Ed25519 public key (32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", crate::util::hex::encode(&self.0[..8]))
    }
}

impl PublicKey {
    /// The DER SubjectPublicKeyInfo, as a certificate holds it.
    pub fn spki(&self) -> Vec<u8> {
        [ED25519_SPKI_PREFIX.as_slice(), &self.0].concat()
    }

    /// The key inside an Ed25519 SubjectPublicKeyInfo; None for any other kind of key.
    pub fn from_spki(spki: &[u8]) -> Option<PublicKey> {
        let raw = spki.strip_prefix(ED25519_SPKI_PREFIX.as_slice())?;
        Some(PublicKey(raw.try_into().ok()?))
    }

    /// The node ID this key stands for: the first 16 bytes of SHA-256 over its SPKI (the same
    /// bytes whatever tool derives them: the CA, a TLS peer, a record's verifier).
    pub fn node_id(&self) -> NodeId {
        let hash = digest(&SHA256, &self.spki());
        NodeId::from_bytes(hash.as_ref()[..16].try_into().expect("16 of 32 bytes"))
    }

    /// Whether `signature` is this key's over `domain` ‖ `message`.
    pub fn verify(&self, domain: &[u8], message: &[u8], signature: &[u8; 64]) -> bool {
        let signed = [domain, message].concat();
        UnparsedPublicKey::new(&ED25519, &self.0).verify(&signed, signature).is_ok()
    }
}

/// The node's own key pair.
pub struct NodeKey {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey").field("public", &self.public()).finish_non_exhaustive()
    }
}

impl NodeKey {
    pub fn generate() -> Result<NodeKey, KeyError> {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        NodeKey::from_pkcs8(document.as_ref())
    }

    /// Loads a PKCS#8 v2 document (what [`generate`](Self::generate) writes).
    pub fn from_pkcs8(der: &[u8]) -> Result<NodeKey, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| KeyError::Invalid(e.to_string()))?;
        Ok(NodeKey { pair, pkcs8: der.to_vec() })
    }

    /// The document to keep on disk (mode 0600) and to hand to TLS.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.pair.public_key().as_ref().try_into().expect("Ed25519 public keys are 32 bytes"))
    }

    pub fn node_id(&self) -> NodeId {
        self.public().node_id()
    }

    /// Signs `domain` ‖ `message`. The domain separates what a signature is for (a record, a
    /// join proof, a founder grant), so one can never pass for another.
    pub fn sign(&self, domain: &[u8], message: &[u8]) -> [u8; 64] {
        let signed = [domain, message].concat();
        self.pair.sign(&signed).as_ref().try_into().expect("Ed25519 signatures are 64 bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_reload_sign_and_name_their_node() {
        let key = NodeKey::generate().unwrap();
        let again = NodeKey::from_pkcs8(key.pkcs8()).unwrap();
        assert_eq!(key.public(), again.public());
        assert_eq!(key.node_id(), key.public().node_id());
        let signature = key.sign(b"test-v1", b"hello");
        assert!(key.public().verify(b"test-v1", b"hello", &signature));
        assert!(!key.public().verify(b"test-v2", b"hello", &signature), "another domain");
        assert!(!key.public().verify(b"test-v1", b"hellO", &signature), "another message");
        assert_eq!(PublicKey::from_spki(&key.public().spki()), Some(key.public()));
        assert_eq!(PublicKey::from_spki(&[0u8; 44]), None);
        assert_ne!(NodeKey::generate().unwrap().node_id(), key.node_id());
        assert!(NodeKey::from_pkcs8(b"not a key").is_err());
    }
}
