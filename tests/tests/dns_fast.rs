//! The DNS fast path's edge cases with real meshd processes, `dig` and `kdig` inside namespaces,
//! and the same checks with `--dns-fast-path off` (everything through hickory-server): the case
//! of the question kept, TC and the retry over TCP for a `tasks.` answer longer than the asker's
//! UDP size, NODATA (not NXDOMAIN) for AAAA of an existing name, EDNS0 echoed, names scoped to
//! the asker's networks, and malformed datagrams never answered with garbage.

use std::net::{SocketAddr, UdpSocket};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use meshd_tests::command::stdout;
use meshd_tests::{Cluster, Netns};

/// Tasks of the big service: 31 addresses do not fit a 512-byte answer to `tasks.big`.
const BIG: usize = 32;

fn dig(ns: &Netns, args: &[&str]) -> String {
    let mut all = vec!["@127.0.0.11", "+time=2", "+tries=2"];
    all.extend_from_slice(args);
    stdout(&ns.exec("dig", all))
}

fn kdig(ns: &Netns, args: &[&str]) -> String {
    let mut all = vec!["@127.0.0.11", "+time=2", "+retry=1"];
    all.extend_from_slice(args);
    stdout(&ns.exec("kdig", all))
}

/// The fast path's worker threads in meshd (named `dns-fast-N`).
fn fast_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|comm| comm.starts_with("dns-fast-"))
                .count()
        })
        .unwrap_or(0)
}

fn edge_cases(fast: bool) {
    let tag = if fast { "dnsf" } else { "dnss" };
    let mut cluster = Cluster::new(tag, 1);
    let resolv = cluster.work_dir().join("resolv.conf");
    std::fs::write(&resolv, "").unwrap();
    if fast {
        cluster.form();
    } else {
        cluster.form_with(&["--dns-fast-path", "off"]);
    }
    let pid = cluster.node(1).pid().expect("meshd runs");
    if fast {
        assert!(fast_threads(pid) >= 1, "the fast path's workers run");
    } else {
        assert_eq!(fast_threads(pid), 0, "--dns-fast-path off starts no worker");
    }

    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "front", "--subnet", "10.84.0.0/24"]);
    n1.meshctl_ok(&["network", "create", "back", "--subnet", "10.85.0.0/24"]);
    let web = n1.meshctl_ok(&["--format", "json", "service", "create", "web", "--network", "front"]);
    let vip =
        serde_json::from_str::<serde_json::Value>(&web).unwrap()[0]["vip"].as_str().unwrap().to_string();
    n1.meshctl_ok(&["service", "create", "big", "--network", "front"]);
    let mut big = Vec::new();
    for i in 0..BIG {
        let ns = cluster.add_namespace(&format!("b{i}"));
        let ip = cluster
            .node(1)
            .meshctl_ok(&[
                "attach",
                "--netns",
                &ns,
                "--network",
                "front",
                "--service",
                "big",
                "--no-resolv-conf",
            ])
            .trim()
            .to_string();
        big.push(ip);
    }
    big.sort();
    let client = cluster.add_namespace("client");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &client, "--network", "front"]);
    let outsider = cluster.add_namespace("outsider");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &outsider, "--network", "back"]);
    let c = cluster.namespace(&client);
    cluster.wait_for("every task of big known", Duration::from_secs(20), |_| {
        dig(c, &["+short", "+tcp", "tasks.big"]).lines().count() == BIG
    });

    // The question as asked, case and all; the address of the name whatever its case.
    let mixed = dig(c, &["WeB.FrOnT"]);
    assert!(mixed.contains(";WeB.FrOnT.\t"), "question case kept: {mixed}");
    assert!(mixed.contains(&format!("\tIN\tA\t{vip}")) && mixed.contains("status: NOERROR"), "{mixed}");
    // kdig prints names lower case, whatever came back: the case is dig's to check.
    let k = kdig(c, &["wEb", "A"]);
    assert!(k.contains(&vip) && k.contains("NOERROR"), "{k}");

    // NODATA, not NXDOMAIN, for AAAA (and any other type) of an existing name.
    for rtype in ["AAAA", "TXT", "MX"] {
        let answer = dig(c, &[rtype, "web"]);
        assert!(answer.contains("status: NOERROR") && answer.contains("ANSWER: 0"), "{rtype}: {answer}");
    }
    let k = kdig(c, &["web", "AAAA"]);
    assert!(k.contains("NOERROR") && !k.contains("NXDOMAIN"), "{k}");
    assert!(dig(c, &["nothing-here"]).contains("status: NXDOMAIN"));

    // EDNS0 echoed: the asker's version 0 OPT, our UDP size (at most 1232), its DO bit.
    let edns = dig(c, &["+bufsize=4096", "web"]);
    assert!(edns.contains("; EDNS: version: 0, flags:; udp: 1232"), "{edns}");
    let edns = dig(c, &["+bufsize=1000", "+dnssec", "web"]);
    assert!(edns.contains("; EDNS: version: 0, flags: do; udp: 1000"), "{edns}");
    let plain = dig(c, &["+noedns", "web"]);
    assert!(!plain.contains("OPT PSEUDOSECTION") && plain.contains(&vip), "{plain}");
    let k = kdig(c, &["+edns=0", "+bufsize=1400", "web"]);
    assert!(k.contains("EDNS PSEUDOSECTION") && k.contains("1232"), "{k}");

    // A `tasks.` answer longer than the asker's UDP size: TC, and dig's retry over TCP gets all.
    let truncated = dig(c, &["+noedns", "+ignore", "tasks.big"]);
    assert!(truncated.contains(" tc"), "TC set: {truncated}");
    let retried = dig(c, &["+noedns", "+short", "tasks.big"]);
    let mut got: Vec<String> = retried.lines().map(str::to_string).collect();
    got.sort();
    assert_eq!(got, big, "all addresses after the retry over TCP");
    let fits = dig(c, &["+bufsize=1232", "tasks.big"]);
    assert!(fits.contains(&format!("ANSWER: {BIG},")) && !fits.contains(" tc"), "fits in 1232: {fits}");
    let k = kdig(c, &["+bufsize=512", "tasks.big"]);
    assert_eq!(k.matches("\tIN\tA\t").count(), BIG, "kdig retries over TCP: {k}");

    // Scope: another network's names do not exist for this namespace.
    let o = cluster.namespace(&outsider);
    for name in ["web", "web.front", "tasks.big"] {
        assert!(dig(o, &[name]).contains("status: NXDOMAIN"), "{name} leaked to another network");
        assert!(dig(o, &["AAAA", name]).contains("status: NXDOMAIN"), "AAAA {name} leaked");
    }

    // Malformed datagrams: no answer, or a well-formed one to the asker's ID (never garbage);
    // then the server still answers correctly.
    let answers = c.run_inside(malformed);
    for (what, answer) in answers {
        if let Some(bytes) = answer {
            let message = Message::from_vec(&bytes).unwrap_or_else(|e| panic!("{what}: garbage answer: {e}"));
            assert_eq!(message.metadata.id, 0x4242, "{what}");
            assert_eq!(message.metadata.message_type, MessageType::Response, "{what}");
            if what != "trailing bytes" {
                assert!(message.answers.is_empty(), "{what}: records in an answer to a malformed query");
            }
        }
    }
    assert_eq!(dig(c, &["+short", "web"]).trim(), vip, "still correct after garbage");
}

