//! Keeping this node's credentials current: renewing its certificate before it expires (a
//! manager renews its own and everyone's; a worker asks a manager over TLS), fetching the CA key
//! after a promotion and dropping it after a demotion, and deriving from the state what TLS and
//! the sealed channels trust (the revocation list, the gossip and join keys).

use std::collections::HashSet;
use std::sync::Arc;

use foca::Member;
use rustls::pki_types::UnixTime;

use super::broadcast::lock;
use super::crypto::{key_id, Purpose};
use super::engine::{Background, Engine};
use super::key_material::current_salts;
use super::member::MemberId;
use super::persist;
use super::start::{keyrings, save_credentials};
use super::tcp::ExchangeError;
use super::wire::TcpMessage;
use crate::identity::NodeId;
use crate::state::version::unix_millis;
use crate::state::{Change, KeyringStatus, Role};
use crate::trust::ca::{ClusterCa, IssuedCert};
use crate::trust::keys::PublicKey;
use crate::util::hex::Bytes;

impl Engine {
    /// Once a second: renew a certificate that is two thirds through its life, ask for gossip
    /// keys still missing, and follow a change of this node's role with the CA key.
    pub(super) fn maintain_credentials(&mut self) {
        let now = unix_millis() / 1000;
        if self.creds.cert.due_for_renewal(now) && !self.renewing {
            match &self.creds.ca {
                Some(ca) => match ca.issue(&self.creds.key.public(), self.cert_validity.as_secs().max(1)) {
                    Ok(cert) => self.use_cert(cert),
                    Err(error) => tracing::warn!(%error, "cannot renew this node's certificate"),
                },
                None => {
                    if let Some(manager) = self.random_manager() {
                        tracing::info!(manager = %manager.node, "renewing this node's certificate");
                        self.renewing = true;
                        self.spawn_exchange(
                            manager.node,
                            manager.addr,
                            TcpMessage::RenewRequest,
                            Background::Renewed,
                        );
                    }
                }
            }
        }
        // Keys a manager has not handed over yet (it was unreachable, or had not seen the
        // record yet): asked again every second.
        let salts = current_salts(&lock(&self.shared).state);
        if !self.held_keys.missing(&salts).is_empty() {
            self.follow_gossip_keys(&salts);
        }
        let role = lock(&self.shared).state.role_of(&self.node_id);
        match (role, self.creds.ca.is_some()) {
            (Role::Manager, false) if !self.fetching_ca => {
                if let Some(manager) = self.random_manager() {
                    tracing::info!(manager = %manager.node, "promoted: fetching the CA key");
                    self.fetching_ca = true;
                    self.spawn_exchange(
                        manager.node,
                        manager.addr,
                        TcpMessage::CaKeyRequest,
                        Background::CaKey,
                    );
                }
            }
            (Role::Worker, true) => {
                tracing::info!("demoted: forgetting the CA key");
                self.creds.ca = None;
                if let Err(error) = persist::forget_ca_key(&self.state_dir) {
                    tracing::warn!(%error, "cannot remove the CA key file");
                }
                self.refresh_trust();
            }
            _ => {}
        }
    }

    /// A member's renewal request (over TLS: `key` is the one its certificate proved).
    pub(super) fn renew_for(&self, node: NodeId, key: PublicKey) -> TcpMessage {
        let Some(ca) = &self.creds.ca else {
            return TcpMessage::Refused { reason: "this node does not hold the CA".into() };
        };
        if lock(&self.shared).state.nodes.get(&node).is_none() {
            return TcpMessage::Refused { reason: format!("{node} is not a member") };
        }
        match ca.issue(&key, self.cert_validity.as_secs().max(1)) {
            Ok(cert) => {
                tracing::info!(%node, "certificate renewed");
                TcpMessage::Renewed { cert }
            }
            Err(error) => TcpMessage::Refused { reason: error.to_string() },
        }
    }

    pub(super) fn renewed(&mut self, result: Result<TcpMessage, ExchangeError>) {
        self.renewing = false;
        match result {
            Ok(TcpMessage::Renewed { cert }) => match self.creds.anchor.verify(&cert.der, UnixTime::now()) {
                Ok((id, _)) if id == self.node_id => self.use_cert(cert),
                _ => tracing::warn!("a renewed certificate that is not this node's; ignored"),
            },
            Ok(other) => tracing::warn!(?other, "unexpected answer to a renewal"),
            Err(error) => tracing::warn!(%error, "certificate renewal failed; retrying"),
        }
    }

