//! Checking a node certificate against the cluster CA: the chain (one level: CA -> node), the
//! validity period, both TLS usages, and the node ID the key stands for. Used by the TLS
//! verifiers and by record admission (a node's certificate travels in its node record).

use std::sync::Arc;

use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::RootCertStore;

use super::keys::PublicKey;
use crate::identity::NodeId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("not a certificate of this cluster's CA: {0}")]
    Chain(String),
    #[error("the certificate's key is not Ed25519")]
    KeyType,
}

/// The cluster CA as a trust anchor.
#[derive(Debug, Clone)]
pub struct CaAnchor {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
    /// The CA's own key: it signs founder grants.
    pub public: PublicKey,
}

impl CaAnchor {
    pub fn new(ca_cert: &[u8]) -> Result<CaAnchor, CertError> {
        let der = CertificateDer::from(ca_cert.to_vec());
        let parsed = ParsedCertificate::try_from(&der).map_err(|e| CertError::Chain(e.to_string()))?;
        let public = PublicKey::from_spki(&parsed.subject_public_key_info()).ok_or(CertError::KeyType)?;
        let mut roots = RootCertStore::empty();
        roots.add(der).map_err(|e| CertError::Chain(e.to_string()))?;
        Ok(CaAnchor {
            roots: Arc::new(roots),
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
            public,
        })
    }

    pub fn roots(&self) -> Arc<RootCertStore> {
        self.roots.clone()
    }

    /// The node and key a certificate certifies, if it chains to this CA and is valid at `now`.
    pub fn verify(&self, cert: &[u8], now: UnixTime) -> Result<(NodeId, PublicKey), CertError> {
        let der = CertificateDer::from(cert);
        let parsed = ParsedCertificate::try_from(&der).map_err(|e| CertError::Chain(e.to_string()))?;
        verify_server_cert_signed_by_trust_anchor(&parsed, &self.roots, &[], now, self.algorithms.all)
            .map_err(|e| CertError::Chain(e.to_string()))?;
        let key = PublicKey::from_spki(&parsed.subject_public_key_info()).ok_or(CertError::KeyType)?;
        Ok((key.node_id(), key))
    }
}

/// The node a (chain-checked) certificate stands for: the hash of its key.
pub fn node_of(cert: &CertificateDer<'_>) -> Option<NodeId> {
    let parsed = ParsedCertificate::try_from(cert).ok()?;
    PublicKey::from_spki(&parsed.subject_public_key_info()).map(|key| key.node_id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::ca::ClusterCa;
    use crate::trust::keys::NodeKey;

    #[test]
    fn certificates_of_this_ca_verify_and_name_their_node() {
        let ca = ClusterCa::create().unwrap();
        let anchor = CaAnchor::new(ca.cert()).unwrap();
        let node = NodeKey::generate().unwrap();
        let issued = ca.issue(&node.public(), 3600).unwrap();
        let now = UnixTime::now();
        assert_eq!(anchor.verify(&issued.der, now).unwrap(), (node.node_id(), node.public()));
        assert_eq!(node_of(&CertificateDer::from(issued.der.clone())), Some(node.node_id()));
        // Another CA's certificate, an expired one and garbage are refused.
        let other = ClusterCa::create().unwrap().issue(&node.public(), 3600).unwrap();
        assert!(anchor.verify(&other.der, now).is_err());
        let later = UnixTime::since_unix_epoch(std::time::Duration::from_secs(issued.not_after + 1));
        assert!(anchor.verify(&issued.der, later).is_err());
        assert!(anchor.verify(b"garbage", now).is_err());
        assert_eq!(anchor.public, CaAnchor::new(ca.cert()).unwrap().public);
    }
}