/// Sends malformed datagrams to 127.0.0.11:53 from inside a namespace; what came back to each.
fn malformed() -> Vec<(&'static str, Option<Vec<u8>>)> {
    let server: SocketAddr = "127.0.0.11:53".parse().unwrap();
    let mut query = Message::new(0x4242, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(Name::from_str("web.").unwrap(), RecordType::A));
    let good = query.to_vec().unwrap();
    let mut cases: Vec<(&'static str, Vec<u8>)> = vec![
        ("header only", good[..12].to_vec()),
        ("cut in the name", good[..15].to_vec()),
        ("cut in the type", good[..good.len() - 3].to_vec()),
        ("trailing bytes", [good.clone(), vec![1, 2, 3]].concat()),
    ];
    let mut two = good.clone();
    two[5] = 2;
    cases.push(("two questions announced, one sent", two));
    let mut answer_count = good.clone();
    answer_count[7] = 1;
    cases.push(("an answer announced, none sent", answer_count));
    let mut label = good.clone();
    label[12] = 0xc0;
    cases.push(("a compression pointer to the header", label));
    let mut long_label = good.clone();
    long_label[12] = 63;
    cases.push(("a label longer than the datagram", long_label));
    let mut response = good.clone();
    response[2] |= 0x80;
    cases.push(("a response", response));
    cases
        .into_iter()
        .map(|(what, bytes)| {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
            socket.send_to(&bytes, server).unwrap();
            let mut buf = [0u8; 4096];
            let answer = socket.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec());
            if what == "a response" {
                assert!(answer.is_none(), "a response is never answered");
            }
            if what == "header only" {
                // Not a valid query: no address for it.
                if let Some(bytes) = &answer {
                    let message = Message::from_vec(bytes).unwrap();
                    assert_ne!(message.metadata.response_code, ResponseCode::NoError, "{what}");
                }
            }
            (what, answer)
        })
        .collect()
}

#[test]
fn edge_cases_with_the_fast_path() {
    edge_cases(true);
}

#[test]
fn edge_cases_with_the_fast_path_off() {
    edge_cases(false);
}
