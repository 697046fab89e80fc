//! The seed corpora: valid inputs of every target, built with meshd's own types and encoders
//! (the gossip datagrams are what a real foca instance of node 1 sends), so that the fuzzer
//! starts from traffic meshd really exchanges and mutates from there.

use std::path::Path;
use std::str::FromStr;

use foca::{AccumulatingRuntime, Foca, Member, PostcardCodec};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use meshd::gossip::broadcast;
use meshd::gossip::config::GossipConfig;
use meshd::gossip::join;
use meshd::gossip::wire::{self, TcpMessage};
use meshd::manager::decisions::{Action, Command, Decided};
use meshd::manager::transport::{self, ProposeFailure, Request, Response};
use meshd::state::{NetworkRecord, Signature};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::universe::{self, universe};

/// Writes every target's seeds under `dir/TARGET/`; returns how many.
pub fn write(dir: &Path) -> std::io::Result<usize> {
    let mut count = 0;
    for (target, seeds) in all() {
        let dir = dir.join(target);
        std::fs::create_dir_all(&dir)?;
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:03}")), seed)?;
            count += 1;
        }
    }
    Ok(count)
}

pub fn all() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    vec![
        ("gossip_udp", gossip_udp()),
        ("gossip_tcp", gossip_tcp()),
        ("raft", raft()),
        ("dns_fast", dns()),
        ("api", lines(API)),
        ("cni", lines(CNI)),
        ("docker", lines(DOCKER)),
        ("config", lines(CONFIG)),
    ]
}

fn lines(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// What node 1's foca sends: announcements, and gossip carrying the universe's node records.
fn gossip_udp() -> Vec<Vec<u8>> {
    let u = universe();
    let mut foca = Foca::with_custom_broadcast(
        universe::member(0),
        GossipConfig::default().foca(16),
        StdRng::seed_from_u64(1),
        PostcardCodec,
        universe::handler(),
    );
    let mut runtime = AccumulatingRuntime::new();
    let mut out = Vec::new();
    foca.announce(universe::member(1), &mut runtime).expect("announce");
    foca.apply_many(
        [Member::alive(universe::member(1)), Member::alive(universe::member(2))].into_iter(),
        false,
        &mut runtime,
    )
    .expect("members");
    for record in &u.records {
        let _ = foca.add_broadcast(&broadcast::encode(record));
    }
    for _ in 0..4 {
        foca.gossip(&mut runtime).expect("gossip");
    }
    while let Some((_, bytes)) = runtime.to_send() {
        out.push(bytes.to_vec());
    }
    out
}

fn framed(message: &TcpMessage) -> Vec<u8> {
    let frame = wire::encode(message);
    let mut out = (frame.len() as u32).to_be_bytes().to_vec();
    out.extend(frame);
    out
}

fn gossip_tcp() -> Vec<Vec<u8>> {
    let u = universe();
    let joiner = universe::member(1);
    let key = u.keys[1].public();
    // The domain `gossip::join` signs join proofs under (private there): a seed with a real
    // proof lets the fuzzer reach the checks after it.
    let proof =
        u.keys[1].sign(b"meshd-join-v1", &join::proof_message(&u.founder.fingerprint(), &joiner, &key));
    vec![
        framed(&TcpMessage::PushPull {
            from: universe::member(1),
            state: u.records.clone(),
            members: vec![Member::alive(universe::member(1)), Member::alive(universe::member(2))],
        }),
        framed(&TcpMessage::JoinRequest {
            member: joiner,
            name: "n2".into(),
            key,
            proof: Signature(proof),
            settings: Default::default(),
        }),
        framed(&TcpMessage::RenewRequest),
        framed(&TcpMessage::Channel {
            payload: meshd::util::hex::Bytes(transport::encode(&Request::Propose(command(1)))),
        }),
    ]
}

fn command(id: u64) -> Command {
    let by = universe().keys[0].node_id();
    let action = match id {
        1 => Action::CreateNetwork {
            name: "front".into(),
            record: NetworkRecord {
                subnet: "10.1.0.0/16".parse().unwrap(),
                vni: meshd::state::validate::vni_for("front"),
                options: Default::default(),
            },
        },
        2 => Action::GrantBlock { network: "front".into(), node: universe().keys[1].node_id() },
        3 => Action::RemoveNetwork { name: "front".into() },
        _ => Action::ReleaseBlocks { node: universe().keys[2].node_id() },
    };
    Command { id, by, action }
}

fn raft() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (1..5).map(|id| transport::encode(&Request::Propose(command(id)))).collect();
    out.push(transport::encode(&Response::Refused("not a manager".into())));
    out.push(transport::encode(&Response::Proposed(Err(ProposeFailure::NoMajority))));
    let mut decided = Decided::default();
    decided.apply(command(1));
    out.push(postcard::to_allocvec(&decided).expect("encodes"));
    out
}

