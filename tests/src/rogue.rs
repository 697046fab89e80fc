//! A rogue member, built from meshd's own crates: it takes the credentials of a real member (its
//! key and certificate, from its state directory), signs whatever deltas a test wants with them,
//! and pushes them to another node over mutual TLS, as any member can. What the cluster does
//! with them is what the trust tests check.

use std::net::SocketAddr;
use std::path::Path;

use meshd::gossip::member::MemberId;
use meshd::gossip::persist::ClusterFile;
use meshd::gossip::tcp;
use meshd::gossip::wire::TcpMessage;
use meshd::identity::NodeId;
use meshd::manager::decisions::{Action, Command};
use meshd::manager::transport::{self, Request, Response};
use meshd::state::{Change, Delta, SignedDelta, Version};
use meshd::tls_channel::client::Channel;
use meshd::trust::certs::CaAnchor;
use meshd::trust::keys::NodeKey;
use meshd::trust::record;
use meshd::trust::tls::{self, TlsConfigs};

use crate::cluster::Node;

pub struct Rogue {
    pub key: NodeKey,
    tls: TlsConfigs,
    member: MemberId,
}

impl Rogue {
    /// Takes the identity of `node` (which may be running: only its files are read).
    pub fn impersonating(node: &Node) -> Rogue {
        Rogue::from_state_dir(node.state_dir(), SocketAddr::new(node.addr.into(), 7946))
    }

    pub fn from_state_dir(dir: &Path, addr: SocketAddr) -> Rogue {
        let key =
            NodeKey::from_pkcs8(&std::fs::read(dir.join("node.key")).expect("node.key")).expect("a node key");
        let cluster: ClusterFile =
            serde_json::from_slice(&std::fs::read(dir.join("cluster.json")).expect("cluster.json"))
                .expect("cluster.json");
        let anchor = CaAnchor::new(&cluster.ca_cert.0).expect("the CA certificate");
        let revoked = std::sync::Arc::new(arc_swap_empty());
        let tls = tls::configs(&anchor, &key, &cluster.cert.der, revoked).expect("TLS configs");
        let member = MemberId { node: key.node_id(), addr, generation: 1 };
        Rogue { key, tls, member }
    }

    pub fn node_id(&self) -> NodeId {
        self.key.node_id()
    }

    /// `change` versioned `lamport` and signed with this rogue's key, but claiming `writer` wrote
    /// it (the signature then is not the writer's unless `writer` is this rogue).
    pub fn sign_as(&self, writer: NodeId, lamport: u64, change: Change) -> SignedDelta {
        record::sign(&self.key, Delta { version: Version { lamport, node: writer }, change })
    }

    /// `change` written (and signed) by this rogue at `lamport`.
    pub fn sign(&self, lamport: u64, change: Change) -> SignedDelta {
        self.sign_as(self.node_id(), lamport, change)
    }

    /// Pushes `deltas` to `target` in a push-pull over mutual TLS, from inside `from`'s network
    /// namespace (the rogue's address). Returns what the target answered.
    pub fn push(&self, from: &Node, target: &Node, deltas: Vec<SignedDelta>) -> Result<TcpMessage, String> {
        let message = TcpMessage::PushPull { from: self.member.clone(), state: deltas, members: Vec::new() };
        let tls = self.tls.clone();
        let addr = SocketAddr::new(target.addr.into(), 7946);
        from.ns.run_inside(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(tcp::exchange(addr, None, &tls, &message)).map_err(|e| e.to_string())
        })
    }
}

impl Rogue {
    /// Sends `request` (raw bytes) on a managers' channel to `target`, from inside `from`'s
    /// namespace, and returns the raw answer.
    pub fn channel(&self, from: &Node, target: &Node, request: Vec<u8>) -> Result<Vec<u8>, String> {
        let tls = self.tls.clone();
        let node: NodeId = target.node_id().expect("node.json").parse().expect("a node ID");
        let addr = SocketAddr::new(target.addr.into(), 7946);
        from.ns.run_inside(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            let mut channel = Channel::new(addr, node);
            runtime
                .block_on(channel.call(&tls, request, std::time::Duration::from_secs(5)))
                .map_err(|e| e.to_string())
        })
    }

    /// Proposes `action` to the managers' group at `target`, as this rogue, and returns the
    /// answer.
    pub fn propose(&self, from: &Node, target: &Node, action: Action) -> Result<Response, String> {
        let command = Command { id: rand::random(), by: self.node_id(), action };
        let answer = self.channel(from, target, transport::encode(&Request::Propose(command)))?;
        transport::decode(&answer).map_err(|e| e.to_string())
    }
}

fn arc_swap_empty() -> arc_swap::ArcSwap<std::collections::HashSet<NodeId>> {
    arc_swap::ArcSwap::from_pointee(std::collections::HashSet::new())
}
