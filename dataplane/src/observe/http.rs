//! The HTTP side of observability, on `--metrics-addr`: `/metrics` (Prometheus), `/` (the web
//! view: one HTML file with its CSS and JS, compiled into the binary, no build step and nothing
//! fetched from elsewhere) and `/api/cluster` (the JSON the page polls).
//!
//! axum on hyper, HTTP/1 only, the workspace's one HTTP stack. Bounds: requests are GETs
//! without bodies; connections at once are limited by a semaphore ([`MAX_CONNECTIONS`]) and
//! each request by a timeout, so a stuck scraper cannot pile up work in meshd.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::Sources;

/// The web view: plain HTML, CSS and JS.
const PAGE: &str = include_str!("webview.html");
/// Requests served at once; more wait for a slot (and time out).
pub const MAX_CONNECTIONS: usize = 32;
/// A request that takes longer is answered 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
    let state = AppState { sources, slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)) };
    let app = Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/api/cluster", get(cluster))
        .with_state(state);
    let stop = async move {
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
        tracing::warn!(%error, "metrics server stopped");
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
