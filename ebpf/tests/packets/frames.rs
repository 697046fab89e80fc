//! Packets for the tables, built and checked with smoltcp's wire formats: every frame a row
//! sends is well formed (checksums filled) unless the row is about a malformed one, and every
//! frame a program emits is parsed back and its checksums verified.

use std::net::Ipv4Addr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr,
    Icmpv4Message, Icmpv4Packet, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpPacket, UdpPacket,
};

pub type Mac = [u8; 6];

/// TCP flags a row sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tcp {
    Syn,
    Ack,
    /// FIN and ACK.
    Fin,
    /// RST and ACK.
    Rst,
}

/// L4 of a packet: TCP with flags, or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    Tcp(Tcp),
    Udp,
}

/// An Ethernet + IPv4 + TCP/UDP packet (checksums valid, 8 bytes of payload).
pub fn ipv4(src_mac: Mac, dst_mac: Mac, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), l4: L4) -> Vec<u8> {
    let payload = b"meshd!!!";
    let l4_len = match l4 {
        L4::Tcp(_) => 20 + payload.len(),
        L4::Udp => 8 + payload.len(),
    };
    let proto = match l4 {
        L4::Tcp(_) => IpProtocol::Tcp,
        L4::Udp => IpProtocol::Udp,
    };
    let mut buf = frame_with_ip(src_mac, dst_mac, src.0, dst.0, proto, l4_len);
    let (s, d) = (IpAddress::Ipv4(src.0), IpAddress::Ipv4(dst.0));
    let l4_bytes = &mut buf[14 + 20..];
    match l4 {
        L4::Tcp(flags) => {
            let mut tcp = TcpPacket::new_unchecked(l4_bytes);
            tcp.set_src_port(src.1);
            tcp.set_dst_port(dst.1);
            tcp.set_seq_number(smoltcp::wire::TcpSeqNumber(1000));
            tcp.set_header_len(20);
            tcp.clear_flags();
            match flags {
                Tcp::Syn => tcp.set_syn(true),
                Tcp::Ack | Tcp::Fin | Tcp::Rst => {
                    tcp.set_ack(true);
                    tcp.set_ack_number(smoltcp::wire::TcpSeqNumber(2000));
                    tcp.set_fin(flags == Tcp::Fin);
                    tcp.set_rst(flags == Tcp::Rst);
                }
            }
            tcp.set_window_len(65535);
            tcp.payload_mut().copy_from_slice(payload);
            tcp.fill_checksum(&s, &d);
        }
        L4::Udp => {
            let mut udp = UdpPacket::new_unchecked(l4_bytes);
            udp.set_src_port(src.1);
            udp.set_dst_port(dst.1);
            udp.set_len((8 + payload.len()) as u16);
            udp.payload_mut().copy_from_slice(payload);
            udp.fill_checksum(&s, &d);
        }
    }
    buf
}

/// Ethernet + a 20-byte IPv4 header (checksum filled) + room for `payload_len` bytes.
fn frame_with_ip(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: IpProtocol,
    payload_len: usize,
) -> Vec<u8> {
    let mut buf = vec![0u8; 14 + 20 + payload_len];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: EthernetAddress(src_mac),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let ip = Ipv4Repr { src_addr: src, dst_addr: dst, next_header: proto, payload_len, hop_limit: 64 };
    ip.emit(&mut Ipv4Packet::new_unchecked(eth.payload_mut()), &ChecksumCapabilities::default());
    buf
}

/// An ICMP "port unreachable" from `from` to `to` about the TCP packet `about` (a full frame
/// built by [`ipv4`]: its IPv4 header and first 8 L4 bytes are quoted).
pub fn icmp_unreachable(src_mac: Mac, dst_mac: Mac, from: Ipv4Addr, to: Ipv4Addr, about: &[u8]) -> Vec<u8> {
    let quoted = &about[14..14 + 28];
    let mut buf = frame_with_ip(src_mac, dst_mac, from, to, IpProtocol::Icmp, 8 + quoted.len());
    let mut icmp = Icmpv4Packet::new_unchecked(&mut buf[14 + 20..]);
    icmp.set_msg_type(Icmpv4Message::DstUnreachable);
    icmp.set_msg_code(3);
    icmp.data_mut().copy_from_slice(quoted);
    icmp.fill_checksum();
    buf
}

/// An ARP packet for IPv4 over Ethernet.
pub fn arp(op: ArpOperation, src_mac: Mac, dst_mac: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut buf = vec![0u8; 14 + 28];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: EthernetAddress(src_mac),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut eth);
    ArpRepr::EthernetIpv4 {
        operation: op,
        source_hardware_addr: EthernetAddress(src_mac),
        source_protocol_addr: spa,
        target_hardware_addr: EthernetAddress(tha),
        target_protocol_addr: tpa,
    }
    .emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    buf
}

