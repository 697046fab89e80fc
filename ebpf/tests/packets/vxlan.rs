//! `vxlan.bpf.c`: packets out of the tunnel (vxlan_ingress, tc ingress of the node's VXLAN
//! device) and the node's own packets into it (vxlan_to_tunnel, tc egress). The tunnel key a
//! packet arrived with comes from the test hook (`Put::TunnelKey`); without one the real
//! helper finds none.

use meshd_ebpf::lb::Flow;
use meshd_ebpf::mesh::{MeshNat, MeshReturn};
use meshd_ebpf::verdict::{Direction::FromTunnel as From, Direction::ToTunnel as To, Reason::*};
use meshd_ebpf::vxlan::{INGRESS, TO_TUNNEL};

use crate::fixture::{be, port, Fixture, Out, Put, Row, Verdict};
use crate::frames::{self, ipv4, raw, Expect, Tcp, L4};
use crate::world::*;

const ETH_P_ARP: u16 = 0x0806;

/// The world of the VXLAN device (no veth under test), with a tunnel key from the peer node.
fn from_peer() -> Vec<Put> {
    let mut maps = world(NODE);
    maps.push(Put::TunnelKey(PEER, VNI));
    maps
}

/// An inner frame from `src` to `dst` as the peer node's veth sends it.
fn inner(src: (std::net::Ipv4Addr, u16), dst: (std::net::Ipv4Addr, u16), l4: L4) -> Vec<u8> {
    ipv4(REMOTE_VETH_MAC, A_MAC, src, dst, l4)
}

