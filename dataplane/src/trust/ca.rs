//! The cluster's certificate authority. The first node of a cluster creates it; managers hold
//! its key (mode 0600 in their state directory) and use it to certify the keys of joining
//! nodes, to renew certificates, and to derive the join secrets and the gossip keys. Workers
//! never see it.
//!
//! Certificates carry only what TLS and the record check need: the node's key, a DNS and a URI
//! name made of its ID (`<id>.node.meshd`, `meshd://node/<id>`), both TLS usages, a random
//! serial and a validity period. Roles are not in certificates: they are records in the cluster
//! state, signed by managers (`state::Role`), so a demotion takes effect without a new
//! certificate.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm, PKCS_ED25519,
};
use ring::digest::{digest, SHA256};
use ring::hmac;

use super::keys::{NodeKey, PublicKey};
use crate::identity::{Fingerprint, NodeId, Secret};

/// How long a CA certificate is valid. Node certificates are much shorter (`--cert-expiry`).
const CA_VALIDITY_DAYS: i64 = 3650;
/// Backdated start of every certificate: clocks of the nodes may disagree a little.
const CLOCK_SKEW_MINUTES: i64 = 5;

/// What a founder grant signs: this node created the cluster and is its first manager.
pub const FOUNDER_DOMAIN: &[u8] = b"meshd-founder-v1";

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot build a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("the CA key is invalid: {0}")]
    Key(String),
}

/// The role a join secret admits a node as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRole {
    Worker,
    Manager,
}

/// A certificate issued to a node, and when it stops being valid (kept beside it so the node
/// knows when to renew without parsing X.509).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IssuedCert {
    pub der: Vec<u8>,
    /// Seconds since the Unix epoch.
    pub not_after: u64,
    /// When it was issued (seconds since the Unix epoch): renewal starts two thirds of the way
    /// from here to `not_after`.
    pub issued_at: u64,
}

impl IssuedCert {
    /// Whether it is time to ask for a new one (two thirds of its life are over).
    pub fn due_for_renewal(&self, now_secs: u64) -> bool {
        let life = self.not_after.saturating_sub(self.issued_at);
        now_secs >= self.issued_at.saturating_add(life * 2 / 3)
    }
}

pub struct ClusterCa {
    cert: Vec<u8>,
    key: NodeKey,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").field("fingerprint", &fingerprint(&self.cert)).finish_non_exhaustive()
    }
}

/// The fingerprint of a CA certificate: what a join token carries, so a joiner can tell the
/// cluster it reached is the one the token is for.
pub fn fingerprint(ca_cert: &[u8]) -> Fingerprint {
    Fingerprint::from_bytes(digest(&SHA256, ca_cert).as_ref()[..16].try_into().expect("16 of 32 bytes"))
}