/// A frame of `ethertype` with `len` bytes of zeros after the Ethernet header.
pub fn raw(ethertype: u16, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; 14 + len];
    buf[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0xee]);
    buf[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xef]);
    buf[12..14].copy_from_slice(&ethertype.to_be_bytes());
    buf
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// What a TCP or UDP frame must carry: MACs, addresses and ports; checksums must be valid.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub src: (Ipv4Addr, u16),
    pub dst: (Ipv4Addr, u16),
}

/// Parses `frame` as Ethernet + IPv4 + TCP/UDP and checks it against `want`.
pub fn check_l4(frame: &[u8], want: &Expect) -> Result<(), String> {
    let eth = EthernetFrame::new_checked(frame).map_err(|e| format!("ethernet: {e}"))?;
    ensure(eth.src_addr().0 == want.src_mac, || {
        format!("source MAC {}, expected {}", eth.src_addr(), EthernetAddress(want.src_mac))
    })?;
    ensure(eth.dst_addr().0 == want.dst_mac, || {
        format!("destination MAC {}, expected {}", eth.dst_addr(), EthernetAddress(want.dst_mac))
    })?;
    ensure(eth.ethertype() == EthernetProtocol::Ipv4, || format!("ethertype {}", eth.ethertype()))?;
    let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|e| format!("ipv4: {e}"))?;
    ensure(ip.verify_checksum(), || "IPv4 header checksum invalid".into())?;
    ensure(ip.src_addr() == want.src.0, || format!("source {}, expected {}", ip.src_addr(), want.src.0))?;
    ensure(ip.dst_addr() == want.dst.0, || {
        format!("destination {}, expected {}", ip.dst_addr(), want.dst.0)
    })?;
    let (s, d) = (IpAddress::Ipv4(ip.src_addr()), IpAddress::Ipv4(ip.dst_addr()));
    let (sport, dport) = match ip.next_header() {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(ip.payload()).map_err(|e| format!("tcp: {e}"))?;
            ensure(tcp.verify_checksum(&s, &d), || "TCP checksum invalid".into())?;
            (tcp.src_port(), tcp.dst_port())
        }
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(ip.payload()).map_err(|e| format!("udp: {e}"))?;
            ensure(udp.verify_checksum(&s, &d), || "UDP checksum invalid".into())?;
            (udp.src_port(), udp.dst_port())
        }
        other => return Err(format!("protocol {other}")),
    };
    ensure(sport == want.src.1, || format!("source port {sport}, expected {}", want.src.1))?;
    ensure(dport == want.dst.1, || format!("destination port {dport}, expected {}", want.dst.1))
}

/// A row's check that the output is the TCP/UDP frame `want`.
pub fn l4_is(want: Expect) -> impl Fn(&[u8]) -> Result<(), String> {
    move |frame| check_l4(frame, &want)
}

/// A row's check for an ICMP error: its MACs, outer addresses, the quoted packet's addresses
/// and destination port; the outer, quoted IPv4 and ICMP checksums all valid.
pub fn icmp_is(
    src_mac: Mac,
    dst_mac: Mac,
    outer: (Ipv4Addr, Ipv4Addr),
    quoted: ((Ipv4Addr, u16), (Ipv4Addr, u16)),
) -> impl Fn(&[u8]) -> Result<(), String> {
    move |frame| {
        let eth = EthernetFrame::new_checked(frame).map_err(|e| format!("ethernet: {e}"))?;
        ensure(eth.src_addr().0 == src_mac && eth.dst_addr().0 == dst_mac, || {
            format!("MACs {} -> {}", eth.src_addr(), eth.dst_addr())
        })?;
        let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|e| format!("ipv4: {e}"))?;
        ensure(ip.verify_checksum(), || "IPv4 header checksum invalid".into())?;
        ensure((ip.src_addr(), ip.dst_addr()) == outer, || {
            format!("outer {} -> {}", ip.src_addr(), ip.dst_addr())
        })?;
        let icmp = Icmpv4Packet::new_checked(ip.payload()).map_err(|e| format!("icmp: {e}"))?;
        ensure(icmp.verify_checksum(), || "ICMP checksum invalid".into())?;
        let inner = Ipv4Packet::new_unchecked(icmp.data());
        ensure(inner.verify_checksum(), || "quoted IPv4 header checksum invalid".into())?;
        let ports = &icmp.data()[20..24];
        let sport = u16::from_be_bytes([ports[0], ports[1]]);
        let dport = u16::from_be_bytes([ports[2], ports[3]]);
        let got = ((inner.src_addr(), sport), (inner.dst_addr(), dport));
        ensure(got == quoted, || format!("quoted {got:?}, expected {quoted:?}"))
    }
}

