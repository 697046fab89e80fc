//! `underlay.bpf.c`: the routing mesh's front door and the tunnel's sender check on the node's
//! underlay interface (underlay_ingress), with the overlay fast path's decapsulation. A route
//! lookup's answer comes from the test hook (`Put::Fib`).

use std::net::Ipv4Addr;

use meshd_ebpf::lb::{CtKey, CtVal, Flow, CT_FIN};
use meshd_ebpf::mesh::{MeshNat, PROTO_TCP};
use meshd_ebpf::node::{NodeConfig, NodeHop, NODE_HOPS_MAP};
use meshd_ebpf::overlay::{OverlayConfig, FAST_PATH};
use meshd_ebpf::underlay::INGRESS;
use meshd_ebpf::verdict::{Direction::FromTunnel, Direction::FromUnderlay as From, Reason::*};

use crate::fixture::{be, port, Fixture, Out, Put, Row, TestFib, Verdict, FIB_SUCCESS};
use crate::frames::{self, ipv4, raw, vxlan, Expect, Tcp, L4};
use crate::world::*;

const ETH_P_ARP: u16 = 0x0806;

/// A published-port packet from the outside client, through its router, to this host.
fn from_client(dst: (Ipv4Addr, u16), l4: L4) -> Vec<u8> {
    ipv4(ROUTER_MAC, HOST_MAC, (CLIENT, CLIENT_PORT), dst, l4)
}

/// A VXLAN packet from `outer_src` through the hop `hop_mac`, carrying C -> B.
fn tunnel_from(hop_mac: frames::Mac, outer_src: Ipv4Addr) -> Vec<u8> {
    let inner = ipv4(REMOTE_VETH_MAC, A_MAC, (C, EPHEMERAL), (B, TARGET), L4::Tcp(Tcp::Syn));
    vxlan(hop_mac, HOST_MAC, outer_src, NODE, VNI, &inner)
}

/// A VXLAN packet from the peer node through its own MAC, carrying `inner`.
fn tunnel(inner: &[u8]) -> Vec<u8> {
    vxlan(PEER_MAC, HOST_MAC, PEER, NODE, VNI, inner)
}

/// md_ct_v3's entry of the client's flow after the run.
fn tracked(f: &mut Fixture) -> Option<CtVal> {
    f.lookup(meshd_ebpf::lb::CT_MAP, &client_flow())
}

fn fast_path() -> Put {
    Put::Overlay(OverlayConfig {
        flags: FAST_PATH,
        underlay_ifindex: UNDERLAY_IFINDEX,
        underlay_mtu: 1500,
        pad: 0,
    })
}

fn fib(dmac: frames::Mac) -> Put {
    Put::Fib(TestFib { set: 1, ret: FIB_SUCCESS, ifindex: crate::fixture::IFINDEX, dmac, smac: UNDERLAY_MAC })
}

/// The client's flow in md_ct_v3.
fn client_flow() -> CtKey {
    CtKey {
        client_ip: be(CLIENT),
        vip: be(NODE),
        svc: SERVICE,
        client_port: port(CLIENT_PORT),
        port: port(PUBLISHED),
        proto: PROTO_TCP,
        pad: [0; 3],
    }
}

