//! The fast path's threads: one per core (at most [`MAX_WORKERS`]) for the whole node, not per
//! namespace. Every served namespace opens one SO_REUSEPORT socket per worker (the kernel
//! spreads its queries over them by flow hash); worker `i` waits on an epoll set (mio) that holds
//! socket `i` of every namespace. A ready socket is read [`BATCH`] datagrams at a time
//! (`recvmmsg`), the answers go out in one `sendmmsg`, and after [`BUDGET`] batches the worker
//! moves to the next ready socket (coming back to this one after the others), so a namespace that
//! floods does not starve the others.
//!
//! The threads are plain OS threads, not tokio tasks: a query answered here never touches the
//! async runtime. Syscalls go through nix's safe wrappers; the crate stays free of unsafe code.

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use arc_swap::ArcSwap;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use nix::errno::Errno;
use nix::sys::socket::{recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrIn};

use super::{respond, slow, Prepared, Verdict, MAX_ANSWER};
use crate::handler::MeshHandler;
use crate::limits::DnsCounters;
use crate::stats::Outcome;

/// Worker threads at most (and sockets per namespace).
pub const MAX_WORKERS: usize = 8;
/// Datagrams read (and answers sent) per system call.
pub const BATCH: usize = 32;
/// Batches one socket gets before the worker turns to the next ready socket.
pub const BUDGET: usize = 4;
/// Receive buffer per datagram; a longer one (flagged MSG_TRUNC) is dropped, as it could only
/// be answered wrongly from a cut copy.
pub const RECV_BUF: usize = 4096;

const WAKE: Token = Token(usize::MAX);

/// One namespace's socket, as a worker sees it.
struct Served {
    socket: Arc<UdpSocket>,
    handler: MeshHandler,
    slow: tokio::sync::mpsc::Sender<slow::Datagram>,
}

type Sockets = HashMap<Token, Arc<Served>>;

struct Worker {
    registry: mio::Registry,
    waker: Waker,
    sockets: Arc<ArcSwap<Sockets>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The node's fast path: its workers and the prepared answers they read.
pub struct FastPath {
    prepared: Arc<Prepared>,
    workers: Vec<Worker>,
    next_token: AtomicUsize,
    stop: Arc<AtomicBool>,
}

impl FastPath {
    /// Starts one worker per core (at most [`MAX_WORKERS`]).
    pub fn start(prepared: Arc<Prepared>) -> io::Result<Arc<FastPath>> {
        let count = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, MAX_WORKERS);
        Self::with_workers(prepared, count)
    }

    pub fn with_workers(prepared: Arc<Prepared>, count: usize) -> io::Result<Arc<FastPath>> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::with_capacity(count);
        for i in 0..count {
            let poll = Poll::new()?;
            let registry = poll.registry().try_clone()?;
            let waker = Waker::new(poll.registry(), WAKE)?;
            let sockets = Arc::new(ArcSwap::from_pointee(Sockets::new()));
            let thread = std::thread::Builder::new().name(format!("dns-fast-{i}")).spawn({
                let (sockets, stop, prepared) = (sockets.clone(), stop.clone(), prepared.clone());
                move || run(poll, sockets, stop, prepared)
            })?;
            workers.push(Worker { registry, waker, sockets, thread: Mutex::new(Some(thread)) });
        }
        Ok(Arc::new(FastPath { prepared, workers, next_token: AtomicUsize::new(0), stop }))
    }

    /// The prepared answers (the caller prepares them after every registry change).
    pub fn prepared(&self) -> &Arc<Prepared> {
        &self.prepared
    }

    /// How many sockets a namespace opens: one per worker.
    pub fn sockets(&self) -> usize {
        self.workers.len()
    }

    /// Serves a namespace's UDP sockets (one per worker, bound with SO_REUSEPORT to the same
    /// address, non-blocking) with `handler`; the slow path runs on the caller's tokio runtime.
    pub fn serve(
        self: &Arc<Self>,
        sockets: Vec<UdpSocket>,
        handler: MeshHandler,
    ) -> io::Result<FastListener> {
        let (slow_tx, slow_rx) = tokio::sync::mpsc::channel(slow::QUEUE);
        let sockets: Vec<Arc<UdpSocket>> = sockets.into_iter().map(Arc::new).collect();
        let reply = sockets.first().cloned().ok_or_else(|| io::Error::other("no socket to serve"))?;
        let dispatcher = tokio::spawn(slow::dispatch(slow_rx, handler.clone(), reply));
        let mut listener = FastListener { path: self.clone(), registered: Vec::new(), dispatcher };
        for (i, socket) in sockets.into_iter().enumerate() {
            let worker = &self.workers[i % self.workers.len()];
            let token = Token(self.next_token.fetch_add(1, Ordering::Relaxed));
            let served =
                Arc::new(Served { socket: socket.clone(), handler: handler.clone(), slow: slow_tx.clone() });
            worker.sockets.rcu(|map| {
                let mut map = Sockets::clone(map);
                map.insert(token, served.clone());
                map
            });
            // Recorded first: if registering fails, dropping the listener still takes it out of the map.
            listener.registered.push((i % self.workers.len(), token, socket.as_raw_fd()));
            worker.registry.register(&mut SourceFd(&socket.as_raw_fd()), token, Interest::READABLE)?;
            // Datagrams that arrived before the registration: edge-triggered epoll reports only
            // new ones, so let the worker look once.
            worker.waker.wake()?;
        }
        Ok(listener)
    }
}

