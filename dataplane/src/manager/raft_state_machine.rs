//! The state machine openraft drives: the committed commands applied to a [`Decided`], in log
//! order, the same on every manager. Each new `Decided` is published on a `watch` channel (the
//! leader's mirror and the API read it there), and snapshots are saved in `raft-snapshot` so a
//! restarted manager starts from its last one and replays only the entries after it.

use std::io;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::decisions::{Decided, Decision};
use super::files::{read_value, write_value};
use super::types::RaftTypes;
use crate::state_dir::StateDir;

type LogId = LogIdOf<RaftTypes>;
type Meta = SnapshotMetaOf<RaftTypes>;
type Membership = StoredMembershipOf<RaftTypes>;
type Snapshot = SnapshotOf<RaftTypes, Vec<u8>>;

pub const SNAPSHOT_FILE: &str = "raft-snapshot";

/// A member of the managers' group, over this state machine.
pub type Raft = openraft::Raft<RaftTypes, StateMachine>;

/// What `raft-snapshot` holds.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: Meta,
    data: Vec<u8>,
}

struct Inner {
    dir: Arc<StateDir>,
    last_applied: Option<LogId>,
    membership: Membership,
    decided: Decided,
    current: Option<(Meta, Vec<u8>)>,
}

/// The state machine: cheap to clone.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    published: watch::Sender<Arc<Decided>>,
}

impl StateMachine {
    /// Opens the state machine saved in `dir`: the last snapshot, or nothing.
    pub fn open(dir: Arc<StateDir>, published: watch::Sender<Arc<Decided>>) -> io::Result<StateMachine> {
        let saved: Option<SnapshotFile> = read_value(&dir, SNAPSHOT_FILE)?;
        let (last_applied, membership, decided, current) = match saved {
            Some(file) => {
                let decided: Decided = decode(&file.data)?;
                (
                    file.meta.last_log_id,
                    file.meta.last_membership.clone(),
                    decided,
                    Some((file.meta, file.data)),
                )
            }
            None => (None, Membership::default(), Decided::default(), None),
        };
        published.send_replace(Arc::new(decided.clone()));
        let inner = Inner { dir, last_applied, membership, decided, current };
        Ok(StateMachine { inner: Arc::new(Mutex::new(inner)), published })
    }

    pub fn remove_files(dir: &StateDir) -> io::Result<()> {
        dir.remove(SNAPSHOT_FILE).map_err(io::Error::other)
    }

    /// The snapshot saved in `dir`, read without starting anything (recovery and backup).
    pub fn read_saved(dir: &StateDir) -> io::Result<Option<(Meta, Decided)>> {
        let saved: Option<SnapshotFile> = read_value(dir, SNAPSHOT_FILE)?;
        saved.map(|file| Ok((file.meta, decode(&file.data)?))).transpose()
    }

    /// Replaces the saved snapshot with `decided` as of `meta` (recovery and restore write the
    /// state a member starts from; nothing may run on `dir` meanwhile).
    pub fn save(dir: &StateDir, meta: Meta, decided: &Decided) -> io::Result<()> {
        let data = postcard::to_allocvec(decided).map_err(io::Error::other)?;
        write_value(dir, SNAPSHOT_FILE, &SnapshotFile { meta, data })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn decode(bytes: &[u8]) -> io::Result<Decided> {
    postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

impl RaftSnapshotBuilder<RaftTypes> for StateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let mut inner = self.lock();
        let data = postcard::to_allocvec(&inner.decided).map_err(io::Error::other)?;
        let meta = Meta { last_log_id: inner.last_applied, last_membership: inner.membership.clone() };
        write_value(&inner.dir, SNAPSHOT_FILE, &SnapshotFile { meta: meta.clone(), data: data.clone() })?;
        inner.current = Some((meta.clone(), data.clone()));
        Ok(Snapshot { meta, snapshot: data })
    }
}

impl RaftStateMachine<RaftTypes> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), io::Error> {
        let inner = self.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<RaftTypes>, io::Error>> + Unpin + Send,
    {
        let mut changed = false;
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let decision = {
                let mut inner = self.lock();
                inner.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => Decision::Done,
                    EntryPayload::Normal(command) => {
                        changed = true;
                        let decision = inner.decided.apply(command.clone());
                        tracing::debug!(%command, %decision, index = entry.log_id.index, "applied");
                        decision
                    }
                    EntryPayload::Membership(membership) => {
                        inner.membership = Membership::new(Some(entry.log_id), membership);
                        Decision::Done
                    }
                }
            };
            if let Some(responder) = responder {
                responder.send(decision);
            }
        }
        if changed {
            let decided = Arc::new(self.lock().decided.clone());
            self.published.send_replace(decided);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &Meta, snapshot: Vec<u8>) -> Result<(), io::Error> {
        let decided = decode(&snapshot)?;
        {
            let mut inner = self.lock();
            write_value(
                &inner.dir,
                SNAPSHOT_FILE,
                &SnapshotFile { meta: meta.clone(), data: snapshot.clone() },
            )?;
            inner.decided = decided.clone();
            inner.last_applied = meta.last_log_id;
            inner.membership = meta.last_membership.clone();
            inner.current = Some((meta.clone(), snapshot));
        }
        self.published.send_replace(Arc::new(decided));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let inner = self.lock();
        Ok(inner.current.as_ref().map(|(meta, data)| Snapshot { meta: meta.clone(), snapshot: data.clone() }))
    }
}