/// Queries as resolvers send them: the names the registry holds and some it does not, each
/// type the fast path knows, with and without EDNS; the first byte picks the scope.
fn dns() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let names = [
        "web",
        "WeB",
        "tasks.web",
        "tasks.big",
        "web.1",
        "web.front",
        "db.back",
        "nothing",
        "example.com",
        "2.0.0.10.in-addr.arpa",
    ];
    let types = [RecordType::A, RecordType::AAAA, RecordType::PTR, RecordType::TXT];
    for (i, name) in names.iter().enumerate() {
        for (j, rtype) in types.iter().enumerate() {
            let edns = match (i + j) % 3 {
                0 => None,
                1 => Some(1232),
                _ => Some(512),
            };
            let mut message = Message::new(0x1234, MessageType::Query, OpCode::Query);
            message.metadata.recursion_desired = true;
            message.add_query(Query::query(Name::from_str(name).unwrap(), *rtype));
            if let Some(payload) = edns {
                let mut opt = Edns::new();
                opt.set_max_payload(payload);
                message.set_edns(opt);
            }
            let mut seed = vec![(i + j) as u8 % 4];
            seed.extend(message.to_vec().unwrap());
            out.push(seed);
        }
    }
    out
}

const API: &[&str] = &[
    r#"{"op":"node_ls"}"#,
    r#"{"op":"network_create","name":"front","subnet":"10.1.0.0/16"}"#,
    r#"{"op":"network_ls"}"#,
    r#"{"op":"attach","netns":"c1","network":"front","service":"web","name":"web.1","owner":"cni/front/c1/eth0"}"#,
    r#"{"op":"service_create","name":"web","network":"front","publish":["8080:80/tcp"],"endpoint_mode":"vip"}"#,
    r#"{"op":"detach","netns":"c1","network":"front"}"#,
    r#"{"op":"monitor","follow":true,"filter":{"network":"front"}}"#,
    r#"{"op":"join_token","manager":false}"#,
    r#"{"op":"node_update","node":"n2","availability":"drain"}"#,
];

