//! The HTTP side of observability, on `--metrics-addr`: `/metrics` (Prometheus), `/` (the web
//! view: one HTML file with its CSS and JS, compiled into the binary, no build step and nothing
//! fetched from elsewhere) and `/api/cluster` (the JSON the page polls).
//!
//! axum on hyper, HTTP/1 only, the workspace's one HTTP stack. Bounds: requests are GETs
//! without bodies; requests at once are limited by a semaphore ([`MAX_REQUESTS`]) and each
//! request by a timeout, so a stuck scraper cannot pile up work in meshd. The listener may face
//! the underlay (`0.0.0.0:PORT`), so connections are bounded before any byte is read: at most
//! [`MAX_CONNECTIONS`] in all and [`PER_SOURCE`] from one address (more are closed at once and
//! counted in [`HttpCounters`]), [`HEADER_TIMEOUT`] for a request's headers and
//! [`CONNECTION_LIFETIME`] for a whole connection (a scraper reconnects).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::Sources;

/// The web view: plain HTML, CSS and JS.
const PAGE: &str = include_str!("webview.html");
/// Requests served at once; more wait for a slot (and time out).
pub const MAX_REQUESTS: usize = 32;
/// Connections open at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections from one address at once; more are closed at once.
pub const PER_SOURCE: usize = 8;
/// How long a client may take to send a request's headers (also how long a kept-alive
/// connection may wait for its next request).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last, whatever it does.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// A request that takes longer is answered 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections the listener closed at once, by the bound they hit.
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// [`MAX_CONNECTIONS`] were open.
    pub refused_total: AtomicU64,
    /// [`PER_SOURCE`] were open from the same address.
    pub refused_source: AtomicU64,
}

impl HttpCounters {
    /// (reason, count), for the metrics.
    pub fn rows(&self) -> [(&'static str, u64); 2] {
        [
            ("total", self.refused_total.load(Ordering::Relaxed)),
            ("per_source", self.refused_source.load(Ordering::Relaxed)),
        ]
    }
}

/// Open connections per source address.
#[derive(Default)]
struct PerSource(Mutex<HashMap<IpAddr, usize>>);

/// One connection's hold on its source's share; released on drop.
struct SourceSlot {
    sources: Arc<PerSource>,
    ip: IpAddr,
}

impl PerSource {
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let mut sources = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = sources.entry(ip).or_insert(0);
        if *count >= PER_SOURCE {
            return None;
        }
        *count += 1;
        Some(SourceSlot { sources: self.clone(), ip })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut sources = self.sources.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = sources.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                sources.remove(&self.ip);
            }
        }
    }
}

#[derive(Clone)]
struct AppState {
    sources: Arc<Sources>,
    slots: Arc<Semaphore>,
}

/// Binds `addr` (a clear error if it cannot), then serves until `shutdown` is true.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

pub async fn serve(listener: TcpListener, sources: Arc<Sources>, mut shutdown: watch::Receiver<bool>) {
    let counters = sources.http.clone();
    let state = AppState { sources, slots: Arc::new(Semaphore::new(MAX_REQUESTS)) };
    let app = Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/api/cluster", get(cluster))
        .with_state(state);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let per_source = Arc::new(PerSource::default());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(%error, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => return,
        };
        // Dropping the stream closes it: a refused connection holds nothing.
        let Some(slot) = per_source.take(peer.ip()) else {
            counters.refused_source.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            counters.refused_total.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        tokio::spawn(serve_connection(stream, TowerToHyperService::new(app.clone()), permit, slot));
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    service: TowerToHyperService<Router>,
    _permit: OwnedSemaphorePermit,
    _slot: SourceSlot,
) {
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    // Past its lifetime the connection is dropped, whatever it was doing.
    if let Ok(Err(error)) = tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
        tracing::debug!(%error, "metrics connection ended with an error");
    }
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
            ),
        ],
        PAGE,
    )
}

/// Runs `work` within the connection bound and the timeout.
async fn bounded<F: std::future::Future<Output = Response>>(state: &AppState, work: F) -> Response {
    let Ok(Ok(_slot)) = tokio::time::timeout(REQUEST_TIMEOUT, state.slots.acquire()).await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "busy\n").into_response();
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
        Ok(response) => response,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "timed out\n").into_response(),
    }
}

/// OpenMetrics when the client asks for it (Prometheus does), else the classic text format.
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    let sources = state.sources.clone();
    bounded(&state, async move {
        let text = sources.render().await;
        if openmetrics {
            ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
                .into_response()
        } else {
            (
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                super::metrics::to_classic(&text),
            )
                .into_response()
        }
    })
    .await
}

async fn cluster(State(state): State<AppState>) -> Response {
    let sources = state.sources.clone();
    bounded(&state, async move {
        let view = sources.cluster().await;
        match serde_json::to_string(&view) {
            Ok(json) => {
                ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], json)
                    .into_response()
            }
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    })
    .await
}
