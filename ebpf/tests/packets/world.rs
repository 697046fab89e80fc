//! The cluster every table's rows live in: one overlay network (VNI 42, 10.0.1.0/24) with
//! containers on this node and on a peer node, another network (VNI 43), a service VIP, a
//! published port, and the node's underlay. Rows start from [`world`] and add what they are about.

use std::net::Ipv4Addr;

use meshd_ebpf::endpoint::{Endpoint, Iface, FLAG_LOCAL, IFACE_INTERNAL};
use meshd_ebpf::lb::{FlowKey, RnatKey, FLOW_REPLY, FLOW_TO_SERVICE};
use meshd_ebpf::mesh::{FrontendKey, PROTO_TCP};
use meshd_ebpf::node::NodeConfig;

use crate::fixture::{be, port, Put, IFINDEX};
use crate::frames::Mac;

pub const VNI: u32 = 42;
pub const OTHER_VNI: u32 = 43;
pub const SUBNET: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 0);
pub const OTHER_SUBNET: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 0);
pub const MASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 0);
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
pub const OTHER_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 1);

/// This node, a peer node, a third node, and a host that is no node.
pub const NODE: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
pub const PEER: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 2);
pub const THIRD: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 3);
pub const STRANGER: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 66);

/// Containers: A and B on this node, C on the peer node (all VNI 42); D on this node, VNI 43.
pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 3);
pub const C: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 4);
pub const D: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 5);
/// An address of the network with no endpoint.
pub const NOBODY: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 50);

/// The service: VIP, id, port; its published port on the node.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 100);
pub const SERVICE: u32 = 5;
pub const OTHER_VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
pub const PUBLISHED: u16 = 8080;
pub const TARGET: u16 = 80;

/// A client outside the cluster, and an address on the internet.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
pub const CLIENT_PORT: u16 = 5555;
pub const INTERNET: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 9);
/// The node's link-local DNS address for Docker containers.
pub const NODE_DNS: Ipv4Addr = Ipv4Addr::new(169, 254, 53, 53);
/// The port a container's client connections come from.
pub const EPHEMERAL: u16 = 40000;

/// Host-side veths of A and B when they are not the veth under test ([`IFINDEX`]); D's.
pub const A_IFINDEX: u32 = 6;
pub const B_IFINDEX: u32 = 7;
pub const D_IFINDEX: u32 = 8;
/// The node's VXLAN device and underlay interface.
pub const VXLAN_IFINDEX: u32 = 9;
pub const UNDERLAY_IFINDEX: u32 = 3;

pub const A_MAC: Mac = [2, 0, 0, 0, 1, 2];
pub const B_MAC: Mac = [2, 0, 0, 0, 1, 3];
pub const D_MAC: Mac = [2, 0, 0, 0, 2, 5];
/// The peer node's veth MAC, as inner frames from it carry it.
pub const REMOTE_VETH_MAC: Mac = [2, 0, 0, 0, 9, 9];
pub const UNDERLAY_MAC: Mac = [2, 0, 0, 0, 0, 0x33];
pub const PEER_MAC: Mac = [2, 0, 0, 0, 0, 0x44];
pub const ROUTER_MAC: Mac = [2, 0, 0, 0, 0, 0xfe];
pub const EVIL_MAC: Mac = [2, 0, 0, 0, 0, 0x66];
/// The loopback device's address: a test run's skb is PACKET_HOST only when sent to it.
pub const HOST_MAC: Mac = [0; 6];

/// The MAC of the host side of veth `ifindex`.
pub fn veth_mac(ifindex: u32) -> Mac {
    [2, 0, 0, 0, 0, ifindex as u8]
}

fn iface(ip: Ipv4Addr, vni: u32, ifindex: u32) -> Iface {
    let subnet = if vni == VNI { SUBNET } else { OTHER_SUBNET };
    let gateway = if vni == VNI { GATEWAY } else { OTHER_GATEWAY };
    Iface {
        vni,
        ip: be(ip),
        subnet: be(subnet),
        mask: be(MASK),
        mac: veth_mac(ifindex),
        flags: 0,
        pad: 0,
        gateway: be(gateway),
    }
}

pub fn local(vni: u32, ifindex: u32, mac: Mac) -> Endpoint {
    Endpoint { vni, node_ip: 0, ifindex, mac, flags: FLAG_LOCAL, pad: 0 }
}

