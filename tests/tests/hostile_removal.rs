//! A removed node and a hostile member, with their own state: what `node rm --force` leaves a
//! removed node (no gossip key, no new record, no answer), and what one member flooding sealed
//! datagrams or announcing huge frames can do to the others (no more than its own share).
//! Real meshd processes in namespaces; the hostile side is built from meshd's own crates with
//! the credentials and keys a real node keeps in its state directory.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use foca::{Codec, Header, Message, PostcardCodec};
use meshd::gossip::crypto::{Keyring, Purpose};
use meshd::gossip::held_keys::HeldKeys;
use meshd::gossip::member::MemberId;
use meshd::identity::NodeId;
use meshd_tests::Cluster;

const NONE: &[&str] = &[];

fn id_of(cluster: &Cluster, index: usize) -> NodeId {
    cluster.node(index).node_id().expect("node.json").parse().expect("a node ID")
}

fn stat(cluster: &Cluster, index: usize, counter: &str) -> u64 {
    cluster.node(index).gossip_stat(counter)
}

/// The gossip keys a node keeps in its state directory.
fn held_keys(dir: &Path) -> HeldKeys {
    std::fs::read(dir.join("gossip-keys.json"))
        .map(|bytes| serde_json::from_slice(&bytes).expect("gossip-keys.json"))
        .unwrap_or_default()
}

