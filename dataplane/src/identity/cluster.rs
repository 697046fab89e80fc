//! Secrets, the cluster's fingerprint, and the join token that carries them to a new node.
//!
//! A token looks like `MESHTKN-1-<fingerprint>-<secret>` (Docker's `SWMTKN-1-...` shape):
//! - the fingerprint (16 bytes, hex) is of the cluster CA's certificate; a joiner checks it
//!   against the certificate the cluster answers with, so a token cannot lead it into another
//!   cluster;
//! - the secret (32 bytes, hex) admits a new node as a worker or as a manager (one secret per
//!   role). Managers derive both from the CA key (`trust::ca`), so no secret is in the
//!   replicated state; `join-token ROLE --rotate` moves that role to its next secret: future
//!   joins need the new token, members already in the cluster are not affected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::util::hex;

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

    pub fn from_bytes(bytes: [u8; 32]) -> Secret {
        Secret(bytes)
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

/// Hex in JSON (the state directory); 32 raw bytes in binary formats (always inside encryption).
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&hex::encode(&self.0))
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            hex::decode_array(&text)
                .map(Secret)
                .ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
        } else {
            <[u8; 32]>::deserialize(deserializer).map(Secret)
        }
    }
}

/// The fingerprint by which a joiner recognises the cluster: of its CA certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint([u8; 16]);

impl Fingerprint {
    pub fn from_bytes(bytes: [u8; 16]) -> Fingerprint {
        Fingerprint(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub fingerprint: Fingerprint,
    pub secret: Secret,
}

impl JoinToken {
    pub fn new(fingerprint: Fingerprint, secret: Secret) -> JoinToken {
        JoinToken { fingerprint, secret }
    }
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
        let (Some(prefix), Some(version), Some(fingerprint), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseTokenError::Shape);
        };
        if prefix != TOKEN_PREFIX {
            return Err(ParseTokenError::Shape);
        }
        if version != TOKEN_VERSION {
            return Err(ParseTokenError::Version(version.chars().take(16).collect()));
        }
        let fingerprint =
            hex::decode_array(fingerprint).map(Fingerprint).ok_or(ParseTokenError::Fingerprint)?;
        let secret = hex::decode_array(secret).map(Secret).ok_or(ParseTokenError::Secret)?;
        Ok(JoinToken { fingerprint, secret })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> JoinToken {
        JoinToken::new(Fingerprint::from_bytes([7; 16]), Secret::random().unwrap())
    }

    #[test]
    fn token_round_trips() {
        let token = token();
        let text = token.to_string();
        assert!(text.starts_with("MESHTKN-1-"));
        assert_eq!(text.parse::<JoinToken>().unwrap(), token);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = token().to_string();
        let fp = &good[10..42];
        let secret = &good[43..];
        assert_eq!("".parse::<JoinToken>(), Err(ParseTokenError::Shape));
        assert_eq!("SWMTKN-1-a-b".parse::<JoinToken>(), Err(ParseTokenError::Shape));
        assert_eq!(format!("{good}-x").parse::<JoinToken>(), Err(ParseTokenError::Shape));
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
        let secret = Secret::random().unwrap();
        assert!(!format!("{secret:?}").contains(&hex::encode(secret.as_bytes())));
    }
}
