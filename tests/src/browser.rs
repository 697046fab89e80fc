//! Headless Chromium (Debian's `chromium`) driven over the DevTools protocol through a pipe
//! (`--remote-debugging-pipe`: commands on fd 3, replies and events on fd 4, each a JSON text
//! ended by NUL), so no WebSocket client, no chromedriver and nothing downloaded. Runs inside a
//! network namespace (to reach a meshd's localhost), with a fresh profile directory, and is
//! killed when dropped.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::netns::Netns;

/// How long one DevTools command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Browser {
    child: Child,
    commands: std::fs::File,
    replies: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    dir: PathBuf,
}

/// Chromium's flags for a quiet, hermetic headless run as root.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1280,900",
    "--remote-debugging-pipe",
];

impl Browser {
    /// Starts Chromium in `ns` with its profile under `work` and opens `url` in a tab.
    pub fn open(ns: &Netns, work: &Path, url: &str) -> Browser {
        let dir = work.join("chromium");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("chromium dir");
        let (to_chrome, from_chrome) = (dir.join("in.fifo"), dir.join("out.fifo"));
        for fifo in [&to_chrome, &from_chrome] {
            nix::unistd::mkfifo(fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        }
        let script = format!(
            "exec chromium {} --user-data-dir={} about:blank 3<{} 4>{}",
            FLAGS.join(" "),
            dir.join("profile").display(),
            to_chrome.display(),
            from_chrome.display()
        );
        let log = std::fs::File::create(dir.join("chromium.log")).expect("chromium log");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", ns.path()))
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start chromium (apt-get install chromium)");
        // The shell opens fd 3 (our write end) first, then fd 4: open them in that order.
        let commands = std::fs::OpenOptions::new().write(true).open(&to_chrome).expect("open command pipe");
        let replies_file = std::fs::File::open(&from_chrome).expect("open reply pipe");
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(replies_file);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let text = buf.strip_suffix(&[0]).unwrap_or(&buf);
                        if let Ok(value) = serde_json::from_slice::<Value>(text) {
                            if tx.send(value).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        let mut browser = Browser { child, commands, replies, next_id: 0, session: String::new(), dir };
        let target = browser.call(None, "Target.createTarget", json!({ "url": url }));
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached =
            browser.call(None, "Target.attachToTarget", json!({ "targetId": target_id, "flatten": true }));
        browser.session = attached["sessionId"].as_str().expect("sessionId").to_string();
        browser
    }

    /// Sends one command (to the page's session, or to the browser) and returns its result.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("json");
        bytes.push(0);
        self.commands.write_all(&bytes).expect("write to chromium");
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = self.replies.recv_timeout(left).unwrap_or_else(|_| {
                panic!("chromium did not answer {method} in {COMMAND_TIMEOUT:?}; log: {}", self.log())
            });
            if reply["id"].as_u64() == Some(id) {
                if let Some(error) = reply.get("error") {
                    panic!("chromium: {method} failed: {error}");
                }
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates a JavaScript expression in the page; its value (JSON-able) comes back.
    pub fn eval(&mut self, expression: &str) -> Value {
        let session = self.session.clone();
        let result = self.call(
            Some(&session),
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        result["result"]["value"].clone()
    }

    /// A PNG of the page as it is now.
    pub fn screenshot(&mut self) -> Vec<u8> {
        let session = self.session.clone();
        let result = self.call(Some(&session), "Page.captureScreenshot", json!({ "format": "png" }));
        let data = result["data"].as_str().expect("screenshot data").to_string();
        decode_base64(&data)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("chromium.log")).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Standard base64 (what DevTools sends screenshots in).
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter_map(value) {
        acc = (acc << 6) | u32::from(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes() {
        assert_eq!(super::decode_base64("aGVsbG8="), b"hello");
        assert_eq!(super::decode_base64("iVBORw0KGgo="), [0x89, b'P', b'N', b'G', 13, 10, 26, 10]);
    }
}