pub fn rows() -> Vec<Row> {
    let syn = L4::Tcp(Tcp::Syn);
    let ack = L4::Tcp(Tcp::Ack);
    let client_to_b = || inner((CLIENT, CLIENT_PORT), (B, TARGET), syn);
    vec![
        Row::new("no tunnel metadata", INGRESS, inner((C, EPHEMERAL), (B, TARGET), syn))
            .maps(world(NODE))
            .expect(Verdict::Shot, &[(From, DropNoTunnelKey)]),
        Row::new("an outer source that is no cluster node", INGRESS, inner((C, EPHEMERAL), (B, TARGET), syn))
            .maps(world(NODE))
            .maps([Put::TunnelKey(STRANGER, VNI)])
            .expect(Verdict::Shot, &[(From, DropNotANode)]),
        Row::new("ARP inside the tunnel", INGRESS, raw(ETH_P_ARP, 28))
            .maps(from_peer())
            .expect(Verdict::Shot, &[(From, DropUnsupportedL3)]),
        Row::new(
            "an inner source that is an endpoint of another node",
            INGRESS,
            inner((C, EPHEMERAL), (B, TARGET), syn),
        )
        .maps(world(NODE))
        .maps([Put::TunnelKey(THIRD, VNI)])
        .expect(Verdict::Shot, &[(From, DropTunnelSpoofed)]),
        Row::new(
            "an inner source that is an endpoint of this node",
            INGRESS,
            inner((A, EPHEMERAL), (B, TARGET), syn),
        )
        .maps(from_peer())
        .expect(Verdict::Shot, &[(From, DropTunnelSpoofed)]),
        Row::new(
            "a remote endpoint to a local one: into the container, MACs of its gateway",
            INGRESS,
            inner((C, EPHEMERAL), (B, TARGET), syn),
        )
        .maps(from_peer())
        .expect(Verdict::Redirect { ifindex: B_IFINDEX, peer: true }, &[(From, DeliverTunnel)])
        .check(frames::l4_is(Expect {
            src_mac: veth_mac(B_IFINDEX),
            dst_mac: B_MAC,
            src: (C, EPHEMERAL),
            dst: (B, TARGET),
        })),
        Row::new(
            "to an endpoint that is not on this node",
            INGRESS,
            inner((CLIENT, CLIENT_PORT), (C, TARGET), syn),
        )
        .maps(from_peer())
        .expect(Verdict::Shot, &[(From, DropNoEndpoint)]),
        Row::new("a tunnel VNI that is not the destination's network", INGRESS, client_to_b())
            .maps(world(NODE))
            .maps([Put::TunnelKey(PEER, OTHER_VNI)])
            .expect(Verdict::Shot, &[(From, DropVniMismatch)]),
        Row::new(
            "a remote backend's reply to a VIP flow balanced here: the source becomes the VIP",
            INGRESS,
            inner((C, TARGET), (A, EPHEMERAL), ack),
        )
        .maps(from_peer())
        .maps([Put::Flow(
            A,
            reply_of(C, TARGET),
            Flow { addr: be(VIP), port: port(TARGET), flags: 0, last_seen: 0 },
        )])
        .expect(
            Verdict::Redirect { ifindex: A_IFINDEX, peer: true },
            &[(From, LbRnat), (From, DeliverTunnel)],
        )
        .check(frames::l4_is(Expect {
            src_mac: veth_mac(A_IFINDEX),
            dst_mac: A_MAC,
            src: (VIP, TARGET),
            dst: (A, EPHEMERAL),
        })),
        Row::new("to the node's own address: its stack", INGRESS, inner((C, TARGET), (NODE, EPHEMERAL), ack))
            .maps(from_peer())
            .expect(Verdict::Ok, &[(From, ToNode)])
            .out(Out::Unchanged),
        Row::new(
            "a published flow's reply out of the tunnel: from the published address, to the client's hop",
            INGRESS,
            inner((C, TARGET), (CLIENT, CLIENT_PORT), ack),
        )
        .maps(from_peer())
        .maps([Put::MeshNat(
            mesh_reply(C),
            MeshNat {
                addr: be(NODE),
                ifindex: UNDERLAY_IFINDEX,
                port: port(PUBLISHED),
                peer_mac: ROUTER_MAC,
                local_mac: UNDERLAY_MAC,
                pad: 0,
                last_seen: 0,
            },
        )])
        .expect(Verdict::Redirect { ifindex: UNDERLAY_IFINDEX, peer: false }, &[(From, MeshReply)])
        .check(frames::l4_is(Expect {
            src_mac: UNDERLAY_MAC,
            dst_mac: ROUTER_MAC,
            src: (NODE, PUBLISHED),
            dst: (CLIENT, CLIENT_PORT),
        })),
        Row::new(
            "to an outside address with no published flow",
            INGRESS,
            inner((C, TARGET), (CLIENT, CLIENT_PORT), ack),
        )
        .maps(from_peer())
        .expect(Verdict::Shot, &[(From, DropNoEndpoint)]),
        Row::new(
            "an outside client brought in by the peer node: delivered, and the way back learnt",
            INGRESS,
            client_to_b(),
        )
        .maps(from_peer())
        .expect(Verdict::Redirect { ifindex: B_IFINDEX, peer: true }, &[(From, DeliverTunnel)])
        .after(|f| {
            let back: Option<MeshReturn> = f.lookup(meshd_ebpf::mesh::MESH_RETURN_MAP, &mesh_reply(B));
            match back {
                Some(b) if (b.node_ip, b.vni) == (be(PEER), VNI) => Ok(()),
                other => Err(format!("md_mesh_return_v2 holds {other:?}")),
            }
        }),
        Row::new("to the tunnel, already keyed by another program: untouched", TO_TUNNEL, client_to_b())
            .maps(from_peer())
            .expect(Verdict::Ok, &[])
            .out(Out::Unchanged),
        Row::new(
            "to the tunnel, forwarded by the node (not its own)",
            TO_TUNNEL,
            ipv4(UNDERLAY_MAC, A_MAC, (CLIENT, CLIENT_PORT), (C, TARGET), syn),
        )
        .maps(world(NODE))
        .ingress(UNDERLAY_IFINDEX)
        .expect(Verdict::Shot, &[(To, DropSpoofed)]),
        Row::new("to the tunnel, ARP", TO_TUNNEL, raw(ETH_P_ARP, 28))
            .maps(world(NODE))
            .expect(Verdict::Shot, &[(To, DropUnsupportedL3)]),
        Row::new(
            "to the tunnel, the node's own packet to a remote endpoint: keyed for its node",
            TO_TUNNEL,
            ipv4(UNDERLAY_MAC, A_MAC, (NODE, EPHEMERAL), (C, TARGET), syn),
        )
        .maps(world(NODE))
        .expect(Verdict::Ok, &[(To, FromNode)])
        .set_key(PEER, VNI, NODE)
        .out(Out::Unchanged),
        Row::new(
            "to the tunnel, the node's own packet to a local endpoint",
            TO_TUNNEL,
            ipv4(UNDERLAY_MAC, A_MAC, (NODE, EPHEMERAL), (B, TARGET), syn),
        )
        .maps(world(NODE))
        .expect(Verdict::Shot, &[(To, DropNoEndpoint)]),
        Row::new(
            "to the tunnel, not from the node's address",
            TO_TUNNEL,
            ipv4(UNDERLAY_MAC, A_MAC, (INTERNET, EPHEMERAL), (C, TARGET), syn),
        )
        .maps(world(NODE))
        .expect(Verdict::Shot, &[(To, DropSpoofed)]),
    ]
}

#[test]
fn vxlan_packets() {
    let mut fixture = Fixture::load(crate::VXLAN_TEST.name, crate::VXLAN_TEST.bytes, &[INGRESS, TO_TUNNEL]);
    fixture.run_table("vxlan", rows());
}
