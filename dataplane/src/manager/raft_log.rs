//! The Raft log and vote, durable in the state directory: a manager that restarts comes back
//! with everything it acknowledged (a vote or an entry forgotten could let it vote twice or lose
//! a committed decision).
//!
//! - `raft-log`: the entries, appended as `| length (u32, BE) | postcard |` records and synced
//!   before openraft is told they are durable. Truncating or purging (rare: after a leader
//!   change, or a snapshot) rewrites the file atomically. A torn last record (a crash
//!   mid-append, never acknowledged) is dropped when the file is read.
//! - `raft-vote`, `raft-committed`, `raft-purged`: one small value each, written atomically.
//!
//! File I/O is synchronous: the writes are small, infrequent control-plane events, and an fsync
//! must complete before the entry counts anyway.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader};

use super::files::{read_value, write_value};
use super::types::RaftTypes;
use crate::state_dir::StateDir;

type Entry = EntryOf<RaftTypes>;
type LogId = LogIdOf<RaftTypes>;
type Vote = VoteOf<RaftTypes>;

pub const LOG_FILE: &str = "raft-log";
pub const VOTE_FILE: &str = "raft-vote";
pub const COMMITTED_FILE: &str = "raft-committed";
pub const PURGED_FILE: &str = "raft-purged";
/// The largest record accepted when reading the log back (a snapshot of the whole state goes
/// in `raft-snapshot`, never in the log).
const MAX_RECORD: usize = 16 * 1024 * 1024;

struct Inner {
    dir: Arc<StateDir>,
    last_purged: Option<LogId>,
    entries: BTreeMap<u64, Entry>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    /// The log file, open for appending.
    file: File,
}

/// The log store: cheap to clone (openraft takes one as its reader).
#[derive(Clone)]
pub struct LogStore(Arc<Mutex<Inner>>);

