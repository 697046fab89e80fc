//! `meshctl key rotate`: a new gossip key, installed everywhere, then used, then the old one
//! retired, each step only once every live node reports the one before (in its node record's
//! `keyring`). So no node ever receives a datagram sealed with a key it does not hold yet, and
//! none stops accepting the old key while someone still seals with it: no lost packet, no false
//! suspicion.
//!
//! What the record carries is a fresh random salt per key, not the key (see
//! `gossip::key_material`): each node derives the key (a manager) or asks a manager for it over
//! mutual TLS before it reports holding it, so a removed node, which TLS refuses, never learns
//! the key that replaces the one it knew. Nodes report the salts' ids.

use std::time::Duration;

use super::{ManagerError, Managers};
use crate::gossip::crypto::{key_id, Purpose};
use crate::identity::{NodeId, Secret};
use crate::state::Snapshot;

/// How long a step waits for every live node to confirm it.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Rotates the cluster's gossip key; `progress` hears what each step waits for.
pub async fn rotate(managers: &Managers, progress: impl Fn(&str)) -> Result<(), ManagerError> {
    managers.require_manager("rotate the gossip key")?;
    let handle = managers.gossip();
    let no_key = || ManagerError::Internal("the cluster has no gossip key".into());
    let current =
        handle.snapshot().state.secrets.get(&()).map(|s| s.gossip_keys.clone()).ok_or_else(no_key)?;
    let old = current.first().cloned().ok_or_else(no_key)?;
    let new = Secret::random().map_err(|e| ManagerError::Internal(format!("no random key: {e}")))?;
    let (old_id, new_id) = (key_id(Purpose::Gossip, &old), key_id(Purpose::Gossip, &new));

    progress("installing the new key on every node");
    managers.set_gossip_keys(vec![old.clone(), new.clone()]).await?;
    wait_for(handle, "hold the new key", |status| status.held.contains(&new_id)).await?;

    progress("sealing with the new key everywhere");
    managers.set_gossip_keys(vec![new.clone(), old]).await?;
    wait_for(handle, "seal with the new key", |status| status.sealing == Some(new_id)).await?;

    progress("retiring the old key");
    managers.set_gossip_keys(vec![new]).await?;
    wait_for(handle, "drop the old key", |status| !status.held.contains(&old_id)).await?;
    tracing::info!(key = format!("{new_id:08x}"), "gossip key rotated");
    Ok(())
}

/// Waits until every live node's keyring status satisfies `done`.
async fn wait_for(
    handle: &crate::gossip::GossipHandle,
    what: &str,
    done: impl Fn(&crate::state::KeyringStatus) -> bool,
) -> Result<(), ManagerError> {
    let mut snapshots = handle.subscribe();
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let lagging = lagging(&snapshots.borrow_and_update(), &done);
        if lagging.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout_at(deadline, snapshots.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(ManagerError::Gossip(crate::gossip::GossipError::Stopped)),
            Err(_) => {
                let names: Vec<String> = lagging.iter().map(NodeId::short).collect();
                return Err(ManagerError::Refused(format!(
                    "key rotation stopped: {} did not {what} within {}s; run `meshctl key rotate` again once they are reachable",
                    names.join(", "),
                    STEP_TIMEOUT.as_secs()
                )));
            }
        }
    }
}

/// The live nodes whose keyring does not satisfy `done` yet.
fn lagging(snapshot: &Snapshot, done: &impl Fn(&crate::state::KeyringStatus) -> bool) -> Vec<NodeId> {
    snapshot
        .state
        .nodes
        .live()
        .filter(|(id, record)| snapshot.liveness_of(id).is_up() && !record.left && !done(&record.keyring))
        .map(|(id, _)| *id)
        .collect()
}
