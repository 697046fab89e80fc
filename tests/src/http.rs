//! A tiny HTTP/1.1 server for tests, listening inside a namespace and answering every request
//! with its own name: which backend answered is then visible to a real client (curl). Keeps
//! connections open between requests (keep-alive), and stops when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::netns::Netns;

pub struct NamedServer {
    stop: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NamedServer {
    /// Listens on 0.0.0.0:`port` inside `ns` and answers with `name`.
    pub fn start(ns: &Netns, port: u16, name: &str) -> NamedServer {
        Self::start_with(ns, port, name, false)
    }

    /// Like [`start`](Self::start), but answers `NAME CLIENT-ADDRESS`: the address the
    /// connection came from, as the backend sees it.
    pub fn start_showing_client(ns: &Netns, port: u16, name: &str) -> NamedServer {
        Self::start_with(ns, port, name, true)
    }

    fn start_with(ns: &Netns, port: u16, name: &str, show_client: bool) -> NamedServer {
        let listener = ns.run_inside(move || TcpListener::bind(("0.0.0.0", port)).expect("bind"));
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let draining = Arc::new(AtomicBool::new(false));
        let (flag, drain, name) = (stop.clone(), draining.clone(), name.to_string());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        let name = if show_client { format!("{name} {}", peer.ip()) } else { name.clone() };
                        let (flag, drain) = (flag.clone(), drain.clone());
                        std::thread::spawn(move || serve(stream, &name, &flag, &drain));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        NamedServer { stop, draining, thread: Some(thread) }
    }

    /// Graceful shutdown as a load balancer's backend should do it: every open connection gets
    /// its next answer with `Connection: close` and is then closed, so a keep-alive client
    /// reconnects (elsewhere) without losing a request.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

fn serve(stream: TcpStream, name: &str, stop: &AtomicBool, draining: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) if line == "\r\n" => {
                let body = format!("{name}\n");
                let last = draining.load(Ordering::Relaxed);
                let close = if last { "Connection: close\r\n" } else { "" };
                let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{close}\r\n{body}", body.len());
                if writer.write_all(reply.as_bytes()).is_err() || last {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

impl Drop for NamedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A UDP server in a namespace that answers every datagram with `NAME CLIENT-ADDRESS`; stops when
/// dropped.
pub struct UdpNamedServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpNamedServer {
    pub fn start(ns: &Netns, port: u16, name: &str) -> UdpNamedServer {
        let socket = ns.run_inside(move || std::net::UdpSocket::bind(("0.0.0.0", port)).expect("bind"));
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, name) = (stop.clone(), name.to_string());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((_, peer)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(format!("{name} {}\n", peer.ip()).as_bytes(), peer);
                }
            }
        });
        UdpNamedServer { stop, thread: Some(thread) }
    }
}

impl Drop for UdpNamedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One HTTP/1.1 request on an open (keep-alive) connection; returns the answer's body, trimmed.
pub fn request(stream: &mut TcpStream) -> String {
    use std::io::Read;
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 512];
    let n = stream.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.split("\r\n\r\n").nth(1).unwrap_or("").trim().to_string()
}
