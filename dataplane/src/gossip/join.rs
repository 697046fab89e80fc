//! Joining a cluster, from both ends.
//!
//! The joiner sends, sealed with the key its token's secret gives: who it is (node ID, address,
//! name), its public key, and a proof (its signature over the cluster's fingerprint, its ID and
//! its key) that it holds the private half. A manager that can open the frame (only managers
//! can: the secrets are derived from the CA key) checks the proof, that the ID is the key's,
//! that the address is the one the request came from, and that the node was not removed; then
//! it certifies the key and answers with the CA certificate, the new certificate, the state
//! and the members (and the CA key, to a manager). The joiner checks the CA certificate against
//! its token's fingerprint before it trusts anything in the answer.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::credentials::Credentials;
use super::crypto::{Keyring, Purpose};
use super::member::MemberId;
use super::tcp::{self, ExchangeError, SharedGuard};
use super::wire::TcpMessage;
use crate::identity::{ClusterSettings, Fingerprint, JoinToken, NodeId, RequestedSettings, Secret};
use crate::state::{ClusterState, Signature, SignedDelta};
use crate::trust::ca::{IssuedCert, JoinRole};
use crate::trust::keys::{NodeKey, PublicKey};
use crate::util::hex::Bytes;

/// What a join proof signs, before the message.
const JOIN_DOMAIN: &[u8] = b"meshd-join-v1";

/// The message a joiner's key signs: the cluster it means to join, and who it says it is.
pub fn proof_message(fingerprint: &Fingerprint, member: &MemberId, key: &PublicKey) -> Vec<u8> {
    let member = postcard::to_allocvec(member).expect("postcard encodes a MemberId");
    [fingerprint_bytes(fingerprint).as_slice(), &member, &key.0].concat()
}

fn fingerprint_bytes(fingerprint: &Fingerprint) -> Vec<u8> {
    fingerprint.to_string().into_bytes()
}

/// What a successful join brings back.
pub struct Joined {
    pub ca_cert: Vec<u8>,
    /// The settings the cluster was created with.
    pub settings: ClusterSettings,
    pub cert: IssuedCert,
    pub ca_key: Option<Vec<u8>>,
    pub state: Vec<SignedDelta>,
    pub members: Vec<MemberId>,
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("cannot join the cluster: {0}")]
    Exchange(ExchangeError),
    #[error("the cluster at {addr} is not the one the join token is for (fingerprint mismatch)")]
    WrongCluster { addr: SocketAddr },
    #[error("the cluster at {addr} certified another key than this node's")]
    WrongCertificate { addr: SocketAddr },
    #[error("unexpected answer to a join request from {addr}")]
    Protocol { addr: SocketAddr },
    #[error("the manager at {addr} could not admit this node: {reason}")]
    Refused { addr: SocketAddr, reason: String },
    #[error("the cluster at {addr} sent unusable settings: {reason}")]
    Settings { addr: SocketAddr, reason: String },
}

/// What approves a node joining as a manager before it is admitted: the managers' Raft group,
/// which must record the new manager (`manager::serve`). Without a majority of managers, no
/// manager joins.
pub trait JoinGate: Send + Sync + 'static {
    fn approve_manager(&self, node: NodeId) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
}

/// Where the gate is installed, once, after gossip started.
pub type GateSlot = Arc<OnceLock<Arc<dyn JoinGate>>>;

