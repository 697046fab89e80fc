//! Trust: who a node is and what it may say.
//!
//! - [`keys`]: the node's Ed25519 key pair; its node ID is the hash of the public key.
//! - [`ca`]: the cluster CA (managers hold its key): certifies node keys, grants the founder's
//!   role, derives the join secrets.
//! - [`certs`]: checking a node certificate against the CA.
//! - [`record`]: signing and checking the records nodes write into the cluster state.
//! - [`tls`]: mutual TLS between members on TCP 7946.
//!
//! What a signed record is allowed to say (owner, role, revocation, content) is decided where
//! records are admitted: `gossip::admission`.

pub mod ca;
pub mod certs;
pub mod keys;
pub mod record;
pub mod tls;