pub fn remote(vni: u32, node: Ipv4Addr) -> Endpoint {
    Endpoint { vni, node_ip: be(node), ifindex: 0, mac: [0; 6], flags: 0, pad: 0 }
}

/// The world seen from the veth of container `owner` (A or B: its veth is [`IFINDEX`]; any
/// other address: no veth under test, as on the VXLAN device or the underlay).
pub fn world(owner: Ipv4Addr) -> Vec<Put> {
    let a = if owner == A { IFINDEX } else { A_IFINDEX };
    let b = if owner == B { IFINDEX } else { B_IFINDEX };
    vec![
        Put::Iface(a, iface(A, VNI, a)),
        Put::Iface(b, iface(B, VNI, b)),
        Put::Iface(D_IFINDEX, iface(D, OTHER_VNI, D_IFINDEX)),
        Put::Endpoint(A, local(VNI, a, A_MAC)),
        Put::Endpoint(B, local(VNI, b, B_MAC)),
        Put::Endpoint(C, remote(VNI, PEER)),
        Put::Endpoint(D, local(OTHER_VNI, D_IFINDEX, D_MAC)),
        Put::Config(NodeConfig {
            vxlan_ifindex: VXLAN_IFINDEX,
            node_ip: be(NODE),
            ct_idle_ns: 0,
            ..NodeConfig::default()
        }),
        Put::Node(NODE),
        Put::Node(PEER),
        Put::Node(THIRD),
    ]
}

/// A's veth (the one under test) as one of an `--internal` network.
pub fn internal_a() -> Put {
    Put::Iface(IFINDEX, Iface { flags: IFACE_INTERNAL, ..iface(A, VNI, IFINDEX) })
}

/// The service VIP with a Maglev table of `backends`.
pub fn service(backends: &[Ipv4Addr]) -> Vec<Put> {
    vec![Put::Service(VIP, SERVICE), Put::Maglev(SERVICE, backends.to_vec())]
}

/// The published port of the node for the service (ingress: the service's own table).
pub fn published() -> Put {
    Put::Frontend(
        FrontendKey { addr: be(NODE), port: port(PUBLISHED), proto: PROTO_TCP, pad: 0 },
        meshd_ebpf::mesh::Frontend { vip: be(VIP), target_port: port(TARGET), flags: 0, table: SERVICE },
    )
}

/// The id of the service's table of this node's tasks (mode=host).
pub const LOCAL_TABLE: u32 = 0x0005_0002;

/// The published port in mode=host, picking from the table [`LOCAL_TABLE`] of `backends`.
pub fn published_host(backends: &[Ipv4Addr]) -> Vec<Put> {
    vec![
        Put::Frontend(
            FrontendKey { addr: be(NODE), port: port(PUBLISHED), proto: PROTO_TCP, pad: 0 },
            meshd_ebpf::mesh::Frontend {
                vip: be(VIP),
                target_port: port(TARGET),
                flags: meshd_ebpf::mesh::FRONTEND_LOCAL,
                table: LOCAL_TABLE,
            },
        ),
        Put::Maglev(LOCAL_TABLE, backends.to_vec()),
    ]
}

/// A container's TCP flow to `to:to_port` of the service (TO_SERVICE key).
pub fn to_service(to: Ipv4Addr, to_port: u16) -> FlowKey {
    FlowKey {
        addr: be(to),
        svc: SERVICE,
        port: port(to_port),
        client_port: port(EPHEMERAL),
        proto: PROTO_TCP,
        dir: FLOW_TO_SERVICE,
        pad: [0; 2],
    }
}

/// The reply key of a container's TCP flow balanced onto `backend:backend_port`.
pub fn reply_of(backend: Ipv4Addr, backend_port: u16) -> FlowKey {
    FlowKey {
        addr: be(backend),
        svc: 0,
        port: port(backend_port),
        client_port: port(EPHEMERAL),
        proto: PROTO_TCP,
        dir: FLOW_REPLY,
        pad: [0; 2],
    }
}

/// The routing mesh's key of a published TCP flow's replies from `backend`.
pub fn mesh_reply(backend: Ipv4Addr) -> RnatKey {
    RnatKey {
        backend_ip: be(backend),
        client_ip: be(CLIENT),
        port: port(TARGET),
        client_port: port(CLIENT_PORT),
        proto: PROTO_TCP,
        pad: [0; 3],
    }
}
