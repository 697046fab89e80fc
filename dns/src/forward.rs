//! Forwarding names that are not ours to the node's upstream resolvers.
//!
//! UDP first, TCP when the answer is truncated; the next server on a timeout, SERVFAIL or
//! REFUSED. A new random query ID per upstream query (the client's ID is restored on the way
//! back), and a bound on queries in flight so a flood cannot exhaust sockets (Swarm allows 1024;
//! so do we). Upstreams that are 127.0.0.11 (ourselves) are never used: no loops.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use crate::stats::DnsStats;

/// The address every attached namespace asks.
pub const MESH_DNS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// Queries forwarded at once, at most.
pub const MAX_IN_FLIGHT: usize = 1024;
const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForwardError {
    #[error("no upstream resolver configured")]
    NoUpstream,
    #[error("too many queries in flight")]
    Busy,
    #[error("every upstream failed or timed out")]
    AllFailed,
}

#[derive(Debug)]
pub struct Forwarder {
    upstreams: ArcSwap<Vec<SocketAddr>>,
    in_flight: Semaphore,
    /// The node's DNS counters: every namespace's handler shares this forwarder, so it keeps
    /// them for all.
    stats: Arc<DnsStats>,
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>) -> Forwarder {
        let forwarder = Forwarder {
            upstreams: ArcSwap::from_pointee(Vec::new()),
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
            stats: Arc::default(),
        };
        forwarder.set_upstreams(upstreams);
        forwarder
    }

    /// Replaces the upstreams (e.g. after resolv.conf changed), dropping any that is ourselves.
    pub fn set_upstreams(&self, upstreams: Vec<SocketAddr>) {
        let kept: Vec<SocketAddr> =
            upstreams.into_iter().filter(|u| u.ip() != IpAddr::V4(MESH_DNS)).collect();
        self.upstreams.store(Arc::new(kept));
    }

    pub fn upstreams(&self) -> Arc<Vec<SocketAddr>> {
        self.upstreams.load_full()
    }

    /// The node's DNS counters.
    pub fn stats(&self) -> &Arc<DnsStats> {
        &self.stats
    }

    /// Queries being forwarded now.
    pub fn in_flight(&self) -> usize {
        MAX_IN_FLIGHT - self.in_flight.available_permits()
    }

    /// Resolves `query` upstream; the answer carries the upstream's ID (the caller restores its own).
    pub async fn resolve(&self, query: &Query, recursion_desired: bool) -> Result<Message, ForwardError> {
        let upstreams = self.upstreams.load_full();
        if upstreams.is_empty() {
            return Err(ForwardError::NoUpstream);
        }
        let _permit = self.in_flight.try_acquire().map_err(|_| {
            self.stats.busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ForwardError::Busy
        })?;
        for upstream in upstreams.iter() {
            let mut message = Message::new(rand::random(), MessageType::Query, OpCode::Query);
            message.metadata.recursion_desired = recursion_desired;
            message.add_query(query.clone());
            let Ok(bytes) = message.to_vec() else { return Err(ForwardError::AllFailed) };
            let answer = match ask_udp(*upstream, &bytes, message.metadata.id).await {
                Some(answer) if answer.metadata.truncation => {
                    ask_tcp(*upstream, &bytes, message.metadata.id).await
                }
                other => other,
            };
            match answer {
                Some(answer)
                    if !matches!(
                        answer.metadata.response_code,
                        ResponseCode::ServFail | ResponseCode::Refused
                    ) =>
                {
                    return Ok(answer);
                }
                _ => continue,
            }
        }
        Err(ForwardError::AllFailed)
    }
}

async fn ask_udp(upstream: SocketAddr, query: &[u8], id: u16) -> Option<Message> {
    let bind: SocketAddr =
        if upstream.is_ipv4() { "0.0.0.0:0".parse().ok()? } else { "[::]:0".parse().ok()? };
    let socket = UdpSocket::bind(bind).await.ok()?;
    socket.connect(upstream).await.ok()?;
    socket.send(query).await.ok()?;
    let mut buf = vec![0u8; 4096];
    tokio::time::timeout(TIMEOUT, async {
        loop {
            let n = socket.recv(&mut buf).await.ok()?;
            // Anything but the answer to our ID (late answers, spoofing attempts) is ignored.
            if let Ok(message) = Message::from_vec(&buf[..n]) {
                if message.metadata.id == id {
                    return Some(message);
                }
            }
        }
    })
    .await
    .ok()
    .flatten()
}

async fn ask_tcp(upstream: SocketAddr, query: &[u8], id: u16) -> Option<Message> {
    tokio::time::timeout(TIMEOUT, async {
        let mut stream = TcpStream::connect(upstream).await.ok()?;
        stream.write_all(&(query.len() as u16).to_be_bytes()).await.ok()?;
        stream.write_all(query).await.ok()?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await.ok()?;
        Message::from_vec(&buf).ok().filter(|m| m.metadata.id == id)
    })
    .await
    .ok()
    .flatten()
}

/// The nameservers of a resolv.conf (port 53).
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next()).flatten()
        })
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_and_no_loops() {
        let servers = parse_resolv_conf("# comment\nnameserver 10.0.0.53\nsearch x\nnameserver 127.0.0.11\nnameserver fd00::1\nnameserver bogus\n");
        assert_eq!(servers.len(), 3);
        let forwarder = Forwarder::new(servers);
        let kept = forwarder.upstreams();
        assert_eq!(kept.len(), 2, "127.0.0.11 is never an upstream");
        assert!(kept.iter().all(|s| s.ip() != IpAddr::V4(MESH_DNS)));
    }
}
