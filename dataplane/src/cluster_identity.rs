//! The cluster's identity and its join secret, and the join token that carries them.
//!
//! A token looks like `MESHTKN-1-<fingerprint>-<secret>` (Docker's `SWMTKN-1-...` shape):
//! - the fingerprint (16 bytes, hex) is derived from the cluster ID; a joiner checks it against
//!   what the cluster proves it has, so a token cannot lead it into a different cluster;
//! - the secret (32 bytes, hex) is what admits a new node. `join-token --rotate` replaces it:
//!   future joins need the new token, members already in the cluster are not affected.
//!
//! The first node of a cluster (started without `--join`) creates both and keeps them in
//! `cluster.json` in its state directory.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hex;
use crate::state_dir::{StateDir, StateDirError};

const CLUSTER_FILE: &str = "cluster.json";
const TOKEN_PREFIX: &str = "MESHTKN";
const TOKEN_VERSION: &str = "1";

/// 32 secret bytes. Debug never prints them.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl Secret {
    pub fn random() -> Result<Secret, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Secret(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode_array(&text)
            .map(Secret)
            .ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// The fingerprint by which a joiner recognises the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 16]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

/// What `cluster.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterIdentity {
    /// Random, fixed for the life of the cluster.
    pub cluster_id: Secret,
    /// Admits new nodes; rotated by `join-token --rotate`.
    pub join_secret: Secret,
}

impl ClusterIdentity {
    /// A brand-new cluster.
    pub fn create() -> Result<ClusterIdentity, getrandom::Error> {
        Ok(ClusterIdentity {
            cluster_id: Secret::random()?,
            join_secret: Secret::random()?,
        })
    }

    /// Loads the identity from the state directory, creating a new cluster on first start.
    pub fn load_or_create(state: &StateDir) -> Result<(ClusterIdentity, bool), StateDirError> {
        if let Some(identity) = state.read_json(CLUSTER_FILE)? {
            return Ok((identity, false));
        }
        let identity = ClusterIdentity::create().map_err(StateDirError::Random)?;
        identity.save(state)?;
        Ok((identity, true))
    }

    pub fn save(&self, state: &StateDir) -> Result<(), StateDirError> {
        state.write_json(CLUSTER_FILE, self)
    }

    /// Replaces the join secret; the caller saves.
    pub fn rotate(&mut self) -> Result<(), getrandom::Error> {
        self.join_secret = Secret::random()?;
        Ok(())
    }

    pub fn fingerprint(&self) -> Fingerprint {
        let digest = Sha256::new()
            .chain_update(b"meshd cluster fingerprint v1")
            .chain_update(self.cluster_id.as_bytes())
            .finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        Fingerprint(out)
    }

    pub fn join_token(&self) -> JoinToken {
        JoinToken {
            fingerprint: self.fingerprint(),
            secret: self.join_secret.clone(),
        }
    }
}

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub fingerprint: Fingerprint,
    pub secret: Secret,
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{TOKEN_PREFIX}-{TOKEN_VERSION}-{}-{}",
            self.fingerprint,
            hex::encode(self.secret.as_bytes())
        )
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseTokenError {
    #[error("not a meshd join token (expected MESHTKN-1-<fingerprint>-<secret>)")]
    Shape,
    #[error("unsupported join token version {0:?} (this meshd reads version 1)")]
    Version(String),
    #[error("join token fingerprint is not 32 hex digits")]
    Fingerprint,
    #[error("join token secret is not 64 hex digits")]
    Secret,
}

impl FromStr for JoinToken {
    type Err = ParseTokenError;

    fn from_str(text: &str) -> Result<JoinToken, ParseTokenError> {
        let mut parts = text.trim().split('-');
        let (Some(prefix), Some(version), Some(fingerprint), Some(secret), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(ParseTokenError::Shape);
        };
        if prefix != TOKEN_PREFIX {
            return Err(ParseTokenError::Shape);
        }
        if version != TOKEN_VERSION {
            return Err(ParseTokenError::Version(version.chars().take(16).collect()));
        }
        let fingerprint = hex::decode_array(fingerprint)
            .map(Fingerprint)
            .ok_or(ParseTokenError::Fingerprint)?;
        let secret = hex::decode_array(secret)
            .map(Secret)
            .ok_or(ParseTokenError::Secret)?;
        Ok(JoinToken {
            fingerprint,
            secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips() {
        let identity = ClusterIdentity::create().unwrap();
        let token = identity.join_token();
        let text = token.to_string();
        assert!(text.starts_with("MESHTKN-1-"));
        assert_eq!(text.parse::<JoinToken>().unwrap(), token);
    }

    #[test]
    fn rotation_changes_the_secret_not_the_fingerprint() {
        let mut identity = ClusterIdentity::create().unwrap();
        let before = identity.join_token();
        identity.rotate().unwrap();
        let after = identity.join_token();
        assert_eq!(before.fingerprint, after.fingerprint);
        assert_ne!(before.secret, after.secret);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = ClusterIdentity::create().unwrap().join_token().to_string();
        let fp = &good[10..42];
        let secret = &good[43..];
        assert_eq!("".parse::<JoinToken>(), Err(ParseTokenError::Shape));
        assert_eq!(
            "SWMTKN-1-a-b".parse::<JoinToken>(),
            Err(ParseTokenError::Shape)
        );
        assert_eq!(
            format!("{good}-x").parse::<JoinToken>(),
            Err(ParseTokenError::Shape)
        );
        assert_eq!(
            format!("MESHTKN-2-{fp}-{secret}").parse::<JoinToken>(),
            Err(ParseTokenError::Version("2".into()))
        );
        assert_eq!(
            format!("MESHTKN-1-{}-{secret}", &fp[1..]).parse::<JoinToken>(),
            Err(ParseTokenError::Fingerprint)
        );
        assert_eq!(
            format!("MESHTKN-1-{fp}-g{}", &secret[1..]).parse::<JoinToken>(),
            Err(ParseTokenError::Secret)
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let identity = ClusterIdentity::create().unwrap();
        let shown = format!("{identity:?}");
        assert!(!shown.contains(&hex::encode(identity.join_secret.as_bytes())));
    }
}
