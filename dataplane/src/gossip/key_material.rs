//! The gossip keys themselves, kept out of the replicated state.
//!
//! The `secrets` record names the keys of the ring (primary first) by a random public salt per
//! rotation; the key a salt stands for is derived from the CA key (`ClusterCa::gossip_key`). A
//! manager derives it; every other member asks a manager for it over mutual TLS
//! (`TcpMessage::GossipKeysRequest`), which a removed node cannot open: its certificate is
//! refused. So a key never travels in gossip (nor sealed with the key it replaces), and a
//! removed node that still sees the record learns nothing from it.
//!
//! What a member holds is [`HeldKeys`] (`held_keys`, kept in `gossip-keys.json`).

use std::net::SocketAddr;
use std::time::Duration;

use rand::seq::IndexedRandom;

use super::broadcast::lock;
use super::engine::{Background, Engine};
use super::held_keys::HeldKeys;
use super::tcp::{self, ExchangeError};
use super::wire::{SaltedKey, TcpMessage};
use crate::identity::{NodeId, Secret};
use crate::state::{ClusterState, Role};
use crate::trust::tls::TlsConfigs;

/// How long one request for keys may take at start before the next manager is asked.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// The salts of the current `secrets` record (none before it is known).
pub(super) fn current_salts(state: &ClusterState) -> Vec<Secret> {
    state.secrets.get(&()).map(|s| s.gossip_keys.clone()).unwrap_or_default()
}

/// The managers that may hand this node keys: every other manager the state knows, not
/// removed, not gone.
pub(super) fn managers(state: &ClusterState, own: NodeId) -> Vec<(NodeId, SocketAddr)> {
    state
        .nodes
        .live()
        .filter(|(id, record)| {
            **id != own && !record.left && state.role_of(id) == Role::Manager && !state.is_revoked(id)
        })
        .map(|(id, record)| (*id, record.gossip_addr))
        .collect()
}

/// Asks `managers` in turn for the keys of `salts` until none is missing (at start: a joiner,
/// or a member restarted after a rotation it missed). What is still missing afterwards is
/// fetched by the agent in the background.
pub(super) async fn fetch_now(
    managers: &[(Option<NodeId>, SocketAddr)],
    tls: &TlsConfigs,
    salts: &[Secret],
    held: &mut HeldKeys,
) {
    for (node, addr) in managers {
        let missing = held.missing(salts);
        if missing.is_empty() {
            return;
        }
        let request = TcpMessage::GossipKeysRequest { salts: missing.clone() };
        match tokio::time::timeout(FETCH_TIMEOUT, tcp::exchange(*addr, *node, tls, &request)).await {
            Ok(Ok(TcpMessage::GossipKeys { keys })) => {
                keys.into_iter().filter(|k| missing.contains(&k.salt)).for_each(|k| {
                    held.insert(k);
                });
            }
            Ok(Ok(other)) => tracing::debug!(%addr, ?other, "unexpected answer to a gossip key request"),
            Ok(Err(error)) => tracing::debug!(%addr, %error, "gossip keys not fetched"),
            Err(_) => tracing::debug!(%addr, "gossip keys not fetched: timed out"),
        }
    }
}

impl Engine {
    /// Follows the `secrets` record: derives its keys (a manager), forgets retired ones, and
    /// asks a manager for those still missing. Whether the keys held changed.
    pub(super) fn follow_gossip_keys(&mut self, salts: &[Secret]) -> bool {
        if salts.is_empty() {
            return false;
        }
        let mut changed = match &self.creds.ca {
            Some(ca) => self.held_keys.derive(ca, salts),
            None => false,
        };
        changed |= self.held_keys.retain(salts);
        if changed {
            if let Err(error) = self.held_keys.save(&self.state_dir) {
                tracing::warn!(%error, "cannot save the gossip keys");
            }
        }
        if !self.held_keys.missing(salts).is_empty() {
            self.fetch_gossip_keys(salts);
        }
        changed
    }

    /// Asks a random manager for the keys this node lacks, over mutual TLS; the answer comes
    /// back as `Background::GossipKeys`.
    fn fetch_gossip_keys(&mut self, salts: &[Secret]) {
        if self.fetching_keys {
            return;
        }
        let managers = managers(&lock(&self.shared).state, self.node_id);
        let Some((node, addr)) = managers.choose(&mut rand::rng()).copied() else { return };
        tracing::debug!(manager = %node, "asking a manager for the gossip keys");
        self.fetching_keys = true;
        let request = TcpMessage::GossipKeysRequest { salts: self.held_keys.missing(salts) };
        self.spawn_exchange(node, addr, request, Background::GossipKeys);
    }

    pub(super) fn gossip_keys_fetched(&mut self, result: Result<TcpMessage, ExchangeError>) {
        self.fetching_keys = false;
        let salts = current_salts(&lock(&self.shared).state);
        match result {
            Ok(TcpMessage::GossipKeys { keys }) => {
                let mut changed = false;
                for key in keys.into_iter().filter(|k| salts.contains(&k.salt)) {
                    changed |= self.held_keys.insert(key);
                }
                if changed {
                    tracing::info!("holding the gossip keys a manager handed over");
                    if let Err(error) = self.held_keys.save(&self.state_dir) {
                        tracing::warn!(%error, "cannot save the gossip keys");
                    }
                    self.refresh_trust();
                }
            }
            Ok(other) => tracing::warn!(?other, "unexpected answer to a gossip key request"),
            Err(error) => tracing::debug!(%error, "fetching the gossip keys failed; retrying"),
        }
    }

    /// A member's request for gossip keys (over TLS, so it is a member and not a removed node):
    /// the keys of the requested salts the current record names, which only a manager derives.
    pub(super) fn gossip_keys_for(&self, node: NodeId, salts: Vec<Secret>) -> TcpMessage {
        let Some(ca) = &self.creds.ca else {
            return TcpMessage::Refused { reason: "this node does not hold the CA".into() };
        };
        // The TLS handshake proved a current certificate of this CA that is not revoked (a
        // joiner asks before its own node record has spread, so the record is not required).
        let state = &lock(&self.shared).state;
        if state.is_revoked(&node) {
            return TcpMessage::Refused { reason: format!("{node} was removed") };
        }
        let current = current_salts(state);
        let keys = salts
            .into_iter()
            .filter(|salt| current.contains(salt))
            .map(|salt| SaltedKey { key: ca.gossip_key(&salt), salt })
            .collect();
        TcpMessage::GossipKeys { keys }
    }
}
