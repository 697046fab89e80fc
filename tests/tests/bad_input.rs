//! Bad input to meshd and meshctl: one clear error, a non-zero exit, nothing half-created, and a
//! running meshd that keeps serving.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use meshd_tests::binaries;
use meshd_tests::command::{stderr, try_run};
use meshd_tests::Cluster;

/// Runs meshd in node 1's namespace with `args` and expects it to refuse to start.
fn meshd_refuses(cluster: &Cluster, args: &[String]) -> String {
    let output = cluster.node(1).meshd_command(args).output().expect("run meshd");
    assert!(!output.status.success(), "meshd accepted {args:?}");
    let err = stderr(&output);
    assert!(
        err.lines().any(|l| l.starts_with("meshd: error:") || l.starts_with("error:")),
        "no clear error line: {err}"
    );
    err
}

fn with_args(cluster: &Cluster, replace: &[(&str, &str)]) -> Vec<String> {
    let mut args = cluster.node(1).base_args();
    for (flag, value) in replace {
        match args.iter().position(|a| a == flag) {
            Some(i) => args[i + 1] = value.to_string(),
            None => {
                args.push(flag.to_string());
                args.push(value.to_string());
            }
        }
    }
    args
}

#[test]
fn meshd_refuses_bad_configuration_and_creates_nothing() {
    let cluster = Cluster::new("badcfg", 1);
    let state_dir = cluster.node(1).state_dir().to_path_buf();

    let err = meshd_refuses(&cluster, &with_args(&cluster, &[("--advertise-addr", "10.77.0.99")]));
    assert!(err.contains("--advertise-addr 10.77.0.99 is not assigned to any interface"), "{err}");
    assert!(err.contains("10.77.0.1"), "lists the addresses that are local: {err}");
    assert!(!state_dir.exists(), "no state dir for a refused start");

    let err = meshd_refuses(&cluster, &with_args(&cluster, &[("--advertise-addr", "not-an-ip")]));
    assert!(err.contains("--advertise-addr"), "{err}");

    let err = meshd_refuses(&cluster, &with_args(&cluster, &[("--listen-port", "0")]));
    assert!(err.contains("--listen-port"), "{err}");

    let err = meshd_refuses(&cluster, &with_args(&cluster, &[("--no-such-flag", "1")]));
    assert!(err.contains("--no-such-flag"), "{err}");

    let garbage = cluster.work_dir().join("garbage-token");
    std::fs::write(&garbage, "garbage").unwrap();
    let garbage = garbage.display().to_string();
    let err = meshd_refuses(
        &cluster,
        &with_args(&cluster, &[("--join", "10.77.0.2"), ("--token-file", garbage.as_str())]),
    );
    assert!(err.contains("not a meshd join token"), "{err}");

    let err = meshd_refuses(&cluster, &with_args(&cluster, &[("--join", "10.77.0.2")]));
    assert!(err.contains("--token"), "{err}");

    assert!(!state_dir.exists(), "still nothing created");
    assert!(!cluster.node(1).socket().exists());
}

#[test]
fn meshd_refuses_an_unusable_state_dir() {
    let cluster = Cluster::new("badstate", 1);
    let file = cluster.work_dir().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = meshd_refuses(&cluster, &with_args(&cluster, &[("--state-dir", file.to_str().unwrap())]));
    assert!(err.contains("is not a directory"), "{err}");

    let below_file = file.join("state");
    let err = meshd_refuses(&cluster, &with_args(&cluster, &[("--state-dir", below_file.to_str().unwrap())]));
    assert!(err.contains("state directory") && err.contains("Not a directory"), "{err}");

    let corrupt = cluster.work_dir().join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join("node.key"), "not a key").unwrap();
    let err = meshd_refuses(&cluster, &with_args(&cluster, &[("--state-dir", corrupt.to_str().unwrap())]));
    assert!(err.contains("node.key is corrupt") && err.contains("join afresh"), "{err}");
    assert_eq!(std::fs::read_to_string(corrupt.join("node.key")).unwrap(), "not a key", "left alone");

    // A state directory of an older meshd (a node ID, no key) says how to recover.
    let older = cluster.work_dir().join("older");
    std::fs::create_dir_all(&older).unwrap();
    std::fs::write(older.join("node.json"), "{\"id\": \"00112233445566778899aabbccddeeff\"}").unwrap();
    let err = meshd_refuses(&cluster, &with_args(&cluster, &[("--state-dir", older.to_str().unwrap())]));
    assert!(err.contains("older meshd") && err.contains("--join"), "{err}");
}

