//! `meshctl monitor --follow` as a test watches it: a child process whose stdout lines arrive
//! through a channel, killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use crate::{binaries, Node};

/// `meshctl monitor ARGS` on `node`, its stdout lines delivered through a channel.
pub struct Monitor {
    child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl Monitor {
    pub fn start(node: &Node, args: &[&str]) -> Monitor {
        let mut child = Command::new(binaries::meshctl())
            .arg("--socket")
            .arg(node.socket())
            .arg("monitor")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("meshctl monitor");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Monitor { child, lines }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