/// Every file of a state directory, as text (hex keys and JSON state are text).
fn everything_in(dir: &Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).expect("state dir").flatten() {
        if let Ok(bytes) = std::fs::read(entry.path()) {
            all.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    all
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A SWIM ping from `src` to `dst`, as foca encodes it.
fn ping(src: MemberId, dst: MemberId, probe: u8) -> Vec<u8> {
    let header = Header { src, src_incarnation: 0, dst, message: Message::Ping(probe) };
    let mut payload = Vec::new();
    Codec::<MemberId>::encode_header(&mut PostcardCodec, &header, &mut payload).expect("encodes");
    payload
}

#[test]
fn a_removed_node_gets_no_new_key_no_record_and_no_answer() {
    let mut cluster = Cluster::new("rmkey", 3);
    cluster.form_roles(1, NONE);
    cluster.node(1).meshctl_ok(&["network", "create", "before", "--subnet", "10.97.0.0/24"]);
    cluster.wait_for("the first network everywhere", Duration::from_secs(10), |c| {
        (1..=3).all(|i| c.node(i).meshctl_ok(&["network", "ls"]).contains("before"))
    });
    let (n1, n3) = (id_of(&cluster, 1), id_of(&cluster, 3));
    let old = held_keys(cluster.node(2).state_dir());
    assert_eq!(old.keys().len(), 1, "one gossip key before");
    assert_eq!(held_keys(cluster.node(3).state_dir()), old, "n3 was handed the same key as n2");

    // n3 is removed while its meshd keeps running with everything it knew.
    cluster.node(1).meshctl_ok(&["node", "rm", "--force", "n3"]);
    let rotated = cluster.wait_for("the key rotated on n1 and n2", Duration::from_secs(20), |c| {
        [1, 2].iter().all(|&i| {
            let held = held_keys(c.node(i).state_dir());
            held.keys().len() == 1 && held.keys()[0] != old.keys()[0]
        })
    });
    println!("key rotated {rotated:?} after the removal");
    cluster.node(1).meshctl_ok(&["network", "create", "after-removal", "--subnet", "10.98.0.0/24"]);
    cluster.wait_for("the new network on n2", Duration::from_secs(10), |c| {
        c.node(2).meshctl_ok(&["network", "ls"]).contains("after-removal")
    });
    let current = held_keys(cluster.node(2).state_dir());
    assert_eq!(held_keys(cluster.node(1).state_dir()), current, "n1 and n2 agree on the key");
    // Time for anything that could still reach n3 to reach it (gossip, push-pull, key fetches).
    std::thread::sleep(Duration::from_secs(5));

    let removed = |cluster: &Cluster, when: &str| {
        let files = everything_in(cluster.node(3).state_dir());
        for key in current.keys() {
            assert!(
                !files.contains(&hex(key.key.as_bytes())),
                "{when}: n3's state directory holds the new key"
            );
        }
        assert!(!files.contains("after-removal"), "{when}: n3's state holds the network created after");
        assert!(files.contains("before"), "{when}: n3's state is still what it was (a real state file)");
    };
    removed(&cluster, "running");
    assert!(!cluster.node(3).meshctl_ok(&["network", "ls"]).contains("after-removal"), "n3 lists it");
    // What n3 held no longer opens anywhere.
    let unknown_before = stat(&cluster, 1, "dropped_unknown_key");
    let stale_ring = Keyring::new(Purpose::Gossip, &[old.keys()[0].key.clone()]);
    let n1_addr = SocketAddr::new(cluster.node(1).addr.into(), 7946);
    let n3_addr = SocketAddr::new(cluster.node(3).addr.into(), 7946);
    let n1_member = MemberId { node: n1, addr: n1_addr, generation: 0 };
    let n3_member = MemberId { node: n3, addr: n3_addr, generation: 1 };
    let stale = stale_ring.seal(&ping(n3_member.clone(), n1_member.clone(), 1), now_ms());
    cluster.node(3).ns.run_inside(move || {
        UdpSocket::bind("0.0.0.0:0").unwrap().send_to(&stale, n1_addr).unwrap();
    });
    cluster.wait_for("n3's old key refused by n1", Duration::from_secs(5), |c| {
        stat(c, 1, "dropped_unknown_key") > unknown_before
    });

    // Killed and with its state directory kept: even sealed with the current key (which a
    // removed node should never have: taken here from n2's files), what claims to come from n3
    // is dropped before membership sees it, and nothing answers it.
    cluster.node_mut(3).kill();
    let revoked_before = stat(&cluster, 1, "dropped_revoked");
    let ring = Keyring::new(Purpose::Gossip, &[current.keys()[0].key.clone()]);
    let answered = cluster.node(3).ns.run_inside(move || {
        let socket = UdpSocket::bind(n3_addr).expect("n3's gossip port, now free");
        socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut answered = 0;
        let until = Instant::now() + Duration::from_secs(3);
        let mut probe = 0u8;
        while Instant::now() < until {
            probe = probe.wrapping_add(1);
            let sealed = ring.seal(&ping(n3_member.clone(), n1_member.clone(), probe), now_ms());
            socket.send_to(&sealed, n1_addr).unwrap();
            let mut buf = [0u8; 2048];
            if socket.recv_from(&mut buf).is_ok() {
                answered += 1;
            }
        }
        answered
    });
    assert_eq!(answered, 0, "n1 answered a removed node");
    assert!(stat(&cluster, 1, "dropped_revoked") > revoked_before, "n1 counted the removed node's datagrams");

    // Started again with its own state: its push-pull is refused by TLS, its datagrams (sealed
    // with the key it knew) do not open.
    let refusals = |c: &Cluster| -> u64 {
        [1, 2].iter().map(|&i| stat(c, i, "tcp_tls_refused") + stat(c, i, "dropped_unknown_key")).sum()
    };
    let refused_before = refusals(&cluster);
    cluster.node_mut(3).start();
    cluster.wait_for("n3's return refused", Duration::from_secs(15), |c| refusals(c) > refused_before);
    std::thread::sleep(Duration::from_secs(3));
    removed(&cluster, "restarted");

    // The rest of the cluster works: both list the new network, and nobody lists n3.
    for i in [1, 2] {
        let node = cluster.node(i);
        assert!(node.meshctl_ok(&["network", "ls"]).contains("after-removal"), "n{i}");
        assert!(node.status_of("n3").is_none(), "n{i} lists n3");
        assert_eq!(node.status_of(if i == 1 { "n2" } else { "n1" }).as_deref(), Some("alive"), "n{i}");
    }
}

#[test]
fn a_member_flooding_sealed_datagrams_blinds_no_node_to_the_others() {
    let mut cluster = Cluster::new("flood", 3);
    cluster.form_roles(1, NONE);
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.99.0.0/24"]);
    cluster.wait_for("the network everywhere", Duration::from_secs(10), |c| {
        (1..=3).all(|i| c.node(i).meshctl_ok(&["network", "ls"]).contains("front"))
    });
    let n2 = id_of(&cluster, 2);
    // n3 turns hostile: its meshd is gone, its gossip key (which it holds as a member) floods n1
    // from n3's address with fresh sealed datagrams, each a new nonce.
    let key = held_keys(cluster.node(3).state_dir()).keys()[0].key.clone();
    cluster.node_mut(3).kill();
    cluster.wait_for("n3 down", Duration::from_secs(10), |c| {
        c.node(1).status_of("n3").as_deref() == Some("down")
    });
    let logged = cluster.node(1).log().len();
    let over_before = stat(&cluster, 1, "dropped_over_share");
    let received_before = stat(&cluster, 1, "udp_received");
    let n1_addr = SocketAddr::new(cluster.node(1).addr.into(), 7946);
    const FLOOD: usize = 60_000;
    let flood = {
        let ns = cluster.node(3).ns.path();
        std::thread::spawn(move || {
            let ring = Keyring::new(Purpose::Gossip, &[key]);
            // This thread only: it enters n3's namespace and never leaves it.
            let file = std::fs::File::open(&ns).expect("n3's namespace");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
            for batch in 0..FLOOD / 1_000 {
                for i in 0..1_000 {
                    let sealed = ring.seal(&[(batch * 1_000 + i) as u8; 64], now_ms());
                    let _ = socket.send_to(&sealed, n1_addr);
                }
                std::thread::sleep(Duration::from_millis(60));
            }
        })
    };
    // Once n3 is past its share, n2 attaches a task: its endpoint record reaches n1 through
    // gossip while the flood goes on.
    let ns = cluster.add_namespace("task");
    cluster.wait_for("n3 past its share on n1", Duration::from_secs(10), |c| {
        stat(c, 1, "dropped_over_share") > over_before
    });
    cluster.node(2).meshctl_ok(&["attach", "--netns", &ns, "--network", "front", "--name", "t2"]);
    let spread = cluster.wait_for("n2's endpoint on n1 during the flood", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["--format", "json", "network", "ls"]).contains("\"endpoints\": 1")
    });
    assert!(!flood.is_finished(), "the flood was still going");
    flood.join().unwrap();
    let over = stat(&cluster, 1, "dropped_over_share") - over_before;
    println!("n2's endpoint reached n1 in {spread:?}; n1 refused {over} of {FLOOD} flooding datagrams sent");
    // What reached meshd (the kernel may drop some of a flood) past n3's share is refused and
    // counted; n2's own datagrams in these seconds are a few hundred at most.
    let received = stat(&cluster, 1, "udp_received") - received_before;
    let share = meshd::gossip::crypto::REPLAY_PER_SOURCE as u64;
    assert!(over > 0 && over + share + 1_000 >= received, "refused {over} of {received} received");
    // n2 was never suspected by n1, nor n1 by n2, and they still see each other alive.
    std::thread::sleep(Duration::from_secs(2));
    let since = &cluster.node(1).log()[logged..];
    assert!(!since.contains(&format!("member suspect node={n2}")), "n1 suspected n2:\n{since}");
    assert_eq!(cluster.node(1).status_of("n2").as_deref(), Some("alive"));
    assert_eq!(cluster.node(2).status_of("n1").as_deref(), Some("alive"));
    assert_eq!(stat(&cluster, 1, "dropped_guard_full"), 0, "the total was never reached");
}

