//! Unit tests of the agent's operations against the in-memory ports of [`fakes`]: what the
//! kernel and the cluster state hold afterwards, and what is left (nothing) when a step fails.
//! The namespace tests (`tests/tests/*.rs`) prove the same operations against the real kernel.
//!
//! A "namespace" here is a file in the test's directory: the agent names, compares and watches
//! namespaces by their files (`agent::netns`), so deleting the file is a namespace going away.

mod attach;
mod detach;
mod fakes;
mod handover;
mod reaper;
mod reconcile;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::{Agent, Inner};
use crate::discovery::serve::DnsSettings;
use crate::discovery::Discovery;
use crate::fixture::id;
use crate::network::LocalAttachment;
use crate::reconcile::Reconciler;
use crate::state::{Change, EndpointRecord, NetworkRecord};
use crate::state_dir::StateDir;
use fakes::{FakeCluster, FakeDecisions, FakeDns, FakeHost, FakeLinks, FakeMaps};

/// An agent on node 1 of the fixture's cluster (network `front`, 10.1.0.0/24, no endpoints),
/// with every port faked; the fakes are kept to look at what the agent left in them.
struct Harness {
    agent: Agent,
    links: FakeLinks,
    maps: FakeMaps,
    host: FakeHost,
    dns: FakeDns,
    cluster: FakeCluster,
    decisions: FakeDecisions,
    dir: PathBuf,
}

impl Harness {
    fn new() -> Harness {
        let dir = std::env::temp_dir().join(format!(
            "meshd-agent-{}-{}",
            std::process::id(),
            super::attachments::random_id()
        ));
        std::fs::create_dir_all(dir.join("ns")).unwrap();
        // The fixture's endpoints are removed: the tests make their own.
        let cluster = FakeCluster::new(crate::fixture::snapshot());
        for (owner, name) in [(1u8, "a"), (2, "b"), (2, "c")] {
            cluster
                .apply(id(owner), vec![Change::Endpoint { owner: id(owner), id: name.into(), record: None }]);
        }
        let (links, maps, host, dns) =
            (FakeLinks::default(), FakeMaps::default(), FakeHost::default(), FakeDns::default());
        let decisions = FakeDecisions::default();
        let discovery =
            Discovery::new(DnsSettings { resolv_conf: dir.join("resolv.conf"), ttl: 5, fast_path: false });
        let agent = Agent {
            inner: Mutex::new(Inner {
                maps: Box::new(maps.clone()),
                attachments: Vec::new(),
                reconciler: Reconciler::default(),
                masqueraded: None,
                routed: Vec::new(),
                node_addrs: Vec::new(),
                reserved_base: String::new(),
                reserved: None,
                granted: BTreeSet::new(),
                reservations: BTreeMap::new(),
            }),
            discovery: Arc::new(discovery),
            dns: Box::new(dns.clone()),
            links: Box::new(links.clone()),
            host: Box::new(host.clone()),
            gossip: Box::new(cluster.clone()),
            managers: Box::new(decisions.clone()),
            node_id: id(1),
            state_dir: Arc::new(StateDir::open(&dir.join("state")).unwrap()),
            timing: Default::default(),
            mtu: 1450,
            vxlan_ifindex: 3,
            advertise: Ipv4Addr::new(192, 0, 2, 1),
            underlay_ifname: "eth0".into(),
            node_dns: Default::default(),
            socket_lb: false,
        };
        Harness { agent, links, maps, host, dns, cluster, decisions, dir }
    }

    /// A new namespace (a file): its path as the agent is given it.
    fn netns(&self, name: &str) -> String {
        let path = self.dir.join("ns").join(name);
        std::fs::write(&path, b"").unwrap();
        path.display().to_string()
    }

    /// This node's endpoints in the cluster state, by id.
    fn endpoints(&self) -> BTreeMap<String, EndpointRecord> {
        let snapshot = crate::agent::ports::ClusterState::snapshot(&self.cluster);
        snapshot
            .state
            .endpoints
            .live()
            .filter(|((owner, _), _)| *owner == id(1))
            .map(|((_, id), record)| (id.clone(), record.clone()))
            .collect()
    }

    async fn attachments(&self) -> Vec<LocalAttachment> {
        self.agent.inner.lock().await.attachments.clone()
    }

    /// The attachments as `attachments.json` holds them (what a restart finds).
    fn saved(&self) -> Vec<LocalAttachment> {
        super::attachments::load_attachments(&self.agent.state_dir).unwrap().0
    }

    /// Adds network `name` as the managers would.
    fn add_network(&self, name: &str, subnet: &str, vni: u32) {
        // Like `front`, whatever else a record holds.
        let snapshot = crate::agent::ports::ClusterState::snapshot(&self.cluster);
        let mut record: NetworkRecord = snapshot.state.networks.get(&"front".to_string()).unwrap().clone();
        record.subnet = subnet.parse().unwrap();
        record.vni = vni;
        self.cluster.apply(id(1), vec![Change::Network { name: name.into(), record: Some(record) }]);
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