impl LogStore {
    /// Opens the log saved in `dir` (empty for a manager that never was one).
    pub fn open(dir: Arc<StateDir>) -> io::Result<LogStore> {
        let last_purged: Option<LogId> = read_value(&dir, PURGED_FILE)?;
        let vote: Option<Vote> = read_value(&dir, VOTE_FILE)?;
        // Saved as the `Option` openraft hands over (it may say "nothing committed").
        let committed: Option<LogId> = read_value::<Option<LogId>>(&dir, COMMITTED_FILE)?.flatten();
        let path = dir.path().join(LOG_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let (entries, good) = decode_records(&bytes);
        let floor = last_purged.map(|p| p.index + 1).unwrap_or(0);
        let entries: BTreeMap<u64, Entry> =
            entries.into_iter().filter(|e| e.log_id.index >= floor).map(|e| (e.log_id.index, e)).collect();
        if good != bytes.len() {
            tracing::warn!(dropped = bytes.len() - good, "the Raft log ended in a torn record; dropped it");
        }
        let file = rewrite(&dir, entries.values())?;
        tracing::debug!(entries = entries.len(), ?last_purged, "Raft log loaded");
        Ok(LogStore(Arc::new(Mutex::new(Inner { dir, last_purged, entries, vote, committed, file }))))
    }

    /// Whether anything was ever stored (a vote or an entry): a manager with an empty store has
    /// never been in a group.
    pub fn is_empty(&self) -> bool {
        let inner = self.lock();
        inner.vote.is_none() && inner.entries.is_empty() && inner.last_purged.is_none()
    }

    /// Removes every file of the log (a manager demoted, whose group no longer includes it).
    pub fn remove_files(dir: &StateDir) -> io::Result<()> {
        for name in [LOG_FILE, VOTE_FILE, COMMITTED_FILE, PURGED_FILE] {
            dir.remove(name).map_err(io::Error::other)?;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RaftLogReader<RaftTypes> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self.lock().entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.lock().vote)
    }
}

impl RaftLogStorage<RaftTypes> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<RaftTypes>, io::Error> {
        let inner = self.lock();
        let last = inner.entries.values().next_back().map(|e| e.log_id).or(inner.last_purged);
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let mut inner = self.lock();
        write_value(&inner.dir, VOTE_FILE, vote)?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let mut inner = self.lock();
        write_value(&inner.dir, COMMITTED_FILE, &committed)?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<RaftTypes>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let result = {
            let mut inner = self.lock();
            let mut buf = Vec::new();
            let entries: Vec<Entry> = entries.into_iter().collect();
            for entry in &entries {
                encode_record(&mut buf, entry)?;
            }
            let written = inner.file.write_all(&buf).and_then(|()| inner.file.sync_data());
            if written.is_ok() {
                for entry in entries {
                    inner.entries.insert(entry.log_id.index, entry);
                }
            }
            written
        };
        let failed = result.as_ref().err().map(|e| io::Error::new(e.kind(), e.to_string()));
        callback.io_completed(result);
        match failed {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    async fn truncate_after(&mut self, last: Option<LogId>) -> Result<(), io::Error> {
        let mut inner = self.lock();
        let from = last.map(|l| l.index + 1).unwrap_or(0);
        let _ = inner.entries.split_off(&from);
        inner.file = rewrite(&inner.dir, inner.entries.values())?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let mut inner = self.lock();
        // The purge point first: were the log rewritten first and the process died, the
        // entries below it would be missing with nothing saying so.
        write_value(&inner.dir, PURGED_FILE, &log_id)?;
        inner.entries = inner.entries.split_off(&(log_id.index + 1));
        inner.last_purged = Some(log_id);
        inner.file = rewrite(&inner.dir, inner.entries.values())?;
        Ok(())
    }
}

fn encode_record(buf: &mut Vec<u8>, entry: &Entry) -> io::Result<()> {
    let body = postcard::to_allocvec(entry).map_err(io::Error::other)?;
    if body.len() > MAX_RECORD {
        return Err(io::Error::other(format!("a Raft entry of {} bytes", body.len())));
    }
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    Ok(())
}

/// The whole records of `bytes`, and how many bytes they span (the rest is a torn tail).
fn decode_records(bytes: &[u8]) -> (Vec<Entry>, usize) {
    let mut entries = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 4 {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        if len > MAX_RECORD || bytes.len() - at - 4 < len {
            break;
        }
        match postcard::from_bytes::<Entry>(&bytes[at + 4..at + 4 + len]) {
            Ok(entry) => entries.push(entry),
            Err(_) => break,
        }
        at += 4 + len;
    }
    (entries, at)
}

/// Writes `entries` as the whole log, atomically, and opens it for appending.
fn rewrite<'a>(dir: &StateDir, entries: impl Iterator<Item = &'a Entry>) -> io::Result<File> {
    let mut buf = Vec::new();
    for entry in entries {
        encode_record(&mut buf, entry)?;
    }
    dir.write_bytes(LOG_FILE, &buf).map_err(io::Error::other)?;
    OpenOptions::new().append(true).mode(0o600).open(dir.path().join(LOG_FILE))
}

/// Where the log of `dir` lives (for messages).
pub fn log_path(dir: &StateDir) -> PathBuf {
    dir.path().join(LOG_FILE)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use arc_swap::ArcSwap;
    use tokio::sync::watch;

    use super::*;
    use crate::manager::decisions::{Action, Command, Decided, Decision};
    use crate::manager::raft_state_machine::Raft;
    use crate::manager::raft_state_machine::StateMachine;
    use crate::manager::transport::Network;
    use crate::manager::types::{self, ManagerNode};
    use crate::state::validate::vni_for;
    use crate::state::NetworkRecord;
    use crate::trust::ca::ClusterCa;
    use crate::trust::certs::CaAnchor;
    use crate::trust::keys::NodeKey;
    use crate::trust::tls;

    fn network(name: &str, octet: u8) -> Action {
        let record = NetworkRecord {
            subnet: format!("10.{octet}.0.0/24").parse().unwrap(),
            vni: vni_for(name),
            options: Default::default(),
        };
        Action::CreateNetwork { name: name.into(), record }
    }

    /// A manager alone: its Raft member over the state directory `dir`.
    async fn start(
        dir: &Arc<StateDir>,
        key: &NodeKey,
        tls: &crate::gossip::tcp::SharedTls,
    ) -> (Raft, watch::Receiver<Arc<Decided>>) {
        let (decided_tx, decided) = watch::channel(Arc::new(Decided::default()));
        let log = LogStore::open(dir.clone()).unwrap();
        let machine = StateMachine::open(dir.clone(), decided_tx).unwrap();
        let raft = Raft::new(key.node_id(), types::config(), Network { tls: tls.clone() }, log, machine)
            .await
            .unwrap();
        (raft, decided)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_managers_decisions_survive_restarts_snapshots_and_a_torn_log() {
        let path =
            std::env::temp_dir().join(format!("meshd-raft-{}-{}", std::process::id(), rand::random::<u32>()));
        let ca = ClusterCa::create().unwrap();
        let key = NodeKey::generate().unwrap();
        let cert = ca.issue(&key.public(), 3600).unwrap();
        let revoked = Arc::new(ArcSwap::from_pointee(HashSet::new()));
        let configs = tls::configs(&CaAnchor::new(ca.cert()).unwrap(), &key, &cert.der, revoked).unwrap();
        let tls = Arc::new(ArcSwap::from_pointee(configs));
        let me = key.node_id();
        let command = |id: u64, action: Action| Command { id, by: me, action };

        let dir = Arc::new(StateDir::open(&path).unwrap());
        let (raft, _) = start(&dir, &key, &tls).await;
        let node = ManagerNode { addr: "127.0.0.1:7946".parse().unwrap() };
        raft.initialize(BTreeMap::from([(me, node)])).await.unwrap();
        raft.wait(Some(std::time::Duration::from_secs(5))).current_leader(me, "leader").await.unwrap();
        for (id, name) in [(1, "a"), (2, "b")] {
            let answer = raft.client_write(command(id, network(name, id as u8))).await.unwrap();
            assert_eq!(answer.data, Decision::Done);
        }
        raft.shutdown().await.unwrap();

        // Restarted: the log is replayed.
        let (raft, decided) = start(&dir, &key, &tls).await;
        raft.wait(Some(std::time::Duration::from_secs(5)))
            .applied_index_at_least(Some(3), "replayed")
            .await
            .unwrap();
        assert_eq!(decided.borrow().networks.keys().collect::<Vec<_>>(), ["a", "b"]);
        // A retried command (same id) is answered as before and changes nothing.
        let again = raft.client_write(command(2, network("b", 2))).await.unwrap();
        assert_eq!(again.data, Decision::Done);
        assert!(matches!(
            raft.client_write(command(3, network("b", 9))).await.unwrap().data,
            Decision::Refused(_)
        ));
        raft.trigger().snapshot().await.unwrap();
        raft.wait(Some(std::time::Duration::from_secs(5)))
            .metrics(|m| m.snapshot.is_some(), "snapshot")
            .await
            .unwrap();
        raft.client_write(command(4, network("c", 4))).await.unwrap();
        raft.shutdown().await.unwrap();
        // A crash mid-append leaves half a record: dropped, the rest stands.
        let mut file = OpenOptions::new().append(true).open(log_path(&dir)).unwrap();
        file.write_all(&[0, 0, 0, 200, 1, 2, 3]).unwrap();
        drop(file);

        // Restarted again: the snapshot, then the entries after it.
        let (raft, decided) = start(&dir, &key, &tls).await;
        raft.wait(Some(std::time::Duration::from_secs(5)))
            .applied_index_at_least(Some(6), "replayed")
            .await
            .unwrap();
        assert_eq!(decided.borrow().networks.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        raft.shutdown().await.unwrap();
        drop(dir);
        std::fs::remove_dir_all(&path).unwrap();
    }
}