/// A row's check for an ARP reply.
pub fn arp_reply_is(
    src_mac: Mac,
    dst_mac: Mac,
    spa: Ipv4Addr,
    tpa: Ipv4Addr,
) -> impl Fn(&[u8]) -> Result<(), String> {
    move |frame| {
        let eth = EthernetFrame::new_checked(frame).map_err(|e| format!("ethernet: {e}"))?;
        ensure(eth.src_addr().0 == src_mac && eth.dst_addr().0 == dst_mac, || {
            format!("MACs {} -> {}", eth.src_addr(), eth.dst_addr())
        })?;
        let arp = ArpPacket::new_checked(eth.payload()).map_err(|e| format!("arp: {e}"))?;
        let repr = ArpRepr::parse(&arp).map_err(|e| format!("arp: {e}"))?;
        let want = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress(src_mac),
            source_protocol_addr: spa,
            target_hardware_addr: EthernetAddress(dst_mac),
            target_protocol_addr: tpa,
        };
        ensure(repr == want, || format!("{repr:?}, expected {want:?}"))
    }
}

/// The data path port of the rows' world: its node settings leave `vxlan_port` 0, which the
/// programs read as the default cluster's (IANA's) port.
pub const WORLD_VXLAN_PORT: u16 = 4789;

/// A row's check for a VXLAN encapsulation of `inner`: outer MACs, addresses, UDP to
/// [`WORLD_VXLAN_PORT`] from
/// the flow-hash port range, no UDP checksum, DF and TTL 64, the VNI, and the inner frame intact.
pub fn vxlan_is(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    vni: u32,
    inner: Vec<u8>,
) -> impl Fn(&[u8]) -> Result<(), String> {
    move |frame| {
        let eth = EthernetFrame::new_checked(frame).map_err(|e| format!("ethernet: {e}"))?;
        ensure(eth.src_addr().0 == src_mac && eth.dst_addr().0 == dst_mac, || {
            format!("outer MACs {} -> {}", eth.src_addr(), eth.dst_addr())
        })?;
        let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|e| format!("outer ipv4: {e}"))?;
        ensure(ip.verify_checksum(), || "outer IPv4 checksum invalid".into())?;
        ensure((ip.src_addr(), ip.dst_addr()) == (src, dst), || {
            format!("outer {} -> {}", ip.src_addr(), ip.dst_addr())
        })?;
        ensure(ip.dont_frag() && ip.hop_limit() == 64, || "outer DF and TTL 64".into())?;
        ensure(ip.next_header() == IpProtocol::Udp, || "outer UDP".into())?;
        let udp = UdpPacket::new_checked(ip.payload()).map_err(|e| format!("outer udp: {e}"))?;
        ensure(udp.dst_port() == WORLD_VXLAN_PORT && udp.src_port() >= 0xc000, || {
            format!("UDP {} -> {}", udp.src_port(), udp.dst_port())
        })?;
        ensure(udp.checksum() == 0, || "a UDP checksum on the tunnel (the device path sends none)".into())?;
        let vx = udp.payload();
        ensure(vx.len() >= 8 && vx[0] == 0x08, || "VXLAN flags: the I bit".into())?;
        let got_vni = u32::from_be_bytes([0, vx[4], vx[5], vx[6]]);
        ensure(got_vni == vni, || format!("VNI {got_vni}, expected {vni}"))?;
        ensure(vx[8..] == inner[..], || "the inner frame changed".into())
    }
}

/// A VXLAN packet as a node sends it: outer Ethernet, IPv4 (DF, TTL 64, checksum filled), UDP
/// to [`WORLD_VXLAN_PORT`] without a checksum, the VXLAN header with `vni`, then the `inner` frame.
pub fn vxlan(src_mac: Mac, dst_mac: Mac, src: Ipv4Addr, dst: Ipv4Addr, vni: u32, inner: &[u8]) -> Vec<u8> {
    let udp_len = 8 + 8 + inner.len();
    let mut buf = frame_with_ip(src_mac, dst_mac, src, dst, IpProtocol::Udp, udp_len);
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut buf[14..]);
        ip.set_dont_frag(true);
        ip.fill_checksum();
    }
    let mut udp = UdpPacket::new_unchecked(&mut buf[14 + 20..]);
    udp.set_src_port(0xc123);
    udp.set_dst_port(WORLD_VXLAN_PORT);
    udp.set_len(udp_len as u16);
    udp.set_checksum(0);
    let vx = udp.payload_mut();
    vx[0] = 0x08;
    vx[4..7].copy_from_slice(&vni.to_be_bytes()[1..]);
    vx[8..].copy_from_slice(inner);
    buf
}
