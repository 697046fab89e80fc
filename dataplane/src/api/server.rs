//! The API listener: socket lifecycle, framing, limits and timeouts.
//!
//! It knows nothing of what a request does; that is the [`Handler`]'s business. Denial-of-service
//! protection lives here: a bounded number of connections, a bounded request size and an idle
//! timeout per connection, so a stuck or hostile client cannot hold meshd's resources.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::Uid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};

use super::error::{ApiError, ErrorKind};
use super::reply::{Reply, Response, StreamLine};
use super::request::{parse_request, Request, MAX_REQUEST_BYTES};
use crate::monitor::{Filter, Subscription};
use crate::util::private_socket::{self, BindFailure};

/// How long a connection may sit idle between requests before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; further clients wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;

/// Answers API requests. Implemented by the daemon; tests use small fakes.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request) -> impl Future<Output = Response> + Send;

    /// A subscription to the monitor's events, for a `monitor` request (a stream). The
    /// default: this handler has no monitor.
    fn monitor(&self, filter: Filter) -> Result<Subscription, ApiError> {
        let _ = filter;
        Err(ApiError::new(ErrorKind::BadRequest, "this server has no monitor"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot create socket directory {path}: {source}")]
    Directory { path: PathBuf, source: io::Error },
    #[error("another meshd is already serving {path}")]
    InUse { path: PathBuf },
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("cannot bind API socket {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
}

impl From<BindFailure> for BindError {
    fn from(failure: BindFailure) -> BindError {
        match failure {
            BindFailure::Directory { path, source } => BindError::Directory { path, source },
            BindFailure::InUse { path } => BindError::InUse { path },
            BindFailure::NotASocket { path } => BindError::NotASocket { path },
            BindFailure::Bind { path, source } => BindError::Bind { path, source },
        }
    }
}

/// A bound API socket; the socket file is removed when this is dropped.
#[derive(Debug)]
pub struct ApiServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ApiServer {
    /// Binds `path` with mode 0600. A stale socket (nobody listening) is replaced; a live one is
    /// an error, so two agents never fight over one socket.
    pub fn bind(path: &Path) -> Result<ApiServer, BindError> {
        let listener = private_socket::bind(path)?;
        Ok(ApiServer { listener, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `shutdown` becomes true. Connections in progress finish their current request.
    pub async fn serve<H: Handler>(self, handler: Arc<H>, mut shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("never closed"),
                _ = stopped(&mut shutdown) => break,
            };
            let stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "API accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stopped(&mut shutdown) => break,
            };
            let handler = handler.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                if let Err(error) = serve_connection(stream, &*handler, shutdown).await {
                    tracing::debug!(%error, "API connection ended with an error");
                }
                drop(permit);
            });
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves one connection: requests in, responses out, until EOF, timeout or a framing error.
async fn serve_connection<H: Handler>(
    stream: UnixStream,
    handler: &H,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let peer_uid = write.as_ref().peer_cred().map(|cred| cred.uid());
    // The socket's mode already keeps others out; checking the peer too means a wrongly
    // permissive mode (or an inherited descriptor) still does not open the API.
    let allowed = matches!(peer_uid, Ok(uid) if uid == 0 || uid == Uid::effective().as_raw());
    let mut reader = BufReader::new(read);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let limit = (MAX_REQUEST_BYTES + 1) as u64;
        let read =
            tokio::time::timeout(IDLE_TIMEOUT, (&mut reader).take(limit).read_until(b'\n', &mut line)).await;
        let n = match read {
            Ok(result) => result?,
            Err(_) => return Ok(()), // idle: close quietly
        };
        if n == 0 {
            return Ok(());
        }
        let complete = line.last() == Some(&b'\n');
        if !complete && line.len() > MAX_REQUEST_BYTES {
            let error = ApiError::new(
                ErrorKind::TooLarge,
                format!("requests are limited to {MAX_REQUEST_BYTES} bytes"),
            );
            send(&mut write, &Response::Error(error)).await?;
            return Ok(());
        }
        let response = if !allowed {
            Response::Error(ApiError::new(ErrorKind::Forbidden, "the meshd API is for root only"))
        } else {
            match parse_request(trim_newline(&line)) {
                Ok(request) => match request.monitor_filter() {
                    // A stream takes the connection over until its end.
                    Some((filter, follow)) => match handler.monitor(filter) {
                        Ok(subscription) => {
                            return stream_events(reader, write, subscription, follow, shutdown).await
                        }
                        Err(error) => Response::Error(error),
                    },
                    None => handler.handle(request).await,
                },
                Err(error) => Response::Error(error),
            }
        };
        send(&mut write, &response).await?;
        if !allowed || !complete {
            return Ok(());
        }
    }
}

/// Serves a monitor stream: the first line says yes, then the matching history, then (with
/// `follow`) every new event until the client closes its side, meshd stops, or a write has
/// waited [`IDLE_TIMEOUT`]. Before an event, a `dropped` line tells how many this client lost
/// since the last one (its queue in the hub is bounded; it never grows for a slow reader).
async fn stream_events(
    mut reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    mut write: tokio::net::unix::OwnedWriteHalf,
    mut subscription: Subscription,
    follow: bool,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    send(&mut write, &Response::Ok(Reply::Monitoring {})).await?;
    for event in std::mem::take(&mut subscription.history) {
        send_line(&mut write, &StreamLine::Event(Box::new((*event).clone()))).await?;
    }
    if !follow {
        return send_line(&mut write, &StreamLine::End {}).await;
    }
    let mut reported = 0;
    let mut scratch = [0u8; 64];
    loop {
        tokio::select! {
            event = subscription.events.recv() => {
                let Some(event) = event else { return Ok(()) };
                let dropped = subscription.dropped.load(std::sync::atomic::Ordering::Relaxed);
                if dropped > reported {
                    send_line(&mut write, &StreamLine::Dropped { count: dropped - reported }).await?;
                    reported = dropped;
                }
                send_line(&mut write, &StreamLine::Event(Box::new((*event).clone()))).await?;
            }
            // Anything the client sends now is ignored; its EOF ends the stream.
            read = reader.read(&mut scratch) => match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => {}
            },
            _ = stopped(&mut shutdown) => return send_line(&mut write, &StreamLine::End {}).await,
        }
    }
}

async fn send_line(write: &mut tokio::net::unix::OwnedWriteHalf, line: &StreamLine) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(line).map_err(io::Error::other)?;
    bytes.push(b'\n');
    match tokio::time::timeout(IDLE_TIMEOUT, write.write_all(&bytes)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "monitor client stopped reading")),
    }
}

