//! What an attacker runs in the tests: packets crafted by an unprivileged process inside a
//! container namespace (uid 65534, as a container's process would be), or by a host on the
//! underlay; and captures in the victims' namespaces that show whether anything arrived.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::command::try_run;
use crate::netns::Netns;

/// The unprivileged user a container's processes run as in these tests (nobody).
pub const NOBODY: &str = "65534";

/// Builds VXLAN datagrams (RFC 7348) carrying an Ethernet frame with an IPv4/UDP packet whose
/// payload is a marker. `udp` mode sends it as an ordinary datagram (what any unprivileged
/// process can do); `raw` mode writes the outer IPv4 header too, with any source address (root
/// on an underlay host that spoofs a node's address).
pub const CRAFT_VXLAN: &str = r#"
import socket, struct, sys
mode, outer_src, target, vni, inner_src, inner_dst, marker = sys.argv[1:8]
# The cluster's data path port: the 8th argument, the default cluster's (IANA's 4789) without.
port = int(sys.argv[8]) if len(sys.argv) > 8 else 4789
vni = int(vni)
marker = marker.encode()
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
def ipv4(src, dst, proto, payload):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack('!H', csum(h)) + h[12:] + payload
inner = ipv4(inner_src, inner_dst, 17, struct.pack('!HHHH', 4242, 9999, 8 + len(marker), 0) + marker)
frame = b'\x02\x00\x00\x00\x00\x01' + b'\x02\x00\x00\x00\x00\x02' + b'\x08\x00' + inner
vxlan = struct.pack('!II', 0x08000000, vni << 8) + frame
for _ in range(3):
    if mode == 'udp':
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(vxlan, (target, port))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        udp = struct.pack('!HHHH', 40000, port, 8 + len(vxlan), 0) + vxlan
        s.sendto(ipv4(outer_src, target, 17, udp), (target, 0))
"#;

/// Runs `python3 -c SCRIPT ARGS...` inside `ns` as uid/gid 65534 with no supplementary groups.
pub fn python_as_nobody(ns: &Netns, script: &str, args: &[&str]) -> Output {
    let mut all =
        vec!["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", "/usr/bin/python3", "-c", script];
    all.extend_from_slice(args);
    ns.exec("setpriv", all)
}

/// Runs `python3 -c SCRIPT ARGS...` inside `ns` as root (an underlay host's own tools).
pub fn python_as_root(ns: &Netns, script: &str, args: &[&str]) -> Output {
    let mut all = vec!["-c", script];
    all.extend_from_slice(args);
    ns.exec("/usr/bin/python3", all)
}

/// tcpdump inside a namespace, on every interface, printing payloads as text; stopped on drop.
pub struct Capture {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Capture {
    /// Starts capturing `filter` in `ns` and returns once tcpdump listens.
    pub fn start(ns: &Netns, filter: &str) -> Capture {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "tcpdump", "-l", "-n", "-A", "-i", "any"])
            .args(filter.split_whitespace())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump (apt-get install tcpdump)");
        let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
        let mut line = String::new();
        loop {
            line.clear();
            if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                panic!("tcpdump in {} ended before listening", ns.name());
            }
            if line.contains("listening on") {
                break;
            }
        }
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Capture { child, lines }
    }

    /// Whether a captured line contains `needle`.
    pub fn saw(&self, needle: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Waits up to `timeout` for `needle`; returns whether it came.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.saw(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.saw(needle)
    }

    /// Everything captured so far (for assertion messages).
    pub fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The packets of a `meshctl --format json stats` datapath counter on a node, summed over
/// interfaces and directions.
pub fn drops(stats_json: &str, reason: &str) -> u64 {
    let json: serde_json::Value = serde_json::from_str(stats_json).expect("stats JSON");
    json["datapath"]
        .as_array()
        .map(|rows| {
            rows.iter().filter(|r| r["verdict"] == reason).filter_map(|r| r["packets"].as_u64()).sum()
        })
        .unwrap_or(0)
}

/// `ip netns exec NS CMD...`, whatever its status.
pub fn exec(ns: &str, program: &str, args: &[&str]) -> Output {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    try_run("ip", all)
}
