//! A small cluster with real keys, made once per process: a CA, node 1 its founder (a manager
//! that holds the CA), nodes 2 and 3 workers, each with a certified key and a signed node record.
//! The gossip targets merge into a state that knows them, so that what the fuzzer sends reaches
//! admission's checks of real writers and not only "unknown node".

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};

use meshd::gossip::admission::Admission;
use meshd::gossip::broadcast::{self, lock, DeltaHandler, Shared};
use meshd::gossip::credentials::Credentials;
use meshd::gossip::member::MemberId;
use meshd::gossip::stats::Stats;
use meshd::util::hex::Bytes;
use meshd::identity::NodeId;
use meshd::state::{
    validate, BlockClaim, Change, ClusterState, Delta, NetworkRecord, NodeRecord, Signature, SignedDelta,
    Version,
};
use meshd::trust::ca::ClusterCa;
use meshd::trust::certs::CaAnchor;
use meshd::trust::keys::NodeKey;
use meshd::trust::record;

pub struct Universe {
    pub anchor: CaAnchor,
    pub keys: Vec<Arc<NodeKey>>,
    pub records: Vec<SignedDelta>,
    /// Node 1's credentials, with the CA: what a manager answers joiners with.
    pub founder: Credentials,
}

pub fn universe() -> &'static Universe {
    static UNIVERSE: OnceLock<Universe> = OnceLock::new();
    UNIVERSE.get_or_init(|| {
        let ca = ClusterCa::create().expect("a CA");
        let keys: Vec<Arc<NodeKey>> = (0..3).map(|_| Arc::new(NodeKey::generate().expect("a key"))).collect();
        let records = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let id = key.node_id();
                let record = NodeRecord {
                    name: format!("n{}", i + 1),
                    gossip_addr: addr(i),
                    left: false,
                    departed: None,
                    cert: Bytes(ca.issue(&key.public(), 3600).expect("a certificate").der),
                    founder: (i == 0).then(|| Signature(ca.founder_grant(&id))),
                    keyring: Default::default(),
                };
                record::sign(
                    key,
                    Delta {
                        version: Version { lamport: 1, node: id },
                        change: Change::Node { id, record: Some(record) },
                    },
                )
            })
            .collect();
        let anchor = CaAnchor::new(ca.cert()).expect("an anchor");
        let founder = Credentials {
            key: keys[0].clone(),
            ca_cert: ca.cert().to_vec(),
            anchor: anchor.clone(),
            cert: ca.issue(&keys[0].public(), 3600).expect("a certificate"),
            ca: Some(Arc::new(ca)),
            settings: Default::default(),
        };
        Universe { anchor, keys, records, founder }
    })
}

pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::new(10, 0, 0, i as u8 + 1).into(), 7946)
}

pub fn member(i: usize) -> MemberId {
    MemberId { node: universe().keys[i].node_id(), addr: addr(i), generation: 1 }
}

/// This node: a fourth one, so that every writer of the universe is someone else.
pub fn me() -> NodeId {
    NodeId::from_bytes([0xee; 16])
}

/// The gossip agent's broadcast handler over a state that knows the universe's nodes, network
/// "front" (10.1.0.0/16) and the block each node's endpoints use (10.1.N*16.0/28 for node N),
/// granted by the founder: as in a real cluster, the writers' own endpoints are admitted. The
/// state is merged once (through admission) and copied into each fresh handler.
pub fn handler() -> DeltaHandler {
    static STATE: OnceLock<ClusterState> = OnceLock::new();
    let u = universe();
    let state = STATE.get_or_init(|| {
        let shared = Arc::new(Mutex::new(Shared::new(Admission::new(u.anchor.clone(), me()))));
        let stats = Stats::default();
        let merge = |signed: SignedDelta| assert!(broadcast::merge(&mut lock(&shared), signed, &stats));
        for record in &u.records {
            merge(record.clone());
        }
        let founder = &u.keys[0];
        let version = |lamport| Version { lamport, node: founder.node_id() };
        let network =
            NetworkRecord { subnet: "10.1.0.0/16".parse().unwrap(), vni: validate::vni_for("front"), options: Default::default() };
        let change = Change::Network { name: "front".into(), record: Some(network) };
        merge(record::sign(founder, Delta { version: version(1), change }));
        for (n, key) in u.keys.iter().enumerate() {
            let claim = Some(BlockClaim { owner: key.node_id() });
            let change = Change::Block { network: "front".into(), index: n as u32 * 16, claim };
            merge(record::sign(founder, Delta { version: version(2 + n as u64), change }));
        }
        let state = lock(&shared).state.clone();
        state
    });
    let mut shared = Shared::new(Admission::new(u.anchor.clone(), me()));
    shared.state = state.clone();
    DeltaHandler { shared: Arc::new(Mutex::new(shared)), stats: Arc::new(Stats::default()) }
}