    /// Starts using `cert`: saved, in TLS for new connections, and in this node's record.
    fn use_cert(&mut self, cert: IssuedCert) {
        self.creds.cert = cert;
        if let Err(error) = save_credentials(&self.state_dir, &self.creds) {
            tracing::warn!(%error, "cannot save the renewed certificate");
        }
        match self.creds.tls(self.revoked.clone()) {
            Ok(configs) => self.tls.store(Arc::new(configs)),
            Err(error) => tracing::warn!(%error, "cannot build TLS with the renewed certificate"),
        }
        let record = lock(&self.shared).state.nodes.get(&self.node_id).cloned();
        if let Some(mut record) = record {
            record.cert = Bytes(self.creds.cert.der.clone());
            self.local_write(Change::Node { id: self.node_id, record: Some(record) });
        }
        tracing::info!(not_after = self.creds.cert.not_after, "using a renewed certificate");
    }

    pub(super) fn ca_key_fetched(&mut self, result: Result<TcpMessage, ExchangeError>) {
        self.fetching_ca = false;
        match result {
            Ok(TcpMessage::CaKey { key }) => match ClusterCa::load(self.creds.ca_cert.clone(), &key.0) {
                // The key must be the one the cluster's CA certificate names.
                Ok(ca) if ca.public() == self.creds.anchor.public => {
                    self.creds.ca = Some(Arc::new(ca));
                    if let Err(error) = save_credentials(&self.state_dir, &self.creds) {
                        tracing::warn!(%error, "cannot save the CA key");
                    }
                    tracing::info!("holding the CA key: this manager can admit nodes");
                    self.refresh_trust();
                }
                _ => tracing::warn!("a CA key that is not this cluster's; ignored"),
            },
            Ok(TcpMessage::Refused { reason }) => tracing::info!(reason, "CA key refused; retrying"),
            Ok(other) => tracing::warn!(?other, "unexpected answer to a CA key request"),
            Err(error) => tracing::debug!(%error, "fetching the CA key failed; retrying"),
        }
    }

    /// Derives from the state what the sealed channels and TLS trust: the gossip keys, the join
    /// keys (managers), the removed nodes. Reports a change of the gossip keys held in this
    /// node's record (what a key rotation waits for).
    pub(super) fn refresh_trust(&mut self) {
        let salts = current_salts(&lock(&self.shared).state);
        self.follow_gossip_keys(&salts);
        let (revoked, keys, status, record) = {
            let shared = lock(&self.shared);
            let revoked: HashSet<NodeId> = shared.state.revocations.live().map(|(id, _)| *id).collect();
            let keys = keyrings(&shared.state, &self.creds, &self.held_keys);
            // A rotation step is named by its salt's id; a node reports the ones it holds the
            // key of, and seals with the first of those.
            let status = shared.state.secrets.get(&()).map(|s| {
                let ids: Vec<u32> = s
                    .gossip_keys
                    .iter()
                    .filter(|salt| self.held_keys.holds(salt))
                    .map(|salt| key_id(Purpose::Gossip, salt))
                    .collect();
                KeyringStatus { sealing: ids.first().copied(), held: ids }
            });
            (revoked, keys, status, shared.state.nodes.get(&self.node_id).cloned())
        };
        if **self.revoked.load() != revoked {
            // Membership forgets a removed node at once: no probe, no gossip goes to it.
            let newly: Vec<Member<MemberId>> = self
                .foca
                .iter_membership_state()
                .filter(|m| revoked.contains(&m.id().node) && !self.revoked.load().contains(&m.id().node))
                .map(|m| Member::down(m.id().clone()))
                .collect();
            self.revoked.store(Arc::new(revoked));
            if let Err(error) = self.foca.apply_many(newly.into_iter(), false, &mut self.runtime) {
                tracing::debug!(%error, "removed nodes not declared down");
            }
        }
        if let Some(keys) = keys {
            let keys = Arc::new(keys);
            self.keys = keys.clone();
            self.keys_tx.send_replace(keys);
        }
        if let (Some(status), Some(mut record)) = (status, record) {
            if record.keyring != status {
                record.keyring = status;
                self.local_write(Change::Node { id: self.node_id, record: Some(record) });
            }
        }
    }
}