impl Drop for FastPath {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for worker in &self.workers {
            let _ = worker.waker.wake();
            if let Some(thread) = worker.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = thread.join();
            }
        }
    }
}

/// One namespace on the fast path; dropping it stops serving (the sockets close once no worker
/// holds them).
pub struct FastListener {
    path: Arc<FastPath>,
    /// (worker, token, descriptor) of each socket.
    registered: Vec<(usize, Token, RawFd)>,
    dispatcher: tokio::task::JoinHandle<()>,
}

impl Drop for FastListener {
    fn drop(&mut self) {
        for (worker, token, fd) in self.registered.drain(..) {
            let worker = &self.path.workers[worker];
            // The socket is still open here (the map holds it), so the descriptor is ours.
            let _ = worker.registry.deregister(&mut SourceFd(&fd));
            worker.sockets.rcu(|map| {
                let mut map = Sockets::clone(map);
                map.remove(&token);
                map
            });
        }
        self.dispatcher.abort();
    }
}

/// A worker's loop: wait for ready sockets, serve each for at most [`BUDGET`] batches, come
/// back to those not yet drained before waiting again.
fn run(mut poll: Poll, sockets: Arc<ArcSwap<Sockets>>, stop: Arc<AtomicBool>, prepared: Arc<Prepared>) {
    let mut events = Events::with_capacity(256);
    let mut io = BatchIo::new();
    let mut backlog: Vec<Token> = Vec::new();
    let mut ready: Vec<Token> = Vec::new();
    loop {
        let timeout = if backlog.is_empty() { None } else { Some(std::time::Duration::ZERO) };
        if let Err(error) = poll.poll(&mut events, timeout) {
            if error.kind() != io::ErrorKind::Interrupted {
                tracing::warn!(%error, "DNS fast path: epoll failed");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let map = sockets.load();
        ready.clear();
        if events.iter().any(|e| e.token() == WAKE) {
            // A socket was added: it may hold datagrams from before its registration. Every
            // socket gets a turn (the ready and backlogged ones among them).
            backlog.clear();
            ready.extend(map.keys().copied());
        } else {
            ready.append(&mut backlog);
            for event in events.iter() {
                if !ready.contains(&event.token()) {
                    ready.push(event.token());
                }
            }
        }
        for token in &ready {
            if let Some(served) = map.get(token) {
                if !io.serve(served, &prepared) {
                    backlog.push(*token);
                }
            }
        }
    }
}

/// A worker's buffers, reused for every batch.
struct BatchIo {
    recv_headers: MultiHeaders<SockaddrIn>,
    send_headers: MultiHeaders<SockaddrIn>,
    bufs: Vec<Box<[u8; RECV_BUF]>>,
    outs: Vec<[u8; MAX_ANSWER]>,
    /// (length, source, truncated) of each datagram of the batch.
    got: Vec<(usize, Option<SockaddrIn>, bool)>,
    /// (length, destination) of each answer of the batch, in `outs` order.
    answers: Vec<(usize, Option<SockaddrIn>)>,
    rng: rand::rngs::ThreadRng,
}

impl BatchIo {
    fn new() -> BatchIo {
        BatchIo {
            recv_headers: MultiHeaders::preallocate(BATCH, None),
            send_headers: MultiHeaders::preallocate(BATCH, None),
            bufs: (0..BATCH).map(|_| Box::new([0u8; RECV_BUF])).collect(),
            outs: vec![[0u8; MAX_ANSWER]; BATCH],
            got: Vec::with_capacity(BATCH),
            answers: Vec::with_capacity(BATCH),
            rng: rand::rng(),
        }
    }

    /// Serves up to [`BUDGET`] batches of one socket; true when it is drained.
    fn serve(&mut self, served: &Served, prepared: &Prepared) -> bool {
        let fd = served.socket.as_raw_fd();
        for _ in 0..BUDGET {
            match self.receive(fd) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(Errno::EAGAIN | Errno::EINTR) => return true,
                Err(error) => {
                    tracing::debug!(%error, "DNS fast path: recvmmsg failed");
                    return true;
                }
            }
            let received = self.got.len();
            let started = Instant::now();
            self.answer(served, prepared);
            let answered = self.answers.len();
            if answered > 0 {
                let took = started.elapsed();
                served.handler.forwarder.stats().record_many(Outcome::Local, answered as u64, took);
            }
            self.send(fd);
            if received < BATCH {
                return true;
            }
        }
        false
    }

    fn receive(&mut self, fd: RawFd) -> Result<usize, Errno> {
        self.got.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> =
            self.bufs.iter_mut().map(|b| [IoSliceMut::new(&mut b[..])]).collect();
        let results = recvmmsg(fd, &mut self.recv_headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None)?;
        for message in results {
            self.got.push((message.bytes, message.address, message.flags.contains(MsgFlags::MSG_TRUNC)));
        }
        Ok(self.got.len())
    }

    /// Answers what the fast path can, hands the rest to the slow path.
    fn answer(&mut self, served: &Served, prepared: &Prepared) {
        self.answers.clear();
        let registry = served.handler.registry.load_full();
        let built = prepared.for_registry(&registry, served.handler.ttl);
        let scope = served.handler.scope.load();
        let tables = built.as_ref().map(|built| built.answers.tables(&scope));
        for (i, &(len, source, truncated)) in self.got.iter().enumerate() {
            let Some(source) = source.filter(answerable) else { continue };
            if truncated {
                continue;
            }
            let datagram = &self.bufs[i][..len];
            let out = &mut self.outs[self.answers.len()];
            match respond(datagram, tables.as_deref(), out, &mut self.rng) {
                Verdict::Answer(n) => self.answers.push((n, Some(source))),
                Verdict::Drop => {}
                Verdict::Slow => {
                    let src = SocketAddr::V4(SocketAddrV4::new(source.ip(), source.port()));
                    let datagram = slow::Datagram { bytes: datagram.to_vec(), src };
                    if served.slow.try_send(datagram).is_err() {
                        DnsCounters::add(&served.handler.limits.counters().udp_slow_queue_full);
                    }
                }
            }
        }
    }

    /// Sends the batch's answers; those the socket buffer cannot take now are dropped (the
    /// asker retries, as after any lost datagram).
    fn send(&mut self, fd: RawFd) {
        let mut sent = 0;
        while sent < self.answers.len() {
            let iovs: Vec<[IoSlice<'_>; 1]> = (sent..self.answers.len())
                .map(|k| [IoSlice::new(&self.outs[k][..self.answers[k].0])])
                .collect();
            let addrs: Vec<Option<SockaddrIn>> = self.answers[sent..].iter().map(|a| a.1).collect();
            let cmsgs: [ControlMessage<'_>; 0] = [];
            match sendmmsg(fd, &mut self.send_headers, iovs.iter(), &addrs, cmsgs, MsgFlags::MSG_DONTWAIT) {
                Ok(results) => {
                    let n = results.count();
                    if n == 0 {
                        return;
                    }
                    sent += n;
                }
                Err(Errno::EINTR) => {}
                Err(error) => {
                    tracing::debug!(%error, "DNS fast path: sendmmsg failed");
                    return;
                }
            }
        }
    }
}

/// Sources hickory-server would answer too: not port 0, not 0.0.0.0 nor broadcast.
fn answerable(source: &SockaddrIn) -> bool {
    let ip = source.ip();
    source.port() != 0 && !ip.is_unspecified() && !ip.is_broadcast()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::forward::Forwarder;
    use crate::registry::Registry;

    /// `name` A, ID 7, over UDP to `server`; the answer's bytes.
    fn ask(server: SocketAddr, name: &str, qtype: u8) -> Option<Vec<u8>> {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(std::time::Duration::from_secs(3))).unwrap();
        let mut query = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            query.push(label.len() as u8);
            query.extend_from_slice(label.as_bytes());
        }
        query.extend_from_slice(&[0, 0, qtype, 0, 1]);
        socket.send_to(&query, server).unwrap();
        let mut buf = [0u8; 2048];
        socket.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
    }

    /// Real sockets on loopback: the workers answer a name of the scope (fast), the slow path
    /// answers NXDOMAIN for one that is not; after the listener is dropped nothing answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_answer_fast_hand_on_the_rest_and_stop_on_drop() {
        let mut registry = Registry::default();
        registry.add("front", "web", Ipv4Addr::new(10, 0, 0, 100));
        let registry = Arc::new(registry);
        let prepared = Arc::new(Prepared::default());
        prepared.prepare(registry.clone(), 5);
        let handler = MeshHandler {
            registry: Arc::new(ArcSwap::new(registry)),
            scope: Arc::new(ArcSwap::from_pointee(vec!["front".to_string()])),
            forwarder: Arc::new(Forwarder::new(Vec::new())),
            ttl: 5,
            limits: crate::limits::NodeLimits::new().namespace(),
        };
        let stats = handler.forwarder.clone();
        let fast = FastPath::with_workers(prepared, 2).unwrap();
        let first = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        first.set_reuse_port(true).unwrap();
        first.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
        let server = first.local_addr().unwrap().as_socket().unwrap();
        let second = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        second.set_reuse_port(true).unwrap();
        second.bind(&server.into()).unwrap();
        let sockets: Vec<UdpSocket> = [first, second]
            .into_iter()
            .map(|s| {
                s.set_nonblocking(true).unwrap();
                s.into()
            })
            .collect();
        let listener = fast.serve(sockets, handler).unwrap();

        let (web, nothing) =
            tokio::task::spawn_blocking(move || (ask(server, "web", 1), ask(server, "nothing", 1)))
                .await
                .unwrap();
        let web = web.expect("an answer");
        assert_eq!(&web[..4], &[0, 7, 0x85, 0x80], "ID, QR AA RD, RA");
        assert_eq!(&web[web.len() - 4..], &[10, 0, 0, 100]);
        let nothing = nothing.expect("the slow path answers");
        assert_eq!(nothing[3] & 0x0f, 3, "NXDOMAIN");
        assert_eq!(stats.stats().count(Outcome::Local), 1, "the fast answer is counted before it is sent");
        // The slow path counts after it has sent.
        let deadline = Instant::now() + std::time::Duration::from_secs(2);
        while stats.stats().count(Outcome::NxDomain) != 1 {
            assert!(Instant::now() < deadline, "the slow answer is counted");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }

        drop(listener);
        let after = tokio::task::spawn_blocking(move || ask(server, "web", 1)).await.unwrap();
        assert!(after.is_none(), "no answer once the listener is gone");
        // And the sockets are closed: the address binds again without SO_REUSEPORT.
        let deadline = Instant::now() + std::time::Duration::from_secs(2);
        while UdpSocket::bind(server).is_err() {
            assert!(Instant::now() < deadline, "the listener's sockets stay open");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
