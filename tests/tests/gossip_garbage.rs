//! Hostile input on the gossip port: garbage, truncated, oversized, forged and replayed
//! datagrams and TCP frames are dropped and counted; every node keeps running with its view
//! unchanged.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use meshd_tests::Cluster;

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Captures `count` gossip datagrams on the underlay bridge and returns their UDP payloads with
/// their destinations.
fn capture_datagrams(cluster: &Cluster, count: usize) -> Vec<(SocketAddr, Vec<u8>)> {
    let file = cluster.work_dir().join("gossip.pcap");
    let status = Command::new("ip")
        .args(["netns", "exec", cluster.underlay().name(), "timeout", "10", "tcpdump", "-i", "br0", "-c"])
        .arg(count.to_string())
        .args(["-w", file.to_str().unwrap(), "udp", "port", "7946"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("tcpdump");
    assert!(status.success(), "tcpdump captured nothing");
    parse_pcap(&std::fs::read(&file).unwrap())
}

/// Reads a classic pcap of Ethernet/IPv4/UDP frames.
fn parse_pcap(bytes: &[u8]) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 24; // global header
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &bytes[at + 16..at + 16 + caplen];
        at += 16 + caplen;
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let dst = std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let udp = &ip[ihl..];
        let port = u16::from_be_bytes([udp[2], udp[3]]);
        out.push((SocketAddr::new(dst.into(), port), udp[8..].to_vec()));
    }
    out
}

#[test]
fn garbage_forgeries_and_replays_change_nothing() {
    let mut cluster = Cluster::new("garbage", 3);
    cluster.form();
    let attacker = cluster.add_underlay_client();
    let captured = capture_datagrams(&cluster, 6);
    assert!(!captured.is_empty());
    // Attack the node the first captured datagram was for, so there is something to replay.
    let target = captured[0].0;
    let victim = match target.ip() {
        std::net::IpAddr::V4(v4) => usize::from(v4.octets()[3]),
        _ => unreachable!(),
    };
    let before: Vec<_> = cluster.nodes().iter().map(|n| n.nodes_json()).collect();
    let n1 = cluster.node(victim);
    let base = |name| n1.gossip_stat(name);
    let (truncated, unknown, oversized, forged, replayed, rejected) = (
        base("dropped_truncated"),
        base("dropped_unknown_key"),
        base("dropped_oversized"),
        base("dropped_forged"),
        base("dropped_replayed"),
        base("tcp_rejected"),
    );

    let to_n1: Vec<Vec<u8>> =
        captured.iter().filter(|(dst, _)| *dst == target).map(|(_, p)| p.clone()).collect();
    let any_real = captured[0].1.clone();
    let replays = to_n1.len() as u64;
    cluster.clients()[attacker].ns.run_inside(move || {
        let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
        // Garbage of every size up to beyond the datagram limit.
        for (i, len) in
            [0usize, 1, 4, 5, 20, 52, 53, 100, 700, 1399, 1400, 1401, 4000, 60000].iter().enumerate()
        {
            udp.send_to(&noise(i as u64 + 1, *len), target).unwrap();
        }
        // Well-formed header, a key nobody has.
        let mut unknown_key = vec![1u8, 0xde, 0xad, 0xbe, 0xef];
        unknown_key.extend(noise(99, 120));
        udp.send_to(&unknown_key, target).unwrap();
        // A real cluster header (version and key id) over random bytes: a forgery.
        let mut forged = any_real[..5].to_vec();
        forged.extend(noise(7, 200));
        udp.send_to(&forged, target).unwrap();
        // A real frame with one bit flipped.
        let mut flipped = any_real.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        udp.send_to(&flipped, target).unwrap();
        // Replays of real datagrams that n1 already accepted.
        for datagram in &to_n1 {
            udp.send_to(datagram, target).unwrap();
        }

        // TCP: garbage, a huge length, a truncated frame, an unknown key.
        let send_tcp = |bytes: &[u8]| {
            let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2)).unwrap();
            let _ = stream.write_all(bytes);
        };
        send_tcp(&noise(3, 5000));
        send_tcp(&u32::MAX.to_be_bytes());
        send_tcp(&[0, 0, 0, 100, 1, 2, 3]);
        let mut frame = 125u32.to_be_bytes().to_vec();
        frame.extend(&unknown_key);
        send_tcp(&frame);
    });

    // Let the drops be processed.
    cluster.wait_for("the drops to be counted", Duration::from_secs(15), |c| {
        let n1 = c.node(victim);
        n1.gossip_stat("tcp_rejected") >= rejected + 3 && n1.gossip_stat("dropped_forged") >= forged + 2
    });
    let n1 = cluster.node(victim);
    assert!(replays > 0);
    assert!(n1.gossip_stat("dropped_truncated") > truncated, "truncated counted");
    assert!(n1.gossip_stat("dropped_unknown_key") > unknown, "unknown key counted");
    assert!(n1.gossip_stat("dropped_oversized") >= oversized + 3, "oversized counted");
    assert!(n1.gossip_stat("dropped_replayed") >= replayed + replays, "replays counted");

    // Everyone still running, and the view is what it was.
    for (node, before) in cluster.nodes().iter().zip(before) {
        let after = node.nodes_json();
        assert_eq!(after, before, "{}'s view changed", node.name);
    }
    for i in 1..=3 {
        assert!(cluster.node_mut(i).is_running(), "n{i} still running");
    }
}