#[test]
fn a_second_meshd_on_the_same_state_dir_or_socket_is_refused() {
    let mut cluster = Cluster::new("twice", 1);
    cluster.start_all();
    let args = cluster.node(1).base_args();
    let err = meshd_refuses(&cluster, &args);
    assert!(err.contains("in use by another meshd"), "{err}");

    let other_state = cluster.work_dir().join("other-state");
    let err =
        meshd_refuses(&cluster, &with_args(&cluster, &[("--state-dir", other_state.to_str().unwrap())]));
    assert!(err.contains("another meshd is already serving"), "{err}");
    // The first one is untouched.
    assert_eq!(cluster.node(1).nodes_json().len(), 1);
}

#[test]
fn meshctl_gives_clear_errors() {
    let mut cluster = Cluster::new("ctlerr", 1);
    let node_socket = cluster.node(1).socket().to_path_buf();
    let meshctl = binaries::meshctl();
    let meshctl = meshctl.to_str().unwrap();

    // No meshd yet.
    let out = try_run(meshctl, ["--socket", node_socket.to_str().unwrap(), "node", "ls"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("meshctl: error: cannot reach meshd at"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    cluster.start_all();
    let node = cluster.node(1);
    for args in [
        &["frobnicate"][..],
        &["node", "frobnicate"],
        &["node", "ls", "--bogus"],
        &["--format", "yaml", "node", "ls"],
        &[],
    ] {
        let out = node.meshctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("error:") || stderr(&out).contains("Usage:"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // Help exists for every verb.
    for args in [&["--help"][..], &["node", "--help"], &["node", "ls", "--help"], &["join-token", "--help"]] {
        let out = node.meshctl(args);
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"), "{args:?}");
    }
}

/// Sends raw bytes to the API and returns every response line.
fn raw_exchange(socket: &std::path::Path, bytes: &[u8]) -> Vec<String> {
    let mut stream = UnixStream::connect(socket).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A large request may be cut off by the server mid-write; that is the point.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    for line in BufReader::new(stream).lines() {
        match line {
            Ok(line) => out.push(line),
            Err(_) => break,
        }
    }
    out
}

#[test]
fn the_api_rejects_malformed_requests_and_keeps_serving() {
    let mut cluster = Cluster::new("apibad", 1);
    cluster.start_all();
    let node = cluster.node(1);
    let socket = node.socket();

    let cases: &[(&[u8], &str)] = &[
        (b"{not json\n", "malformed request"),
        (b"{\"op\":\"format_disk\"}\n", "unknown variant `format_disk`"),
        (b"{\"op\":\"node_ls\",\"x\":1}\n", "unknown field `x`"),
        (b"{\"op\":\"join_token\",\"rotate\":\"please\"}\n", "invalid type"),
        (b"\xff\xfe\xfd\n", "malformed request"),
        (b"[]\n", "malformed request"),
    ];
    for (bytes, expected) in cases {
        let replies = raw_exchange(socket, bytes);
        assert_eq!(replies.len(), 1, "{replies:?}");
        let reply: serde_json::Value = serde_json::from_str(&replies[0]).unwrap();
        assert_eq!(reply["error"]["kind"], "bad_request", "{reply}");
        assert!(reply["error"]["message"].as_str().unwrap().contains(expected), "{reply}");
    }

    // 1 MiB without a newline: refused as too large, connection closed.
    let replies = raw_exchange(socket, &vec![b'{'; 1 << 20]);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(replies[0].contains("too_large"), "{replies:?}");

    // A client that connects and says nothing does not block others.
    let _idle = UnixStream::connect(socket).unwrap();
    // Half a request, then hang up.
    {
        let mut partial = UnixStream::connect(socket).unwrap();
        partial.write_all(b"{\"op\":\"no").unwrap();
    }

    // Still alive and correct; a bad request changed nothing.
    let token_before = node.meshctl_ok(&["join-token", "worker"]);
    let replies =
        raw_exchange(socket, b"{\"op\":\"node_ls\"}\n{\"op\":\"join_token\",\"role\":\"worker\"}\n");
    assert_eq!(replies.len(), 2, "two requests on one connection: {replies:?}");
    assert!(replies[0].starts_with("{\"ok\":{\"nodes\":"), "{replies:?}");
    assert!(replies[1].contains(token_before.trim()), "{replies:?}");
    assert_eq!(node.nodes_json()[0]["status"], "alive");

    let mut buf = String::new();
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(b"{\"op\":\"node_ls\"}\n").unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = BufReader::new(&mut stream).read_line(&mut buf);
    assert!(buf.contains("alive"));
}

#[test]
fn the_socket_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut cluster = Cluster::new("sockmode", 1);
    cluster.start_all();
    let mode = std::fs::metadata(cluster.node(1).socket()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let state_mode = std::fs::metadata(cluster.node(1).state_dir()).unwrap().permissions().mode();
    assert_eq!(state_mode & 0o777, 0o700);
}
