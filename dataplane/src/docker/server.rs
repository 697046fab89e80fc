//! The plugin socket Docker finds the driver by (`/run/docker/plugins/NAME.sock`: the plugin
//! is named after the file), served with axum over hyper's HTTP/1 (see docs/runtimes.md for why
//! axum): one route per call, the body parsed by [`super::protocol`], the [`Driver`] asked,
//! the answer JSON with Docker's plugin media type, a refusal HTTP 500 with `{"Err": ...}`.
//!
//! Denial-of-service protection, as for the API socket: root peers only (checked by
//! credentials, besides the socket's mode 0600), at most [`MAX_CONNECTIONS`] connections,
//! bodies up to [`MAX_BODY_BYTES`], and a time limit for a request's headers.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Value};
use tokio::net::UnixListener;
use tokio::sync::{watch, Semaphore};

use super::error::DriverError;
use super::protocol::{self, Call};
use crate::util::private_socket::{self, BindFailure};

/// Connections served at once (Docker keeps a few).
pub const MAX_CONNECTIONS: usize = 64;
/// Largest request body (Docker's are a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long a client may take to send a request's headers (also bounds idle connections).
const HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// The media type of Docker's plugin API.
const MEDIA_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// Every call Docker makes of a network and IPAM driver.
const PATHS: [&str; 21] = [
    "/Plugin.Activate",
    "/NetworkDriver.GetCapabilities",
    "/NetworkDriver.CreateNetwork",
    "/NetworkDriver.DeleteNetwork",
    "/NetworkDriver.CreateEndpoint",
    "/NetworkDriver.DeleteEndpoint",
    "/NetworkDriver.EndpointOperInfo",
    "/NetworkDriver.Join",
    "/NetworkDriver.Leave",
    "/NetworkDriver.ProgramExternalConnectivity",
    "/NetworkDriver.RevokeExternalConnectivity",
    "/NetworkDriver.DiscoverNew",
    "/NetworkDriver.DiscoverDelete",
    "/NetworkDriver.AllocateNetwork",
    "/NetworkDriver.FreeNetwork",
    "/IpamDriver.GetCapabilities",
    "/IpamDriver.GetDefaultAddressSpaces",
    "/IpamDriver.RequestPool",
    "/IpamDriver.ReleasePool",
    "/IpamDriver.RequestAddress",
    "/IpamDriver.ReleaseAddress",
];

/// Carries out Docker's calls (the daemon's Docker driver; tests use fakes).
pub trait Driver: Send + Sync + 'static {
    fn handle(&self, call: Call) -> impl Future<Output = Result<Value, DriverError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot create the plugin directory {path}: {source}")]
    Directory { path: PathBuf, source: io::Error },
    #[error("another process serves the Docker plugin socket {path}")]
    InUse { path: PathBuf },
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("cannot bind the Docker plugin socket {path}: {source}")]
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

/// The bound plugin socket; the file is removed when this is dropped (Docker then sees the
/// plugin gone rather than a dead socket).
pub struct PluginServer {
    listener: UnixListener,
    path: PathBuf,
}

impl PluginServer {
    /// Binds `path` (mode 0600; a stale socket is replaced, a live one refused).
    pub fn bind(path: &Path) -> Result<PluginServer, BindError> {
        let listener = private_socket::bind(path)?;
        Ok(PluginServer { listener, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `shutdown` becomes true.
    pub async fn serve<D: Driver>(self, driver: Arc<D>, mut shutdown: watch::Receiver<bool>) {
        let app = router(driver);
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
                        tracing::warn!(%error, "Docker plugin accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stopped(&mut shutdown) => break,
            };
            let uid = stream.peer_cred().map(|c| c.uid());
            if !matches!(uid, Ok(uid) if uid == 0 || uid == nix::unistd::Uid::effective().as_raw()) {
                tracing::warn!(?uid, "refused a Docker plugin connection from another user");
                continue;
            }
            let service = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "Docker plugin connection ended with an error");
                }
                drop(permit);
            });
        }
    }
}

