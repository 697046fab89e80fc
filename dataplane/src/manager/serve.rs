//! Answering other nodes on the managers' channels: Raft's messages (from managers only), and
//! proposals (any command from a manager; from a worker, only an address block for itself).
//! Also the gate a node joining as a manager passes: the group records it first.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use openraft::alias::SnapshotOf;

use super::decisions::Action;
use super::propose::PROPOSE_TIMEOUT;
use super::transport::{self, Request, Response};
use super::types::RaftTypes;
use super::Managers;
use crate::gossip::join::JoinGate;
use crate::identity::NodeId;
use crate::network::ipam;
use crate::state::Role;
use crate::tls_channel::server::{ChannelHandler, Server};

/// The managers' side of this node's channels and join gate.
pub struct Endpoint(pub Managers);

impl ChannelHandler for Endpoint {
    fn handle(&self, peer: NodeId, request: Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> {
        let managers = self.0.clone();
        Box::pin(async move {
            let response = match transport::decode::<Request>(&request) {
                Ok(request) => managers.answer(peer, request).await,
                Err(error) => Response::Refused(format!("undecodable request: {error}")),
            };
            transport::encode(&response)
        })
    }
}

impl JoinGate for Endpoint {
    fn approve_manager(&self, node: NodeId) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        let managers = self.0.clone();
        Box::pin(async move {
            // Within the TCP server's wait for the agent's answer.
            let timeout = PROPOSE_TIMEOUT.min(std::time::Duration::from_secs(4));
            match managers.propose_within(Action::SetRole { node, role: Role::Manager }, timeout).await {
                Ok((super::Decision::Refused(reason), _)) => Err(reason),
                Ok(_) => Ok(()),
                Err(error) => Err(error.to_string()),
            }
        })
    }
}

impl Managers {
    async fn answer(&self, peer: NodeId, request: Request) -> Response {
        let snapshot = self.gossip().snapshot();
        let state = &snapshot.state;
        if let Request::Probe = request {
            // Any authenticated node may ask: the answer says only that this one is up.
            return Response::Probe { member: self.raft().is_some() };
        }
        let is_manager = !state.is_revoked(&peer)
            && (state.role_of(&peer) == Role::Manager || self.decided().managers().contains(&peer));
        if let Request::Propose(command) = request {
            // A worker may ask for an address block for itself, and nothing else.
            let own_block = command.by == peer
                && matches!(&command.action, Action::GrantBlock { node, .. } if *node == peer);
            if !is_manager && !own_block {
                return Response::Refused(format!("{peer} is not a manager"));
            }
            if state.is_revoked(&peer) {
                return Response::Refused(format!("{peer} was removed"));
            }
            if let Action::GrantBlock { network, node } = &command.action {
                if !is_manager {
                    // A worker gets blocks as it uses them (a manager is trusted with the cluster).
                    let held =
                        self.decided().blocks.iter().filter(|((n, _), o)| n == network && *o == node).count();
                    if let Err(reason) = ipam::may_grant(state, *node, network, held) {
                        return Response::Refused(reason);
                    }
                }
            }
            return Response::Proposed(self.decide_here(command).await);
        }
        if !is_manager {
            // A worker never takes part in the group.
            return Response::Refused(format!("{peer} is not a manager"));
        }
        let Some(raft) = self.raft() else {
            return Response::Refused("this node is not a member of the managers' group".into());
        };
        match request {
            Request::Append(rpc) => Response::Append(raft.append_entries(rpc).await),
            Request::Vote(rpc) => Response::Vote(raft.vote(rpc).await),
            Request::PreVote(rpc) => Response::Vote(raft.pre_vote(rpc).await),
            Request::Snapshot { vote, meta, data } => {
                let snapshot = SnapshotOf::<RaftTypes, Vec<u8>> { meta, snapshot: data };
                Response::Snapshot(raft.install_full_snapshot(vote, snapshot).await)
            }
            Request::Propose(_) | Request::Probe => unreachable!("answered above"),
        }
    }
}

/// Installs this node's endpoint on gossip's channels and join gate.
pub fn install(managers: &Managers) {
    let endpoint = Arc::new(Endpoint(managers.clone()));
    managers.gossip().set_channel_server(Server::new(endpoint.clone()));
    managers.gossip().set_join_gate(endpoint);
}
