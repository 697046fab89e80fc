//! 127.0.0.11:53 (UDP and TCP) inside a namespace, served by hickory-server.
//!
//! The sockets are opened on a short-lived thread that entered the namespace (setns moves only
//! the calling thread), then handed to tokio: one meshd serves every namespace of its node, no
//! process per container. Every address in 127.0.0.0/8 is local on Linux, so no address needs
//! adding. TCP connections that stay idle are closed after a timeout (denial-of-service
//! protection); dropping a [`Listener`] stops serving.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use hickory_server::Server;

use crate::forward::MESH_DNS;
use crate::handler::MeshHandler;

/// How long a TCP client may stay idle.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Listener {
    server: Option<Server<MeshHandler>>,
}

/// Opens 127.0.0.11:53 in the namespace at `netns` and starts serving with `handler`.
pub async fn listen(netns: &Path, handler: MeshHandler) -> io::Result<Listener> {
    listen_on(netns, SocketAddr::new(MESH_DNS.into(), 53), handler).await
}

pub async fn listen_on(netns: &Path, addr: SocketAddr, handler: MeshHandler) -> io::Result<Listener> {
    let file = File::open(netns)?;
    // One UDP socket per core, sharing the port (SO_REUSEPORT): the kernel spreads queries over
    // them and hickory-server runs one receive loop per socket, so all cores answer.
    let sockets = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8);
    let (udp, tcp) = std::thread::spawn(move || -> io::Result<_> {
        setns(&file)?;
        let udp = (0..sockets).map(|_| reuseport_udp(addr)).collect::<io::Result<Vec<_>>>()?;
        let tcp = std::net::TcpListener::bind(addr)?;
        tcp.set_nonblocking(true)?;
        Ok((udp, tcp))
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))??;
    let mut server = Server::new(handler);
    for socket in udp {
        server.register_socket(tokio::net::UdpSocket::from_std(socket)?);
    }
    server.register_listener(tokio::net::TcpListener::from_std(tcp)?, TCP_TIMEOUT, 65_535);
    Ok(Listener { server: Some(server) })
}

impl Listener {
    /// Stops serving and closes the sockets.
    pub async fn stop(mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.shutdown_gracefully().await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.shutdown_token().cancel();
        }
    }
}

fn reuseport_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Enters the network namespace of `file` on the calling thread (nix's safe wrapper).
fn setns(file: &File) -> io::Result<()> {
    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}