impl ClusterCa {
    /// The CA's own parameters. Deterministic (but for validity and serial, which only the
    /// self-signed certificate uses), so a restarted manager rebuilds its issuer from the key
    /// alone, without parsing X.509.
    fn params() -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "meshd cluster CA");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
    }

    /// A new CA with a new key.
    pub fn create() -> Result<ClusterCa, CaError> {
        let key = NodeKey::generate().map_err(|e| CaError::Key(e.to_string()))?;
        let now = time::OffsetDateTime::now_utc();
        let mut params = ClusterCa::params();
        params.not_before = now - time::Duration::minutes(CLOCK_SKEW_MINUTES);
        params.not_after = now + time::Duration::days(CA_VALIDITY_DAYS);
        params.serial_number = Some(random_serial());
        let signer = rcgen_key(&key)?;
        let cert = params.self_signed(&signer)?.der().to_vec();
        Ok(ClusterCa { cert, issuer: Issuer::new(ClusterCa::params(), signer), key })
    }

    /// The CA of a certificate and its key (PKCS#8), as a manager keeps them.
    pub fn load(cert: Vec<u8>, key_pkcs8: &[u8]) -> Result<ClusterCa, CaError> {
        let key = NodeKey::from_pkcs8(key_pkcs8).map_err(|e| CaError::Key(e.to_string()))?;
        let signer = rcgen_key(&key)?;
        Ok(ClusterCa { cert, issuer: Issuer::new(ClusterCa::params(), signer), key })
    }

    pub fn cert(&self) -> &[u8] {
        &self.cert
    }

    /// The CA's public key (what its certificate names, when the two belong together).
    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    pub fn key_pkcs8(&self) -> &[u8] {
        self.key.pkcs8()
    }

    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint(&self.cert)
    }

    /// Certifies `key` for `valid_secs` from now. The node ID is derived from the key here,
    /// never taken from what a joiner says.
    pub fn issue(&self, key: &PublicKey, valid_secs: u64) -> Result<IssuedCert, CaError> {
        let id = key.node_id();
        let now = time::OffsetDateTime::now_utc();
        let not_after = now + time::Duration::seconds(i64::try_from(valid_secs).unwrap_or(i64::MAX / 2));
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, id.to_string());
        params.distinguished_name = name;
        params.subject_alt_names = vec![
            SanType::DnsName(node_dns_name(&id).try_into()?),
            SanType::URI(format!("meshd://node/{id}").try_into()?),
        ];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = now - time::Duration::minutes(CLOCK_SKEW_MINUTES);
        params.not_after = not_after;
        // A random serial: rcgen's default derives it from the key, which a renewal keeps.
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&RawKey(*key), &self.issuer)?;
        Ok(IssuedCert {
            der: cert.der().to_vec(),
            not_after: not_after.unix_timestamp().max(0) as u64,
            issued_at: now.unix_timestamp().max(0) as u64,
        })
    }

    /// The founder grant of `node`: the CA's signature saying it created the cluster (and so is
    /// a manager until a role record says otherwise).
    pub fn founder_grant(&self, node: &NodeId) -> [u8; 64] {
        self.key.sign(FOUNDER_DOMAIN, node.as_bytes())
    }

    /// The join secret of `role` at rotation `epoch`. Derived from the CA key, so any manager
    /// can compute (and check) the current secret, and nobody without the key can.
    pub fn join_secret(&self, role: JoinRole, epoch: u64) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.key.pkcs8());
        let label: &[u8] = match role {
            JoinRole::Worker => b"meshd-join-worker-v1",
            JoinRole::Manager => b"meshd-join-manager-v1",
        };
        let tag = hmac::sign(&key, &[label, &epoch.to_be_bytes()].concat());
        tag.as_ref().try_into().expect("HMAC-SHA256 is 32 bytes")
    }

    /// The gossip key a rotation's public `salt` (the `secrets` record's entry) stands for.
    /// Derived from the CA key like the join secrets, so the record may travel anywhere (a
    /// removed node may even see it) and still only managers, and the members they hand the
    /// key to over mutual TLS, hold the key itself.
    pub fn gossip_key(&self, salt: &Secret) -> Secret {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.key.pkcs8());
        let tag = hmac::sign(&key, &[b"meshd-gossip-key-v1".as_slice(), salt.as_bytes()].concat());
        Secret::from_bytes(tag.as_ref().try_into().expect("HMAC-SHA256 is 32 bytes"))
    }
}

/// The DNS name in a node's certificate.
pub fn node_dns_name(id: &NodeId) -> String {
    format!("{id}.node.meshd")
}

/// A bare Ed25519 public key that rcgen can certify (the joiner proved it holds the private
/// half with a signature of its own, see `gossip::join`).
struct RawKey(PublicKey);

impl PublicKeyData for RawKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0 .0
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ED25519
    }
}

fn rcgen_key(key: &NodeKey) -> Result<KeyPair, CaError> {
    KeyPair::try_from(key.pkcs8()).map_err(|e| CaError::Key(e.to_string()))
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    bytes[0] &= 0x7f; // a positive INTEGER
    SerialNumber::from_slice(&bytes)
}
