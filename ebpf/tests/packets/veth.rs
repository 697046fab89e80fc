//! `veth.bpf.c`: what a container sends (veth_from_container, tc ingress of its host-side veth)
//! and what the node's stack delivers to it (veth_to_container).

use meshd_ebpf::encrypt::EncryptConfig;
use meshd_ebpf::lb::{Flow, CT_FIN};
use meshd_ebpf::mesh::{MeshNat, MeshReturn};
use meshd_ebpf::node::NodeConfig;
use meshd_ebpf::overlay::{OverlayConfig, OverlayHop, FAST_PATH};
use meshd_ebpf::verdict::{Direction::FromContainer as From, Direction::ToContainer as To, Reason::*};
use meshd_ebpf::veth::{FROM_CONTAINER, TO_CONTAINER};
use smoltcp::wire::ArpOperation;

use crate::fixture::{be, port, Fixture, Out, Put, Row, TestFib, Verdict, FIB_SUCCESS, IFINDEX};
use crate::frames::{self, arp, icmp_unreachable, ipv4, raw, Expect, Tcp, L4};
use crate::world::*;

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;

/// A packet from container A (the veth under test is A's) to `dst:dport`.
fn from_a(dst: std::net::Ipv4Addr, dport: u16, l4: L4) -> Vec<u8> {
    ipv4(A_MAC, veth_mac(IFINDEX), (A, EPHEMERAL), (dst, dport), l4)
}

/// A packet from container B (the veth under test is B's), from port 80, to `dst:dport`.
fn from_b(dst: std::net::Ipv4Addr, dport: u16, l4: L4) -> Vec<u8> {
    ipv4(B_MAC, veth_mac(IFINDEX), (B, TARGET), (dst, dport), l4)
}

/// Container A's flow to the VIP, tracked to `backend`.
fn tracked_to(backend: std::net::Ipv4Addr) -> Put {
    Put::Flow(
        A,
        to_service(VIP, TARGET),
        Flow { addr: be(backend), port: port(TARGET), flags: 0, last_seen: crate::fixture::now_ns() },
    )
}

fn redirect_peer(ifindex: u32) -> Verdict {
    Verdict::Redirect { ifindex, peer: true }
}

fn redirect(ifindex: u32) -> Verdict {
    Verdict::Redirect { ifindex, peer: false }
}

