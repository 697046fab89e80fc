//! What a member keeps in its state directory so a restart (or a whole-cluster restart) loses
//! nothing:
//!
//! - `cluster.json`: the cluster CA's certificate, this node's certificate and the cluster-wide
//!   settings the cluster was created with (`identity::settings`). Present exactly while the
//!   node is a member; removed on leave.
//! - `ca.key`: the CA's key, on managers only (mode 0600).
//! - `gossip-keys.json`: the gossip keys this node holds (mode 0600; see `key_material`).
//! - `state.json`: every state entry with its writer's signature. Checked again on load like any
//!   delta from another node: a tampered file cannot put anything into the state.
//!
//! `node.key` (the node's own key) is the state directory's (`state_dir`): it outlives a leave.

use serde::{Deserialize, Serialize};

use crate::identity::ClusterSettings;
use crate::state::SignedDelta;
use crate::state_dir::{StateDir, StateDirError};
use crate::trust::ca::IssuedCert;
use crate::util::hex::Bytes;

const CLUSTER_FILE: &str = "cluster.json";
const STATE_FILE: &str = "state.json";
const CA_KEY_FILE: &str = "ca.key";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterFile {
    pub ca_cert: Bytes,
    pub cert: IssuedCert,
    /// Absent in a file written before settings existed: such a cluster runs on the defaults.
    #[serde(default)]
    pub settings: ClusterSettings,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateFile {
    pub deltas: Vec<SignedDelta>,
}

pub fn load_cluster(dir: &StateDir) -> Result<Option<ClusterFile>, StateDirError> {
    dir.read_json(CLUSTER_FILE)
}

pub fn save_cluster(dir: &StateDir, file: &ClusterFile) -> Result<(), StateDirError> {
    dir.write_json(CLUSTER_FILE, file)
}

pub fn load_state(dir: &StateDir) -> Result<StateFile, StateDirError> {
    Ok(dir.read_json(STATE_FILE)?.unwrap_or_default())
}

pub fn save_state(dir: &StateDir, file: &StateFile) -> Result<(), StateDirError> {
    dir.write_json(STATE_FILE, file)
}

pub fn load_ca_key(dir: &StateDir) -> Result<Option<Vec<u8>>, StateDirError> {
    dir.read_bytes(CA_KEY_FILE)
}

pub fn save_ca_key(dir: &StateDir, key: &[u8]) -> Result<(), StateDirError> {
    dir.write_bytes(CA_KEY_FILE, key)
}

/// Forgets the CA key (a demoted manager keeps no more of it than a worker).
pub fn forget_ca_key(dir: &StateDir) -> Result<(), StateDirError> {
    dir.remove(CA_KEY_FILE)
}

/// Forgets the cluster (after a leave): the next start creates or joins one afresh.
pub fn forget_cluster(dir: &StateDir) -> Result<(), StateDirError> {
    dir.remove(CLUSTER_FILE)?;
    dir.remove(CA_KEY_FILE)?;
    super::held_keys::HeldKeys::forget(dir)?;
    dir.remove(STATE_FILE)
}