/// A kB figure of `/proc/PID/status` (VmData: what the process mapped for its data, which a
/// buffer of an announced size counts in at once even before it is written).
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?.trim_start_matches(':').trim().strip_suffix(" kB")?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// TLS as the member whose state directory is `dir` (its key and certificate).
fn member_tls(dir: &Path) -> meshd::trust::tls::TlsConfigs {
    use meshd::gossip::persist::ClusterFile;
    let key = meshd::trust::keys::NodeKey::from_pkcs8(&std::fs::read(dir.join("node.key")).unwrap()).unwrap();
    let cluster: ClusterFile =
        serde_json::from_slice(&std::fs::read(dir.join("cluster.json")).unwrap()).unwrap();
    let anchor = meshd::trust::certs::CaAnchor::new(&cluster.ca_cert.0).unwrap();
    let revoked = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(std::collections::HashSet::new()));
    meshd::trust::tls::configs(&anchor, &key, &cluster.cert.der, revoked).unwrap()
}

#[test]
fn a_member_announcing_huge_frames_makes_no_node_hold_them() {
    use meshd::gossip::wire::MAX_FRAME;
    use tokio::io::AsyncWriteExt;

    let mut cluster = Cluster::new("bigframe", 2);
    cluster.form_roles(1, NONE);
    let pid = cluster.node(1).pid().expect("n1 runs");
    let tls = member_tls(cluster.node(2).state_dir());
    let n1_addr = SocketAddr::new(cluster.node(1).addr.into(), 7946);
    let too_large_before = stat(&cluster, 1, "tcp_frame_too_large");
    let data_before = proc_status_kb(pid, "VmData");

    // From n2's address, with n2's certificate: 6 connections (n2's own meshd keeps the rest of
    // its address's 8) each announce the largest frame, send 1 KiB of it and hold.
    const CONNECTIONS: usize = 6;
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let ns = cluster.node(2).ns.path();
    let holder = std::thread::spawn(move || {
        let file = std::fs::File::open(&ns).expect("n2's namespace");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let mut streams = Vec::new();
            for _ in 0..CONNECTIONS {
                let mut stream = meshd::gossip::tcp::connect_member(n1_addr, None, &tls).await.expect("TLS");
                stream.write_all(&(MAX_FRAME as u32).to_be_bytes()).await.unwrap();
                stream.write_all(&[0u8; 1024]).await.unwrap();
                stream.flush().await.unwrap();
                streams.push(stream);
            }
            // One more announces a byte more than the largest: refused before anything is read.
            let mut over = meshd::gossip::tcp::connect_member(n1_addr, None, &tls).await.expect("TLS");
            over.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes()).await.unwrap();
            over.flush().await.unwrap();
            held_tx.send(()).unwrap();
            let _ = release_rx.await;
            drop(streams);
        })
    });
    held_rx.recv().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let data_held = proc_status_kb(pid, "VmData");
    let rss_held = proc_status_kb(pid, "VmRSS");
    release_tx.send(()).unwrap();
    holder.join().unwrap();

    let grown_mib = data_held.saturating_sub(data_before) / 1024;
    let announced_mib = (CONNECTIONS * MAX_FRAME) >> 20;
    println!("n1's VmData grew {grown_mib} MiB (RSS {rss_held} kB) for {announced_mib} MiB announced");
    assert!(
        grown_mib < 16,
        "n1 holds what was announced: VmData +{grown_mib} MiB of {announced_mib} MiB announced"
    );
    cluster.wait_for("the oversized frame counted", Duration::from_secs(5), |c| {
        stat(c, 1, "tcp_frame_too_large") > too_large_before
    });
    assert_eq!(cluster.node(1).status_of("n2").as_deref(), Some("alive"));
}

#[test]
fn a_worker_down_during_a_rotation_is_handed_the_new_key_when_it_returns() {
    // The other side of keeping the key out of gossip: a member that is not removed still gets
    // it, over TLS, also after a rotation it missed.
    let mut cluster = Cluster::new("missrot", 3);
    cluster.form_roles(1, NONE);
    let old = held_keys(cluster.node(3).state_dir());
    cluster.node_mut(3).stop();
    cluster.wait_for("n3 down", Duration::from_secs(10), |c| {
        c.node(1).status_of("n3").as_deref() == Some("down")
    });
    cluster.node(1).meshctl_ok(&["key", "rotate"]);
    let current = held_keys(cluster.node(2).state_dir());
    assert_ne!(current, old, "rotated");
    cluster.node(1).meshctl_ok(&["network", "create", "while-away", "--subnet", "10.100.0.0/24"]);

    cluster.node_mut(3).start();
    cluster.wait_for("n3 back with the new key and the new network", Duration::from_secs(20), |c| {
        held_keys(c.node(3).state_dir()) == current
            && c.node(3).meshctl_ok(&["network", "ls"]).contains("while-away")
            && c.node(1).status_of("n3").as_deref() == Some("alive")
    });
}
