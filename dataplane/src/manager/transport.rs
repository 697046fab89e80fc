//! Raft's messages between managers, over gossip's mutual-TLS channels (`tls_channel::server`): the
//! certificate proves which node sends, and the channel stays open for the heartbeats.
//!
//! openraft drives one client per peer, one RPC at a time; each holds one [`Channel`]. Errors
//! are reported per call (a peer that refuses connections is `Unreachable`, and openraft backs
//! off), never at client creation.

use std::future::Future;
use std::io;
use std::time::Duration;

use openraft::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::errors::{
    Fatal, NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::decisions::{Command, Decision};
use super::types::{ManagerNode, RaftTypes};
use crate::gossip::tcp::{ExchangeError, SharedTls};
use crate::identity::NodeId;
use crate::tls_channel::client::Channel;

/// A request on a managers' channel.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Append(AppendEntriesRequest<RaftTypes>),
    Vote(VoteRequest<RaftTypes>),
    PreVote(VoteRequest<RaftTypes>),
    /// A whole snapshot in one frame: the decided state is small (cluster-wide records only).
    Snapshot {
        vote: VoteOf<RaftTypes>,
        meta: SnapshotMetaOf<RaftTypes>,
        data: Vec<u8>,
    },
    /// A command for the leader: from a manager that is not the leader, or a worker that needs
    /// an address block.
    Propose(Command),
    /// Whether this node answers at all, and runs a member of the group: what
    /// `meshd --force-new-cluster` asks every other member before it forks the group (an old
    /// meshd that cannot decode it answers `Refused`, which says as much). Added last: the
    /// variants before keep their numbers.
    Probe,
}

/// The answer to a [`Request`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Append(Result<AppendEntriesResponse<RaftTypes>, RaftError<RaftTypes>>),
    Vote(Result<VoteResponse<RaftTypes>, RaftError<RaftTypes>>),
    Snapshot(Result<SnapshotResponse<RaftTypes>, Fatal<RaftTypes>>),
    /// What the group decided, and the index of the entry that decided it.
    Proposed(Result<(Decision, u64), ProposeFailure>),
    /// Not a request this peer may make here (not a manager, or no group here).
    Refused(String),
    /// The answer to [`Request::Probe`]: whether this node runs a member of the group.
    Probe {
        member: bool,
    },
}

/// Why a proposal sent to another manager did not come back decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposeFailure {
    /// That manager is not the leader; the leader it knows, if any.
    NotLeader(Option<(NodeId, ManagerNode)>),
    /// It could not reach a majority in time.
    NoMajority,
    /// Anything else, said plainly.
    Failed(String),
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("postcard encodes the managers' messages")
}

pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// Sends `request` on `channel` and decodes the answer.
pub async fn call(
    channel: &mut Channel,
    tls: &SharedTls,
    request: &Request,
    deadline: Duration,
) -> Result<Response, ExchangeError> {
    let tls = tls.load_full();
    let reply = channel.call(&tls, encode(request), deadline).await?;
    decode(&reply).map_err(|e| ExchangeError::RefusedWithReason {
        addr: channel.addr(),
        reason: format!("undecodable managers' reply: {e}"),
    })
}

/// Creates openraft's per-peer clients.
pub struct Network {
    pub tls: SharedTls,
}

impl RaftNetworkFactory<RaftTypes> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &ManagerNode) -> Peer {
        Peer { channel: Channel::new(node.addr, target), tls: self.tls.clone() }
    }
}

/// One peer's client.
pub struct Peer {
    channel: Channel,
    tls: SharedTls,
}

/// The shortest deadline of one exchange. openraft gives appends and heartbeats one heartbeat
/// interval; on a loaded host a follower's fsync alone can take longer, and a timed-out exchange
/// tears the channel down (a late answer could not be told from the next one). Half the
/// shortest election timeout still answers (or fails) before any follower gives up on the leader.
const MIN_DEADLINE: Duration = Duration::from_millis(super::types::ELECTION_TIMEOUT_MIN_MS / 2);

