//! Publishing what the gossip agent knows: a new snapshot after every change (with the keyrings
//! it implies), logged where an operator wants to see it, and persisted at most once a second.

use std::sync::Arc;

use super::broadcast::lock;
use super::engine::Engine;
use super::persist::{self, StateFile};
use crate::state::{Liveness, Snapshot};

impl Engine {
    pub(super) fn publish_if_changed(&mut self) {
        let dirty = std::mem::take(&mut lock(&self.shared).dirty);
        if dirty {
            self.refresh_trust();
            self.publish();
        }
    }

    pub(super) fn publish(&mut self) {
        let state = lock(&self.shared).state.clone();
        let liveness = self.liveness();
        self.published_liveness = liveness.clone();
        let snapshot = Snapshot { self_id: self.node_id, cluster: self.creds.fingerprint(), state, liveness };
        log_changes(&self.snapshot_tx.borrow(), &snapshot);
        self.snapshot_tx.send_replace(Arc::new(snapshot));
        // Written at the next housekeeping tick: at most one write a second however busy gossip is.
        self.needs_persist = true;
    }

    pub(super) fn persist(&mut self) {
        let file = StateFile { deltas: lock(&self.shared).state.dump_signed() };
        match persist::save_state(&self.state_dir, &file) {
            Ok(()) => self.needs_persist = false,
            Err(error) => tracing::warn!(%error, "cannot save the cluster state"),
        }
    }
}

/// Logs what an operator (or a benchmark reading the logs) wants to see change: a node turning
/// suspect, availability and role changes, removals, new networks and services, on every node
/// that learns of them. Up and down are logged where foca reports them.
fn log_changes(before: &Snapshot, after: &Snapshot) {
    for (id, live) in &after.liveness {
        if *live == Liveness::Suspect && before.liveness.get(id) != Some(&Liveness::Suspect) {
            tracing::info!(node = %id, "member suspect");
        }
    }
    for (id, availability) in after.state.availability.live() {
        if before.state.availability_of(id) != *availability {
            tracing::info!(node = %id, %availability, "availability changed");
        }
    }
    for (id, _) in after.state.nodes.live() {
        let role = after.state.role_of(id);
        if before.state.nodes.get(id).is_some() && before.state.role_of(id) != role {
            tracing::info!(node = %id, %role, "role changed");
        }
    }
    for (name, record) in after.state.networks.live() {
        if before.state.networks.get(name).is_none() {
            tracing::info!(network = %name, subnet = %record.subnet, "network created");
        }
    }
    for (name, record) in after.state.services.live() {
        if before.state.services.get(name).is_none() {
            tracing::info!(service = %name, network = %record.network, "service created");
        }
    }
    for (id, _) in after.state.revocations.live() {
        if !before.state.is_revoked(id) {
            tracing::info!(node = %id, "node removed from the cluster");
        }
    }
}