/// Resolves once the shutdown flag is true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    loop {
        let stop = *shutdown.borrow_and_update();
        if stop || shutdown.changed().await.is_err() {
            return;
        }
    }
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, response: &Response) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(response).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::api::reply::Reply;
    use tokio::io::AsyncBufReadExt;

    /// Answers every request with a fixed token, so the tests see the framing only.
    struct Fixed;

    impl Handler for Fixed {
        async fn handle(&self, _request: Request) -> Response {
            Response::Ok(Reply::JoinToken { token: "fixed".into() })
        }
    }

    fn socket_path(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("meshd-api-{tag}-{}.sock", std::process::id()))
    }

    async fn exchange(path: &Path, input: &[u8]) -> Vec<String> {
        let mut stream = UnixStream::connect(path).await.unwrap();
        stream.write_all(input).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut lines = BufReader::new(stream).lines();
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn serves_requests_and_survives_bad_ones() {
        let path = socket_path("serve");
        let server = ApiServer::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(server.serve(Arc::new(Fixed), stop_rx));

        let replies =
            exchange(&path, b"{\"op\":\"node_ls\"}\nnot json\n{\"op\":\"join_token\",\"role\":\"worker\"}\n")
                .await;
        assert_eq!(replies.len(), 3, "{replies:?}");
        assert!(replies[0].contains("fixed"));
        assert!(replies[1].contains("bad_request"));
        assert!(replies[2].contains("fixed"));

        let mut huge = vec![b' '; MAX_REQUEST_BYTES + 10];
        huge.push(b'\n');
        let replies = exchange(&path, &huge).await;
        assert_eq!(replies.len(), 1);
        assert!(replies[0].contains("too_large"), "{replies:?}");

        // Still serving after all of that.
        let replies = exchange(&path, b"{\"op\":\"node_ls\"}").await;
        assert!(replies[0].contains("fixed"));

        stop.send(true).unwrap();
        task.await.unwrap();
        assert!(!path.exists(), "socket file removed on shutdown");
    }

    /// Serves monitor streams from a hub the test feeds.
    struct Streams(Arc<crate::monitor::Monitor>);

    impl Handler for Streams {
        async fn handle(&self, _request: Request) -> Response {
            Response::Ok(Reply::Left {})
        }

        fn monitor(&self, filter: Filter) -> Result<Subscription, ApiError> {
            self.0.subscribe(filter).map_err(|e| ApiError::new(ErrorKind::Conflict, e.to_string()))
        }
    }

    fn event(n: u8) -> crate::monitor::MonitorEvent {
        let peer = crate::monitor::Peer {
            address: std::net::Ipv4Addr::new(10, 0, 0, n),
            port: None,
            network: Some("front".into()),
            service: None,
            task: None,
            node: None,
        };
        crate::monitor::MonitorEvent {
            time: String::new(),
            kind: crate::monitor::EventKind::Drop,
            node: "n1".into(),
            interface: "x".into(),
            direction: "from-container".into(),
            verdict: "dropped".into(),
            reason: "drop-no-endpoint".into(),
            protocol: "icmp".into(),
            source: peer.clone(),
            destination: peer,
            backend: None,
            length: 64,
        }
    }

    #[tokio::test]
    async fn monitor_streams_history_then_follows_until_the_client_goes() {
        let path = socket_path("stream");
        let server = ApiServer::bind(&path).unwrap();
        let hub = crate::monitor::Monitor::new(None, 1000).unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(server.serve(Arc::new(Streams(hub.clone())), stop_rx));
        hub.publish(vec![event(1)]);

        // Without follow: the answer, the history, the end.
        let lines = exchange(&path, b"{\"op\":\"monitor\"}\n").await;
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("monitoring"));
        assert!(lines[1].starts_with("{\"event\""), "{lines:?}");
        assert_eq!(lines[2], "{\"end\":{}}");

        // Following: new events arrive as they are published; closing ends the subscription.
        let stream = UnixStream::connect(&path).await.unwrap();
        let (read, mut write) = stream.into_split();
        write.write_all(b"{\"op\":\"monitor\",\"follow\":true,\"types\":[\"drop\"]}\n").await.unwrap();
        let mut lines = BufReader::new(read).lines();
        assert!(lines.next_line().await.unwrap().unwrap().contains("monitoring"));
        assert!(lines.next_line().await.unwrap().unwrap().contains("10.0.0.1"), "history first");
        while hub.subscribers() == 0 {
            tokio::task::yield_now().await;
        }
        hub.publish(vec![event(2)]);
        assert!(lines.next_line().await.unwrap().unwrap().contains("10.0.0.2"));
        drop(write);
        drop(lines);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while hub.subscribers() != 0 {
            assert!(std::time::Instant::now() < deadline, "the subscription outlived its client");
            hub.publish(vec![event(3)]);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true).unwrap();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_live_socket_is_not_taken_over() {
        let path = socket_path("live");
        let _first = ApiServer::bind(&path).unwrap();
        assert!(matches!(ApiServer::bind(&path), Err(BindError::InUse { .. })));
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_file_is_not() {
        let path = socket_path("stale");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let server = ApiServer::bind(&path).unwrap();
        drop(server);
        std::fs::write(&path, b"not a socket").unwrap();
        assert!(matches!(ApiServer::bind(&path), Err(BindError::NotASocket { .. })));
        std::fs::remove_file(&path).unwrap();
    }
}