pub fn rows() -> Vec<Row> {
    let w = || world(A);
    let syn = L4::Tcp(Tcp::Syn);
    let ack = L4::Tcp(Tcp::Ack);
    let to_b_at =
        |dport| Expect { src_mac: veth_mac(IFINDEX), dst_mac: B_MAC, src: (A, EPHEMERAL), dst: (B, dport) };
    let about_vip = ipv4(A_MAC, veth_mac(A_IFINDEX), (A, EPHEMERAL), (B, TARGET), syn);
    vec![
        Row::new("a veth meshd did not attach: passes untouched", FROM_CONTAINER, from_a(B, 53, L4::Udp))
            .expect(Verdict::Ok, &[(From, PassStack)])
            .out(Out::Unchanged),
        // An ARP frame cut short (the kernel refuses to test-run an IPv4 frame shorter than an
        // IPv4 header, so that case of parse_ipv4 has no row).
        Row::new("an ARP frame too short for its body", FROM_CONTAINER, raw(ETH_P_ARP, 10))
            .maps(w())
            .expect(Verdict::Shot, &[(From, DropMalformed)]),
        Row::new("IPv6", FROM_CONTAINER, raw(ETH_P_IPV6, 40))
            .maps(w())
            .expect(Verdict::Shot, &[(From, DropUnsupportedL3)]),
        Row::new(
            "an ARP request for the gateway: answered with the veth's MAC",
            FROM_CONTAINER,
            arp(ArpOperation::Request, A_MAC, [0xff; 6], A, [0; 6], GATEWAY),
        )
        .maps(w())
        .expect(redirect(IFINDEX), &[(From, ArpReply)])
        .check(frames::arp_reply_is(veth_mac(IFINDEX), A_MAC, GATEWAY, A)),
        Row::new(
            "an ARP request for its own address (duplicate address detection): silence",
            FROM_CONTAINER,
            arp(ArpOperation::Request, A_MAC, [0xff; 6], A, [0; 6], A),
        )
        .maps(w())
        .expect(Verdict::Shot, &[(From, DropArp)]),
        Row::new(
            "an ARP reply (the container answers the node): to the node's stack",
            FROM_CONTAINER,
            arp(ArpOperation::Reply, A_MAC, veth_mac(IFINDEX), A, veth_mac(IFINDEX), GATEWAY),
        )
        .maps(w())
        .expect(Verdict::Ok, &[(From, PassStack)])
        .out(Out::Unchanged),
        Row::new(
            "a source other than its own address",
            FROM_CONTAINER,
            ipv4(A_MAC, veth_mac(IFINDEX), (NOBODY, EPHEMERAL), (B, 53), L4::Udp),
        )
        .maps(w())
        .expect(Verdict::Shot, &[(From, DropSpoofed)]),
        Row::new("to a local endpoint of its network: into that container", FROM_CONTAINER, from_a(B, 53, L4::Udp))
            .maps(w())
            .expect(redirect_peer(B_IFINDEX), &[(From, ForwardLocal)])
            .check(frames::l4_is(to_b_at(53))),
        Row::new("to an endpoint of another network", FROM_CONTAINER, from_a(D, 53, L4::Udp))
            .maps(w())
            .expect(Verdict::Shot, &[(From, DropNetworkMismatch)]),
        Row::new("to an address of its network with no endpoint", FROM_CONTAINER, from_a(NOBODY, 53, L4::Udp))
            .maps(w())
            .expect(Verdict::Shot, &[(From, DropNoEndpoint)]),
        Row::new("outside the overlay: up the node's stack", FROM_CONTAINER, from_a(INTERNET, 53, L4::Udp))
            .maps(w())
            .expect(Verdict::Ok, &[(From, PassStack)])
            .out(Out::Unchanged),
        Row::new("UDP to the VXLAN port outside the overlay", FROM_CONTAINER, from_a(INTERNET, 4789, L4::Udp))
            .maps(w())
            .expect(Verdict::Shot, &[(From, DropTunnelPort)]),
        // A cluster created with --data-path-port 4790: that port is the one kept from the
        // containers, and 4789 is a port like any other.
        Row::new("UDP to the cluster's data path port 4790", FROM_CONTAINER, from_a(INTERNET, 4790, L4::Udp))
            .maps(w().into_iter().chain([data_path_port(4790)]))
            .expect(Verdict::Shot, &[(From, DropTunnelPort)]),
        Row::new("UDP to 4789 when the data path port is 4790", FROM_CONTAINER, from_a(INTERNET, 4789, L4::Udp))
            .maps(w().into_iter().chain([data_path_port(4790)]))
            .expect(Verdict::Ok, &[(From, PassStack)])
            .out(Out::Unchanged),
        Row::new("an --internal network: outside the overlay", FROM_CONTAINER, from_a(INTERNET, 80, syn))
            .maps(w())
            .maps([internal_a()])
            .expect(Verdict::Shot, &[(From, DropInternal)]),
        Row::new("an --internal network: to the node's underlay address", FROM_CONTAINER, from_a(NODE, 22, syn))
            .maps(w())
            .maps([internal_a()])
            .expect(Verdict::Shot, &[(From, DropInternal)]),
        Row::new(
            "an --internal network: a link-local address, not port 53",
            FROM_CONTAINER,
            from_a(NODE_DNS, 80, syn),
        )
        .maps(w())
        .maps([internal_a()])
        .expect(Verdict::Shot, &[(From, DropInternal)]),
        Row::new(
            "an --internal network: DNS to the node's link-local address, up the stack",
            FROM_CONTAINER,
            from_a(NODE_DNS, 53, L4::Udp),
        )
        .maps(w())
        .maps([internal_a()])
        .expect(Verdict::Ok, &[(From, PassStack)])
        .out(Out::Unchanged),
        Row::new("an --internal network: to a local endpoint of its network", FROM_CONTAINER, from_a(B, 53, L4::Udp))
            .maps(w())
            .maps([internal_a()])
            .expect(redirect_peer(B_IFINDEX), &[(From, ForwardLocal)])
            .check(frames::l4_is(to_b_at(53))),
        Row::new(
            "to a remote endpoint: into the VXLAN device with its node's key",
            FROM_CONTAINER,
            from_a(C, TARGET, syn),
        )
        .maps(w())
        .expect(redirect(VXLAN_IFINDEX), &[(From, ForwardTunnel)])
        .set_key(PEER, VNI, NODE)
        .out(Out::Unchanged),
        Row::new(
            "to a remote endpoint of an encrypted network, no tunnel to its node: dropped, never in clear",
            FROM_CONTAINER,
            from_a(C, TARGET, syn),
        )
        .maps(w())
        .maps([Put::EncryptedNet(VNI), engine()])
        .expect(Verdict::Shot, &[(From, DropNoTunnel)]),
        Row::new(
            "encrypted, no engine at all (md_encrypt_v1 still zero): dropped",
            FROM_CONTAINER,
            from_a(C, TARGET, syn),
        )
        .maps(w())
        .maps([Put::EncryptedNet(VNI), Put::Tunnel(PEER)])
        .expect(Verdict::Shot, &[(From, DropNoTunnel)]),
        Row::new(
            "encrypted, the tunnel up but the route into the engine gone (engine killed): dropped",
            FROM_CONTAINER,
            from_a(C, TARGET, syn),
        )
        .maps(w())
        .maps([Put::EncryptedNet(VNI), Put::Tunnel(PEER), engine(), engine_route(-19)])
        .expect(Verdict::Shot, &[(From, DropNoTunnel)]),
        Row::new(
            "encrypted, the tunnel and the engine's route up: into the VXLAN device, marked for WireGuard",
            FROM_CONTAINER,
            from_a(C, TARGET, syn),
        )
        .maps(w())
        .maps([Put::EncryptedNet(VNI), Put::Tunnel(PEER), engine(), engine_route(FIB_SUCCESS)])
        .expect(redirect(VXLAN_IFINDEX), &[(From, ForwardTunnel)])
        .set_key(PEER, VNI, NODE)
        .out(Out::Unchanged),
        Row::new(
            "encrypted with the overlay fast path on: never encapsulated onto the wire, dropped without a tunnel",
            FROM_CONTAINER,
            from_a(C, TARGET, syn),
        )
        .maps(w())
        .maps([
            Put::EncryptedNet(VNI),
            engine(),
            Put::Overlay(OverlayConfig {
                flags: FAST_PATH,
                underlay_ifindex: UNDERLAY_IFINDEX,
                underlay_mtu: 1500,
                pad: 0,
            }),
            Put::OverlayHop(
                PEER,
                OverlayHop { dmac: PEER_MAC, smac: UNDERLAY_MAC, ifindex: UNDERLAY_IFINDEX, checked_ns: 0 },
            ),
        ])
        .expect(Verdict::Shot, &[(From, DropNoTunnel)]),
        Row::new("to a remote endpoint, no VXLAN device yet", FROM_CONTAINER, from_a(C, TARGET, syn))
            .maps(w())
            .maps([Put::Config(NodeConfig { node_ip: be(NODE), ..NodeConfig::default() })])
            .expect(Verdict::Shot, &[(From, DropNoVxlan)]),
        Row::new(
            "to a remote endpoint, overlay fast path: encapsulated, out of the underlay",
            FROM_CONTAINER,
            from_a(C, TARGET, syn),
        )
        .maps(w())
        .maps([
            Put::Overlay(OverlayConfig {
                flags: FAST_PATH,
                underlay_ifindex: UNDERLAY_IFINDEX,
                underlay_mtu: 1500,
                pad: 0,
            }),
            Put::OverlayHop(
                PEER,
                OverlayHop { dmac: PEER_MAC, smac: UNDERLAY_MAC, ifindex: UNDERLAY_IFINDEX, checked_ns: 0 },
            ),
        ])
        .expect(redirect(UNDERLAY_IFINDEX), &[(From, ForwardTunnel)])
        .check(frames::vxlan_is(UNDERLAY_MAC, PEER_MAC, NODE, PEER, VNI, from_a(C, TARGET, syn))),
        Row::new("a TCP SYN to a VIP: balanced onto a local backend", FROM_CONTAINER, from_a(VIP, TARGET, syn))
            .maps(w())
            .maps(service(&[B]))
            .maps([Put::FlowTable(A)])
            .expect(redirect_peer(B_IFINDEX), &[(From, LbDnat), (From, ForwardLocal)])
            .check(frames::l4_is(to_b_at(TARGET)))
            .after(|f| {
                let mut table = f.flow_table(A);
                let fwd = table.get(&to_service(VIP, TARGET), 0).map_err(|e| format!("no flow: {e}"))?;
                let back = table.get(&reply_of(B, TARGET), 0).map_err(|e| format!("no reply entry: {e}"))?;
                if (fwd.addr, fwd.port, back.addr, back.port) != (be(B), port(TARGET), be(VIP), port(TARGET)) {
                    return Err(format!("flow {fwd:?}, reply {back:?}"));
                }
                let _ = &mut table;
                Ok(())
            }),
        Row::new(
            "a tracked VIP flow's ACK keeps its backend (a remote one), whatever Maglev says now",
            FROM_CONTAINER,
            from_a(VIP, TARGET, ack),
        )
        .maps(w())
        .maps(service(&[B]))
        .maps([Put::Flow(
            A,
            to_service(VIP, TARGET),
            Flow { addr: be(C), port: port(TARGET), flags: 0, last_seen: crate::fixture::now_ns() },
        )])
        .expect(redirect(VXLAN_IFINDEX), &[(From, LbDnat), (From, ForwardTunnel)])
        .set_key(PEER, VNI, NODE)
        .check(frames::l4_is(Expect {
            src_mac: A_MAC,
            dst_mac: veth_mac(IFINDEX),
            src: (A, EPHEMERAL),
            dst: (C, TARGET),
        })),
        Row::new(
            "a tracked VIP flow's RST: to its backend, then forgotten",
            FROM_CONTAINER,
            from_a(VIP, TARGET, L4::Tcp(Tcp::Rst)),
        )
        .maps(w())
        .maps(service(&[B]))
        .maps([tracked_to(C)])
        .expect(redirect(VXLAN_IFINDEX), &[(From, LbDnat), (From, ForwardTunnel)])
        .set_key(PEER, VNI, NODE)
        .after(|f| match f.flow_table(A).get(&to_service(VIP, TARGET), 0) {
            Err(_) => Ok(()),
            Ok(flow) => Err(format!("the flow is still tracked: {flow:?}")),
        }),
        Row::new(
            "a tracked VIP flow's FIN: to its backend, marked to expire soon",
            FROM_CONTAINER,
            from_a(VIP, TARGET, L4::Tcp(Tcp::Fin)),
        )
        .maps(w())
        .maps(service(&[B]))
        .maps([tracked_to(C)])
        .expect(redirect(VXLAN_IFINDEX), &[(From, LbDnat), (From, ForwardTunnel)])
        .set_key(PEER, VNI, NODE)
        .after(|f| match f.flow_table(A).get(&to_service(VIP, TARGET), 0) {
            Ok(flow) if flow.addr == be(C) && u32::from(flow.flags) == CT_FIN => Ok(()),
            other => Err(format!("the flow table holds {other:?}")),
        }),
        Row::new(
            "a VIP flow idle past the node's timeout: balanced afresh, even by an ACK",
            FROM_CONTAINER,
            from_a(VIP, TARGET, ack),
        )
        .maps(w())
        .maps(service(&[B]))
        .maps([
            tracked_to(C),
            Put::Config(NodeConfig { vxlan_ifindex: VXLAN_IFINDEX, node_ip: be(NODE), ct_idle_ns: 1, ..NodeConfig::default() }),
        ])
        .expect(redirect_peer(B_IFINDEX), &[(From, LbDnat), (From, ForwardLocal)])
        .check(frames::l4_is(to_b_at(TARGET)))
        .after(|f| match f.flow_table(A).get(&to_service(VIP, TARGET), 0) {
            Ok(flow) if flow.addr == be(B) => Ok(()),
            other => Err(format!("the flow table holds {other:?}")),
        }),
        Row::new("a VIP of another network", FROM_CONTAINER, from_a(OTHER_VIP, TARGET, syn))
            .maps(w())
            .maps([Put::Service(OTHER_VIP, SERVICE + 1), Put::FlowTable(A)])
            .expect(Verdict::Shot, &[(From, DropNetworkMismatch)]),
        Row::new("a VIP, but the container has no flow table yet", FROM_CONTAINER, from_a(VIP, TARGET, syn))
            .maps(w())
            .maps(service(&[B]))
            .expect(Verdict::Shot, &[(From, DropNoFlowTable)]),
        Row::new("a VIP without a Maglev table (no backend)", FROM_CONTAINER, from_a(VIP, TARGET, syn))
            .maps(w())
            .maps([Put::Service(VIP, SERVICE), Put::FlowTable(A)])
            .expect(Verdict::Shot, &[(From, DropNoBackend)]),
        Row::new("a TCP ACK to a VIP with no tracked flow: no state", FROM_CONTAINER, from_a(VIP, TARGET, ack))
            .maps(w())
            .maps(service(&[B]))
            .maps([Put::FlowTable(A)])
            .expect(Verdict::Shot, &[(From, DropNoFlow)]),
        Row::new(
            "hairpin: a published port of its own node, balanced at the veth onto the target port",
            FROM_CONTAINER,
            from_a(NODE, PUBLISHED, syn),
        )
        .maps(w())
        .maps(service(&[B]))
        .maps([published(), Put::FlowTable(A)])
        .expect(redirect_peer(B_IFINDEX), &[(From, Hairpin), (From, ForwardLocal)])
        .check(frames::l4_is(to_b_at(TARGET))),
        Row::new(
            "a VIP flow balanced onto the client itself: its source becomes the gateway",
            FROM_CONTAINER,
            from_a(VIP, TARGET, syn),
        )
        .maps(w())
        .maps(service(&[A]))
        .maps([Put::FlowTable(A)])
        .expect(redirect_peer(IFINDEX), &[(From, LbDnat), (From, ForwardLocal)])
        .check(frames::l4_is(Expect {
            src_mac: veth_mac(IFINDEX),
            dst_mac: A_MAC,
            src: (GATEWAY, EPHEMERAL),
            dst: (A, TARGET),
        })),
        Row::new(
            "its answer to that flow (to its gateway): back into it from the VIP",
            FROM_CONTAINER,
            ipv4(A_MAC, veth_mac(IFINDEX), (A, TARGET), (GATEWAY, EPHEMERAL), ack),
        )
        .maps(w())
        .maps([Put::Flow(A, reply_of(A, TARGET), Flow { addr: be(VIP), port: port(TARGET), flags: 0, last_seen: 0 })])
        .expect(redirect_peer(IFINDEX), &[(From, LbRnat), (From, ForwardLocal)])
        .check(frames::l4_is(Expect {
            src_mac: veth_mac(IFINDEX),
            dst_mac: A_MAC,
            src: (VIP, TARGET),
            dst: (A, EPHEMERAL),
        })),
        Row::new("to its gateway with no flow of its own behind it", FROM_CONTAINER, from_a(GATEWAY, TARGET, ack))
            .maps(w())
            .expect(Verdict::Shot, &[(From, DropNoEndpoint)]),
        Row::new(
            "a direct flow takes over a stale VIP reply translation of the same ports",
            FROM_CONTAINER,
            from_a(B, TARGET, syn),
        )
        .maps(w())
        .maps([Put::Flow(A, reply_of(B, TARGET), Flow { addr: be(VIP), port: port(TARGET), flags: 0, last_seen: 0 })])
        .expect(redirect_peer(B_IFINDEX), &[(From, ForwardLocal)])
        .check(frames::l4_is(to_b_at(TARGET)))
        .after(|f| {
            let table = f.flow_table(A);
            let back = table.get(&reply_of(B, TARGET), 0).map_err(|e| format!("no reply entry: {e}"))?;
            if back.addr != 0 {
                return Err(format!("the reply entry still translates: {back:?}"));
            }
            Ok(())
        }),
        Row::new(
            "a local backend's reply to a VIP flow: the source becomes the VIP again",
            FROM_CONTAINER,
            from_b(A, EPHEMERAL, ack),
        )
        .maps(world(B))
        .maps([Put::Flow(A, reply_of(B, TARGET), Flow { addr: be(VIP), port: port(TARGET), flags: 0, last_seen: 0 })])
        .expect(redirect_peer(A_IFINDEX), &[(From, LbRnat), (From, ForwardLocal)])
        .check(frames::l4_is(Expect {
            src_mac: veth_mac(IFINDEX),
            dst_mac: A_MAC,
            src: (VIP, TARGET),
            dst: (A, EPHEMERAL),
        })),
        Row::new(
            "a local backend's ICMP error about a VIP flow: translated back for the client",
            FROM_CONTAINER,
            icmp_unreachable(B_MAC, veth_mac(IFINDEX), B, A, &about_vip),
        )
        .maps(world(B))
        .maps([Put::Flow(A, reply_of(B, TARGET), Flow { addr: be(VIP), port: port(TARGET), flags: 0, last_seen: 0 })])
        .expect(redirect_peer(A_IFINDEX), &[(From, IcmpRnat), (From, ForwardLocal)])
        .check(frames::icmp_is(veth_mac(IFINDEX), A_MAC, (VIP, A), ((A, EPHEMERAL), (VIP, TARGET)))),
        Row::new(
            "a published flow's reply, this node the ingress: from the published address, to the client's hop",
            FROM_CONTAINER,
            from_b(CLIENT, CLIENT_PORT, ack),
        )
        .maps(world(B))
        .maps([Put::MeshNat(
            mesh_reply(B),
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
        .expect(redirect(UNDERLAY_IFINDEX), &[(From, MeshReply)])
        .check(frames::l4_is(Expect {
            src_mac: UNDERLAY_MAC,
            dst_mac: ROUTER_MAC,
            src: (NODE, PUBLISHED),
            dst: (CLIENT, CLIENT_PORT),
        })),
        Row::new(
            "a published flow's reply, another node the ingress: back through the tunnel to it",
            FROM_CONTAINER,
            from_b(CLIENT, CLIENT_PORT, ack),
        )
        .maps(world(B))
        .maps([Put::MeshReturn(mesh_reply(B), MeshReturn { node_ip: be(PEER), vni: VNI, last_seen: 0 })])
        .expect(redirect(VXLAN_IFINDEX), &[(From, MeshReturn)])
        .set_key(PEER, VNI, NODE)
        .out(Out::Unchanged),
        Row::new("delivered by the node's stack: counted, untouched", TO_CONTAINER, from_a(B, 53, L4::Udp))
            .maps(w())
            .expect(Verdict::Ok, &[(To, PassStack)])
            .out(Out::Unchanged),
    ]
}

#[test]
fn veth_packets() {
    let mut fixture =
        Fixture::load(crate::VETH_TEST.name, crate::VETH_TEST.bytes, &[FROM_CONTAINER, TO_CONTAINER]);
    fixture.run_table("veth", rows());
}

/// The node settings of [`world`] with the cluster's data path port at `value`.
fn data_path_port(value: u16) -> Put {
    Put::Config(NodeConfig {
        vxlan_ifindex: VXLAN_IFINDEX,
        node_ip: be(NODE),
        vxlan_port: port(value),
        ..NodeConfig::default()
    })
}

/// The WireGuard engine's interface in the encrypted rows.
const WG_IFINDEX: u32 = 77;

/// md_encrypt_v1 with an engine.
fn engine() -> Put {
    Put::Encrypt(EncryptConfig { wg_ifindex: WG_IFINDEX, table: 0x6d64, mark: 0x6d64_0e00, pad: 0 })
}

/// The route lookup into the engine's table: `ret` (0: the engine's interface answers).
fn engine_route(ret: i32) -> Put {
    Put::Fib(TestFib { set: 1, ret, ifindex: WG_IFINDEX, dmac: [0; 6], smac: [0; 6] })
}
