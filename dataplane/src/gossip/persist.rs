//! What a member keeps in its state directory so a restart (or a whole-cluster restart) loses
//! nothing: which cluster it belongs to, and the last state it saw.
//!
//! - `cluster.json`: the cluster ID. Present exactly while the node is a member; removed on leave.
//! - `state.json`: every state entry as deltas (secrets included: they are needed to talk to the
//!   cluster after a restart, hence mode 0600 like everything in the state directory).

use serde::{Deserialize, Serialize};

use crate::identity::Secret;
use crate::state::Delta;
use crate::state_dir::{StateDir, StateDirError};

const CLUSTER_FILE: &str = "cluster.json";
const STATE_FILE: &str = "state.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterFile {
    pub cluster_id: Secret,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateFile {
    pub deltas: Vec<Delta>,
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

/// Forgets the cluster (after a leave): the next start creates or joins one afresh.
pub fn forget_cluster(dir: &StateDir) -> Result<(), StateDirError> {
    dir.remove(CLUSTER_FILE)?;
    dir.remove(STATE_FILE)
}