fn deadline(option: &RPCOption) -> Duration {
    option.hard_ttl().max(MIN_DEADLINE)
}

impl Peer {
    async fn send<E: std::error::Error>(
        &mut self,
        request: &Request,
        option: &RPCOption,
    ) -> Result<Response, RPCError<RaftTypes, E>> {
        call(&mut self.channel, &self.tls, request, deadline(option)).await.map_err(rpc_error)
    }
}

/// A refused or unreachable connection lets openraft back off; anything else is retried.
fn rpc_error<E: std::error::Error>(error: ExchangeError) -> RPCError<RaftTypes, E> {
    let io = io::Error::other(error.to_string());
    match error {
        ExchangeError::Connect { .. } | ExchangeError::Refused { .. } => {
            RPCError::Unreachable(Unreachable::new(&io))
        }
        _ => RPCError::Network(NetworkError::new(&io)),
    }
}

fn unexpected<E: std::error::Error>(response: Response) -> RPCError<RaftTypes, E> {
    let reason = match response {
        Response::Refused(reason) => reason,
        other => format!("unexpected answer {other:?}"),
    };
    RPCError::Network(NetworkError::new(&io::Error::other(reason)))
}

impl RaftNetworkV2<RaftTypes> for Peer {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<RaftTypes>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<RaftTypes>, RPCError<RaftTypes>> {
        match self.send(&Request::Append(rpc), &option).await? {
            Response::Append(Ok(response)) => Ok(response),
            Response::Append(Err(e)) => Err(RPCError::Network(NetworkError::new(&e))),
            other => Err(unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<RaftTypes>,
        option: RPCOption,
    ) -> Result<VoteResponse<RaftTypes>, RPCError<RaftTypes>> {
        match self.send(&Request::Vote(rpc), &option).await? {
            Response::Vote(Ok(response)) => Ok(response),
            Response::Vote(Err(e)) => Err(RPCError::Network(NetworkError::new(&e))),
            other => Err(unexpected(other)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<RaftTypes>,
        option: RPCOption,
    ) -> Result<VoteResponse<RaftTypes>, RPCError<RaftTypes>> {
        match self.send(&Request::PreVote(rpc), &option).await? {
            Response::Vote(Ok(response)) => Ok(response),
            Response::Vote(Err(e)) => Err(RPCError::Network(NetworkError::new(&e))),
            other => Err(unexpected(other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<RaftTypes>,
        snapshot: SnapshotOf<RaftTypes, Vec<u8>>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<RaftTypes>, StreamingError<RaftTypes>> {
        let request = Request::Snapshot { vote, meta: snapshot.meta, data: snapshot.snapshot };
        let sent = tokio::select! {
            sent = call(&mut self.channel, &self.tls, &request, deadline(&option)) => sent,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        match sent {
            Ok(Response::Snapshot(Ok(response))) => Ok(response),
            Ok(Response::Snapshot(Err(fatal))) => Err(StreamingError::Network(NetworkError::new(&fatal))),
            Ok(other) => Err(StreamingError::Network(NetworkError::new(&io::Error::other(format!(
                "unexpected answer {other:?}"
            ))))),
            Err(error @ (ExchangeError::Connect { .. } | ExchangeError::Refused { .. })) => {
                Err(StreamingError::Unreachable(Unreachable::new(&io::Error::other(error.to_string()))))
            }
            Err(error) => {
                Err(StreamingError::Network(NetworkError::new(&io::Error::other(error.to_string()))))
            }
        }
    }

    /// openraft's default waits 500 ms between attempts at an unreachable peer; a restarted
    /// manager is back in the group sooner with 100 ms.
    fn backoff(&self) -> Option<Backoff> {
        Some(Backoff::new(std::iter::repeat(Duration::from_millis(100))))
    }
}