/// Asks the manager at `addr` to admit this node, retrying with jittered exponential backoff
/// while it cannot be reached (it may be starting, or busy); a refusal (wrong token, not a
/// manager) or a bad answer is final.
pub async fn request(
    addr: SocketAddr,
    token: &JoinToken,
    key: &NodeKey,
    member: &MemberId,
    name: &str,
    settings: &RequestedSettings,
    guard: &SharedGuard,
) -> Result<Joined, JoinError> {
    let proof = Signature(key.sign(JOIN_DOMAIN, &proof_message(&token.fingerprint, member, &key.public())));
    let request = TcpMessage::JoinRequest {
        member: member.clone(),
        name: name.to_string(),
        key: key.public(),
        proof,
        settings: settings.clone(),
    };
    let ring = Keyring::new(Purpose::Join, std::slice::from_ref(&token.secret));
    const ATTEMPTS: u32 = 6;
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    let answer = loop {
        match tcp::exchange_join(addr, &ring, guard, &request).await {
            Ok(answer) => break answer,
            Err(error @ (ExchangeError::Connect { .. } | ExchangeError::Wire { .. }))
                if attempt < ATTEMPTS =>
            {
                let jitter = Duration::from_millis(u64::from(rand::random::<u16>() % 200));
                tracing::warn!(%error, attempt, "cannot reach the seed yet; retrying");
                tokio::time::sleep(delay + jitter).await;
                delay *= 2;
                attempt += 1;
            }
            Err(error) => return Err(JoinError::Exchange(error)),
        }
    };
    let (ca_cert, cert, ca_key, state, members, cluster_settings) = match answer {
        TcpMessage::JoinAccept { ca_cert, cert, ca_key, state, members, settings } => {
            (ca_cert, cert, ca_key, state, members, settings)
        }
        TcpMessage::Refused { reason } => return Err(JoinError::Refused { addr, reason }),
        _ => return Err(JoinError::Protocol { addr }),
    };
    if crate::trust::ca::fingerprint(&ca_cert.0) != token.fingerprint {
        return Err(JoinError::WrongCluster { addr });
    }
    let anchor = crate::trust::certs::CaAnchor::new(&ca_cert.0).map_err(|_| JoinError::Protocol { addr })?;
    match anchor.verify(&cert.der, rustls::pki_types::UnixTime::now()) {
        Ok((id, certified)) if id == key.node_id() && certified == key.public() => {}
        _ => return Err(JoinError::WrongCertificate { addr }),
    }
    // The manager checked the flags already; a settings record that does not hold up is refused
    // here before anything is saved.
    if let Err(error) = cluster_settings.validate() {
        return Err(JoinError::Settings { addr, reason: error.to_string() });
    }
    if let Some(reason) = settings.conflict(&cluster_settings) {
        return Err(JoinError::Settings { addr, reason });
    }
    Ok(Joined {
        ca_cert: ca_cert.0,
        settings: cluster_settings,
        cert,
        ca_key: ca_key.map(|k| k.0),
        state,
        members,
    })
}

/// What a manager grants a joiner it admits.
pub struct Admitted {
    pub node: crate::identity::NodeId,
    pub cert: IssuedCert,
    /// The CA key, for a manager (whose role the managers record before it is answered).
    pub ca_key: Option<Vec<u8>>,
}

/// A manager's decision on a join request. `Err` is the reason to refuse (logged; the joiner
/// sees the connection close).
pub fn admit(
    creds: &Credentials,
    state: &ClusterState,
    message: TcpMessage,
    role: JoinRole,
    peer: SocketAddr,
    cert_validity: Duration,
) -> Result<Admitted, String> {
    let TcpMessage::JoinRequest { member, name, key, proof, .. } = message else {
        return Err("not a join request".into());
    };
    let ca = creds.ca.as_ref().ok_or("this node does not hold the CA")?;
    if !key.verify(JOIN_DOMAIN, &proof_message(&creds.fingerprint(), &member, &key), &proof.0) {
        return Err("the join proof is not the key's".into());
    }
    let id = key.node_id();
    if member.node != id {
        return Err(format!("claims node ID {} for the key of {id}", member.node));
    }
    if member.addr.ip() != peer.ip() {
        return Err(format!("claims address {} but connects from {}", member.addr, peer.ip()));
    }
    if state.is_revoked(&id) {
        return Err(format!("{id} was removed from the cluster; it may join only as a new node"));
    }
    let cert = ca.issue(&key, cert_validity.as_secs().max(1)).map_err(|e| e.to_string())?;
    tracing::info!(node = %id, name, %peer, ?role, "admitting a node");
    Ok(Admitted { node: id, cert, ca_key: (role == JoinRole::Manager).then(|| ca.key_pkcs8().to_vec()) })
}

/// Why a joiner's flags cannot join this cluster, told to it (the request opened with a join
/// secret, so the asker holds a token): a cluster-wide setting it gives with another value
/// than the cluster's, or a gossip port that is the cluster's data path port (the VXLAN socket
/// and the gossip socket would both want it).
pub fn settings_conflict(settings: &ClusterSettings, message: &TcpMessage) -> Option<String> {
    let TcpMessage::JoinRequest { member, settings: requested, .. } = message else {
        return None;
    };
    if let Some(reason) = requested.conflict(settings) {
        return Some(reason);
    }
    (member.addr.port() == settings.data_path_port).then(|| {
        format!(
            "this node's gossip port {} is the cluster's data path (VXLAN) port: start it with another --listen-port",
            member.addr.port()
        )
    })
}

/// The answer to an admitted joiner: the CA's certificate, its own, the state and the members.
pub fn accept(
    creds: &Credentials,
    admitted: Admitted,
    state: Vec<SignedDelta>,
    members: Vec<MemberId>,
) -> TcpMessage {
    TcpMessage::JoinAccept {
        ca_cert: Bytes(creds.ca_cert.clone()),
        cert: admitted.cert,
        ca_key: admitted.ca_key.map(Bytes),
        state,
        members,
        settings: creds.settings.clone(),
    }
}

/// The join secret of a token, as a keyring secret.
pub fn secret(bytes: [u8; 32]) -> Secret {
    Secret::from_bytes(bytes)
}
