//! What this node proves itself with: its key, its certificate from the cluster CA, and, on
//! managers, the CA itself. The TLS configurations are derived from them and rebuilt whenever
//! the certificate is renewed.

use std::sync::Arc;

use crate::identity::{Fingerprint, NodeId};
use crate::trust::ca::{self, ClusterCa, IssuedCert, JoinRole};
use crate::trust::certs::CaAnchor;
use crate::trust::keys::NodeKey;
use crate::trust::tls::{self, Revoked, TlsConfigs};

pub struct Credentials {
    pub key: Arc<NodeKey>,
    pub ca_cert: Vec<u8>,
    pub anchor: CaAnchor,
    pub cert: IssuedCert,
    /// The CA, on managers.
    pub ca: Option<Arc<ClusterCa>>,
    /// What the cluster was created with: told to joiners with their certificate.
    pub settings: crate::identity::ClusterSettings,
}

impl Credentials {
    pub fn node_id(&self) -> NodeId {
        self.key.node_id()
    }

    pub fn fingerprint(&self) -> Fingerprint {
        ca::fingerprint(&self.ca_cert)
    }

    pub fn tls(&self, revoked: Revoked) -> Result<TlsConfigs, rustls::Error> {
        tls::configs(&self.anchor, &self.key, &self.cert.der, revoked)
    }

    /// The secrets that admit a node as a worker and as a manager at `epochs`, if this node
    /// holds the CA.
    pub fn join_secrets(&self, epochs: crate::state::JoinEpochs) -> Option<JoinSecrets> {
        let ca = self.ca.as_ref()?;
        Some(JoinSecrets {
            worker: ca.join_secret(JoinRole::Worker, epochs.worker),
            manager: ca.join_secret(JoinRole::Manager, epochs.manager),
        })
    }
}

/// The current join secrets of both roles.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinSecrets {
    pub worker: [u8; 32],
    pub manager: [u8; 32],
}