const CNI: &[&str] = &[
    "CNI_COMMAND=ADD\nCNI_CONTAINERID=c1\nCNI_NETNS=/proc/self/ns/net\nCNI_IFNAME=eth0\nCNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=web\nCNI_PATH=/opt/cni/bin\n\n{\"cniVersion\":\"1.0.0\",\"name\":\"front\",\"type\":\"meshd-cni\",\"network\":\"front\",\"socket\":\"/run/meshd/meshd.sock\",\"service\":\"web\",\"runtimeConfig\":{\"aliases\":{\"front\":[\"web\"]},\"portMappings\":[{\"hostPort\":8080,\"containerPort\":80,\"protocol\":\"tcp\"}]}}",
    "CNI_COMMAND=DEL\nCNI_CONTAINERID=c1\nCNI_NETNS=/proc/self/ns/net\nCNI_IFNAME=eth0\n\n{\"cniVersion\":\"0.4.0\",\"name\":\"front\",\"type\":\"meshd-cni\",\"network\":\"front\",\"prevResult\":{\"interfaces\":[{\"name\":\"eth0\",\"sandbox\":\"/proc/self/ns/net\"}],\"ips\":[{\"address\":\"10.1.0.2/24\",\"interface\":0}]}}",
    "CNI_COMMAND=CHECK\nCNI_CONTAINERID=c1\nCNI_NETNS=/proc/self/ns/net\nCNI_IFNAME=eth0\n\n{\"cniVersion\":\"1.1.0\",\"name\":\"front\",\"type\":\"meshd-cni\",\"network\":\"front\",\"prevResult\":{\"cniVersion\":\"1.1.0\",\"interfaces\":[{\"name\":\"eth0\",\"sandbox\":\"/proc/self/ns/net\"}],\"ips\":[{\"address\":\"10.1.0.2/24\",\"interface\":0}]}}",
    "CNI_COMMAND=GC\n\n{\"cniVersion\":\"1.1.0\",\"name\":\"front\",\"type\":\"meshd-cni\",\"network\":\"front\",\"cni.dev/valid-attachments\":[{\"containerID\":\"c1\",\"ifname\":\"eth0\"}]}",
    "CNI_COMMAND=STATUS\n\n{\"cniVersion\":\"1.1.0\",\"name\":\"front\",\"type\":\"meshd-cni\",\"network\":\"front\"}",
    "CNI_COMMAND=VERSION\n\n{\"cniVersion\":\"0.3.1\"}",
];

const DOCKER: &[&str] = &[
    "/Plugin.Activate\n{}",
    "/NetworkDriver.GetCapabilities\n{}",
    "/IpamDriver.RequestPool\n{\"AddressSpace\":\"meshd\",\"Pool\":\"10.1.0.0/24\",\"SubPool\":\"\",\"Options\":{},\"V6\":false}",
    "/IpamDriver.RequestAddress\n{\"PoolID\":\"meshd:10.1.0.0/24\",\"Address\":\"\",\"Options\":{\"RequestAddressType\":\"com.docker.network.gateway\"}}",
    "/IpamDriver.ReleaseAddress\n{\"PoolID\":\"meshd:10.1.0.0/24\",\"Address\":\"10.1.0.2\"}",
    "/NetworkDriver.CreateNetwork\n{\"NetworkID\":\"n1\",\"Options\":{\"com.docker.network.generic\":{\"meshd.network\":\"front\"}},\"IPv4Data\":[{\"AddressSpace\":\"meshd\",\"Pool\":\"10.1.0.0/24\",\"Gateway\":\"10.1.0.1/24\"}],\"IPv6Data\":[]}",
    "/NetworkDriver.CreateEndpoint\n{\"NetworkID\":\"n1\",\"EndpointID\":\"e1\",\"Interface\":{\"Address\":\"10.1.0.2/24\",\"MacAddress\":\"\"},\"Options\":{\"com.docker.network.portmap\":[{\"Proto\":6,\"Port\":80,\"HostPort\":8080}],\"meshd.service\":\"web\"}}",
    "/NetworkDriver.Join\n{\"NetworkID\":\"n1\",\"EndpointID\":\"e1\",\"SandboxKey\":\"/var/run/docker/netns/abc\",\"Options\":{}}",
    "/NetworkDriver.Leave\n{\"NetworkID\":\"n1\",\"EndpointID\":\"e1\"}",
    "/NetworkDriver.DeleteNetwork\n{\"NetworkID\":\"n1\"}",
];

const CONFIG: &[&str] = &[
    "state-dir = \"/var/lib/meshd\"\nadvertise-addr = \"10.0.0.1\"\n",
    "state-dir = \"/var/lib/meshd\"\nadvertise-addr = \"10.0.0.1\"\ndocker-plugin = true\ngossip-probe-interval = \"500ms\"\n",
    "state-dir = \"/x\"\nadvertise-addr = \"10.0.0.2\"\njoin = [\"10.0.0.1:7946\"]\nlog-format = \"json\"\n",
];