impl Drop for PluginServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One POST route per call; anything else is 404 with an `Err` Docker can show.
pub fn router<D: Driver>(driver: Arc<D>) -> Router {
    let mut router = Router::new();
    for path in PATHS {
        router = router.route(path, post(handle::<D>));
    }
    router
        .fallback(|uri: Uri| async move {
            reply(
                StatusCode::NOT_FOUND,
                json!({ "Err": format!("meshd: {} is not a call of this driver", uri.path()) }),
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(driver)
}

async fn handle<D: Driver>(State(driver): State<Arc<D>>, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let call = match protocol::parse(&path, &body) {
        Some(Ok(call)) => call,
        Some(Err(error)) => return refused(&path, error),
        None => {
            return reply(
                StatusCode::NOT_FOUND,
                json!({ "Err": format!("meshd: {path} is not a call of this driver") }),
            )
        }
    };
    match driver.handle(call).await {
        Ok(answer) => reply(StatusCode::OK, answer),
        Err(error) => refused(&path, error),
    }
}

fn refused(path: &str, error: DriverError) -> Response {
    tracing::info!(call = path, %error, "Docker call refused");
    reply(StatusCode::INTERNAL_SERVER_ERROR, json!({ "Err": error.to_string() }))
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, MEDIA_TYPE)], body.to_string()).into_response()
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Driver for Echo {
        async fn handle(&self, call: Call) -> Result<Value, DriverError> {
            match call {
                Call::Activate => Ok(json!({ "Implements": ["NetworkDriver", "IpamDriver"] })),
                other => Err(DriverError::bad(format!("{other:?}"))),
            }
        }
    }

    /// A raw HTTP/1.1 exchange, as Docker's Go client writes it (no Content-Type).
    async fn exchange(path: &Path, request: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::UnixStream::connect(path).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn calls_answers_and_refusals() {
        let path = std::env::temp_dir().join(format!("meshd-plugin-{}.sock", std::process::id()));
        let server = PluginServer::bind(&path).unwrap();
        assert!(matches!(PluginServer::bind(&path), Err(BindError::InUse { .. })));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(server.serve(Arc::new(Echo), stop_rx));

        let ok = exchange(
            &path,
            "POST /Plugin.Activate HTTP/1.1\r\nHost: \r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains(MEDIA_TYPE) && ok.contains("IpamDriver"), "{ok}");
        let body = r#"{"NetworkID":"n","EndpointID":"e"}"#;
        let refused = exchange(
            &path,
            &format!("POST /NetworkDriver.Leave HTTP/1.1\r\nHost: \r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
        )
        .await;
        assert!(
            refused.starts_with("HTTP/1.1 500") && refused.contains(r#""Err":"meshd: Leave"#),
            "{refused}"
        );
        let bad = exchange(
            &path,
            "POST /NetworkDriver.Join HTTP/1.1\r\nHost: \r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        )
        .await;
        assert!(bad.starts_with("HTTP/1.1 500") && bad.contains("NetworkID is missing"), "{bad}");
        let unknown = exchange(
            &path,
            "POST /Nope HTTP/1.1\r\nHost: \r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(unknown.starts_with("HTTP/1.1 404") && unknown.contains("Err"), "{unknown}");
        let huge = format!(
            "POST /NetworkDriver.Leave HTTP/1.1\r\nHost: \r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            MAX_BODY_BYTES + 1,
            " ".repeat(MAX_BODY_BYTES + 1)
        );
        let too_large = exchange(&path, &huge).await;
        assert!(too_large.starts_with("HTTP/1.1 413"), "{}", &too_large[..too_large.len().min(400)]);

        stop.send(true).unwrap();
        task.await.unwrap();
        assert!(!path.exists(), "socket removed");
    }
}