pub fn rows() -> Vec<Row> {
    let syn = L4::Tcp(Tcp::Syn);
    let ack = L4::Tcp(Tcp::Ack);
    let w = || world(NODE);
    let to_b =
        Expect { src_mac: veth_mac(B_IFINDEX), dst_mac: B_MAC, src: (CLIENT, CLIENT_PORT), dst: (B, TARGET) };
    vec![
        Row::new("ARP: none of its business", INGRESS, raw(ETH_P_ARP, 28))
            .maps(w())
            .expect(Verdict::Unspec, &[])
            .out(Out::Unchanged),
        Row::new(
            "to 127.0.0.0/8 from the wire: left to the stack (martian)",
            INGRESS,
            from_client((Ipv4Addr::new(127, 0, 0, 1), PUBLISHED), syn),
        )
        .maps(w())
        .maps([published()])
        .expect(Verdict::Unspec, &[])
        .out(Out::Unchanged),
        Row::new("a TCP packet to a port nobody published", INGRESS, from_client((NODE, 22), syn))
            .maps(w())
            .expect(Verdict::Unspec, &[])
            .out(Out::Unchanged),
        Row::new("VXLAN from a host that is no cluster node", INGRESS, tunnel_from(ROUTER_MAC, STRANGER))
            .maps(w())
            .expect(Verdict::Shot, &[(From, DropNotANode)]),
        Row::new(
            "VXLAN from a node's address through another hop than its route's",
            INGRESS,
            tunnel_from(EVIL_MAC, PEER),
        )
        .maps(w())
        .maps([fib(PEER_MAC)])
        .expect(Verdict::Shot, &[(From, DropSpoofed)]),
        Row::new(
            "VXLAN from a node through its route's hop: on to the VXLAN device, the hop remembered",
            INGRESS,
            tunnel_from(PEER_MAC, PEER),
        )
        .maps(w())
        .maps([fib(PEER_MAC)])
        .expect(Verdict::Unspec, &[])
        .out(Out::Unchanged)
        .after(|f| match f.lookup::<u32, NodeHop>(NODE_HOPS_MAP, &be(PEER)) {
            Some(hop) if hop.mac == PEER_MAC => Ok(()),
            other => Err(format!("md_node_hops_v1 holds {other:?}")),
        }),
        Row::new(
            "VXLAN of an encrypted network in clear from a node: dropped (it only comes out of WireGuard)",
            INGRESS,
            tunnel_from(PEER_MAC, PEER),
        )
        .maps(w())
        .maps([Put::NodeHop(PEER, PEER_MAC), fast_path(), Put::EncryptedNet(VNI)])
        .expect(Verdict::Shot, &[(From, DropClearEncrypted)]),
        Row::new(
            "VXLAN through a node's known hop, overlay fast path: decapsulated into the container",
            INGRESS,
            tunnel_from(PEER_MAC, PEER),
        )
        .maps(w())
        .maps([Put::NodeHop(PEER, PEER_MAC), fast_path()])
        .expect(Verdict::Redirect { ifindex: B_IFINDEX, peer: true }, &[(FromTunnel, DeliverTunnel)])
        .check(frames::l4_is(Expect {
            src_mac: veth_mac(B_IFINDEX),
            dst_mac: B_MAC,
            src: (C, EPHEMERAL),
            dst: (B, TARGET),
        })),
        Row::new(
            "a published port: balanced onto a local backend, the client's address kept",
            INGRESS,
            from_client((NODE, PUBLISHED), syn),
        )
        .maps(w())
        .maps(service(&[B]))
        .maps([published()])
        .expect(
            Verdict::Redirect { ifindex: B_IFINDEX, peer: true },
            &[(From, MeshDnat), (From, ForwardLocal)],
        )
        .check(frames::l4_is(to_b))
        .after(|f| match f.lookup::<_, MeshNat>(meshd_ebpf::mesh::MESH_RNAT_MAP, &mesh_reply(B)) {
            Some(nat)
                if (nat.addr, nat.port, nat.peer_mac, nat.local_mac)
                    == (be(NODE), port(PUBLISHED), ROUTER_MAC, HOST_MAC) =>
            {
                Ok(())
            }
            other => Err(format!("md_mesh_rnat_v2 holds {other:?}")),
        }),
        Row::new(
            "a published port: to a backend on another node, through the tunnel",
            INGRESS,
            from_client((NODE, PUBLISHED), syn),
        )
        .maps(w())
        .maps(service(&[C]))
        .maps([published()])
        .expect(
            Verdict::Redirect { ifindex: VXLAN_IFINDEX, peer: false },
            &[(From, MeshDnat), (From, ForwardTunnel)],
        )
        .set_key(PEER, VNI, NODE)
        .check(frames::l4_is(Expect {
            src_mac: ROUTER_MAC,
            dst_mac: HOST_MAC,
            src: (CLIENT, CLIENT_PORT),
            dst: (C, TARGET),
        })),
        Row::new(
            "a published port, from an overlay endpoint's address",
            INGRESS,
            ipv4(ROUTER_MAC, HOST_MAC, (C, CLIENT_PORT), (NODE, PUBLISHED), syn),
        )
        .maps(w())
        .maps(service(&[B]))
        .maps([published()])
        .expect(Verdict::Shot, &[(From, DropSpoofed)]),
        Row::new(
            "a published port, in a frame addressed to another host",
            INGRESS,
            ipv4(ROUTER_MAC, EVIL_MAC, (CLIENT, CLIENT_PORT), (NODE, PUBLISHED), syn),
        )
        .maps(w())
        .maps(service(&[B]))
        .maps([published()])
        .expect(Verdict::Shot, &[(From, DropSpoofed)]),
        Row::new(
            "a published port whose service has no VIP entry",
            INGRESS,
            from_client((NODE, PUBLISHED), syn),
        )
        .maps(w())
        .maps([published()])
        .expect(Verdict::Shot, &[(From, DropNoBackend)]),
        Row::new(
            "a TCP ACK to a published port, no tracked flow",
            INGRESS,
            from_client((NODE, PUBLISHED), ack),
        )
        .maps(w())
        .maps(service(&[B]))
        .maps([published()])
        .expect(Verdict::Shot, &[(From, DropNoFlow)]),
        Row::new(
            "a tracked published flow keeps its backend, whatever Maglev says now",
            INGRESS,
            from_client((NODE, PUBLISHED), ack),
        )
        .maps(w())
        .maps(service(&[B]))
        .maps([published(), Put::Ct(client_flow(), CtVal { backend_ip: be(C), flags: 0, last_seen: 0 })])
        .expect(
            Verdict::Redirect { ifindex: VXLAN_IFINDEX, peer: false },
            &[(From, MeshDnat), (From, ForwardTunnel)],
        )
        .set_key(PEER, VNI, NODE),
        Row::new(
            "VXLAN fast path: a remote backend's reply to a VIP flow balanced here gets the VIP back",
            INGRESS,
            tunnel(&ipv4(REMOTE_VETH_MAC, A_MAC, (C, TARGET), (A, EPHEMERAL), ack)),
        )
        .maps(w())
        .maps([
            Put::NodeHop(PEER, PEER_MAC),
            fast_path(),
            Put::Flow(
                A,
                reply_of(C, TARGET),
                Flow { addr: be(VIP), port: port(TARGET), flags: 0, last_seen: 0 },
            ),
        ])
        .expect(
            Verdict::Redirect { ifindex: A_IFINDEX, peer: true },
            &[(FromTunnel, LbRnat), (FromTunnel, DeliverTunnel)],
        )
        .check(frames::l4_is(Expect {
            src_mac: veth_mac(A_IFINDEX),
            dst_mac: A_MAC,
            src: (VIP, TARGET),
            dst: (A, EPHEMERAL),
        })),
        Row::new(
            "a tracked published flow's RST: to its backend, then forgotten",
            INGRESS,
            from_client((NODE, PUBLISHED), L4::Tcp(Tcp::Rst)),
        )
        .maps(w())
        .maps(service(&[B]))
        .maps([published(), Put::Ct(client_flow(), CtVal { backend_ip: be(C), flags: 0, last_seen: 0 })])
        .expect(
            Verdict::Redirect { ifindex: VXLAN_IFINDEX, peer: false },
            &[(From, MeshDnat), (From, ForwardTunnel)],
        )
        .set_key(PEER, VNI, NODE)
        .after(|f| match tracked(f) {
            None => Ok(()),
            Some(v) => Err(format!("md_ct_v3 still holds {v:?}")),
        }),
        Row::new(
            "a tracked published flow's FIN: to its backend, marked to expire soon",
            INGRESS,
            from_client((NODE, PUBLISHED), L4::Tcp(Tcp::Fin)),
        )
        .maps(w())
        .maps(service(&[B]))
        .maps([published(), Put::Ct(client_flow(), CtVal { backend_ip: be(C), flags: 0, last_seen: 0 })])
        .expect(
            Verdict::Redirect { ifindex: VXLAN_IFINDEX, peer: false },
            &[(From, MeshDnat), (From, ForwardTunnel)],
        )
        .set_key(PEER, VNI, NODE)
        .after(|f| match tracked(f) {
            Some(v) if v.backend_ip == be(C) && v.flags == CT_FIN => Ok(()),
            other => Err(format!("md_ct_v3 holds {other:?}")),
        }),
        Row::new(
            "a published flow idle past the node's timeout: balanced afresh, even by an ACK",
            INGRESS,
            from_client((NODE, PUBLISHED), ack),
        )
        .maps(w())
        .maps(service(&[B]))
        .maps([
            published(),
            Put::Ct(client_flow(), CtVal { backend_ip: be(C), flags: 0, last_seen: 0 }),
            Put::Config(NodeConfig {
                vxlan_ifindex: VXLAN_IFINDEX,
                node_ip: be(NODE),
                ct_idle_ns: 1,
                ..NodeConfig::default()
            }),
        ])
        .expect(
            Verdict::Redirect { ifindex: B_IFINDEX, peer: true },
            &[(From, MeshDnat), (From, ForwardLocal)],
        )
        .check(frames::l4_is(to_b))
        .after(|f| match tracked(f) {
            Some(v) if v.backend_ip == be(B) => Ok(()),
            other => Err(format!("md_ct_v3 holds {other:?}")),
        }),
        Row::new(
            "a published port whose Maglev pick is no endpoint",
            INGRESS,
            from_client((NODE, PUBLISHED), syn),
        )
        .maps(w())
        .maps(service(&[NOBODY]))
        .maps([published()])
        .expect(Verdict::Shot, &[(From, DropNoEndpoint)]),
        Row::new(
            "mode=host: balanced from this node's table only, onto its local task, the client's address kept",
            INGRESS,
            from_client((NODE, PUBLISHED), syn),
        )
        .maps(w())
        // The service's own table would send it through the tunnel to C.
        .maps(service(&[C]))
        .maps(published_host(&[B]))
        .expect(
            Verdict::Redirect { ifindex: B_IFINDEX, peer: true },
            &[(From, MeshDnat), (From, ForwardLocal)],
        )
        .check(frames::l4_is(to_b))
        .after(|f| {
            match f.lookup::<_, CtVal>(meshd_ebpf::lb::CT_MAP, &CtKey { svc: LOCAL_TABLE, ..client_flow() }) {
                Some(v) if v.backend_ip == be(B) => Ok(()),
                other => Err(format!("md_ct_v3 holds {other:?} under the local table's id")),
            }
        }),
        Row::new(
            "mode=host: a table (or a tracked flow) naming a task on another node never crosses the tunnel",
            INGRESS,
            from_client((NODE, PUBLISHED), syn),
        )
        .maps(w())
        .maps(service(&[C]))
        .maps(published_host(&[C]))
        .expect(Verdict::Shot, &[(From, DropNoBackend)]),
        Row::new(
            "address=: a published port on another of the node's addresses, none on this one",
            INGRESS,
            from_client((NODE, PUBLISHED), syn),
        )
        .maps(w())
        .maps(service(&[B]))
        .maps([Put::Frontend(
            meshd_ebpf::mesh::FrontendKey { addr: be(PEER), port: port(PUBLISHED), proto: PROTO_TCP, pad: 0 },
            meshd_ebpf::mesh::Frontend { vip: be(VIP), target_port: port(TARGET), flags: 0, table: SERVICE },
        )])
        .expect(Verdict::Unspec, &[])
        .out(Out::Unchanged),
    ]
}

#[test]
fn underlay_packets() {
    let mut fixture = Fixture::load(crate::UNDERLAY_TEST.name, crate::UNDERLAY_TEST.bytes, &[INGRESS]);
    fixture.run_table("underlay", rows());
}
