//! A small client of the Docker Engine API over its Unix socket (hyper's HTTP/1 client), for
//! what the driver protocol does not say: a network's name, a container's name, and when a
//! container is being stopped. Docker serialises driver calls with its own API, so this is
//! never called from inside a driver call (it would wait for the call to finish): names come
//! from the event stream and from look-ups made when an event arrives.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

/// How long a look-up may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read (a network with thousands of containers fits).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// Longest event line (an event is a few hundred bytes).
const MAX_EVENT_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DockerApiError {
    #[error("cannot reach the Docker API at {path}: {source}")]
    Connect { path: PathBuf, source: std::io::Error },
    #[error("Docker API {what}: {source}")]
    Http { what: String, source: hyper::Error },
    #[error("Docker API {what}: HTTP {status}: {body}")]
    Status { what: String, status: StatusCode, body: String },
    #[error("Docker API {what}: {why}")]
    Decode { what: String, why: String },
    #[error("Docker API {what}: no answer within {TIMEOUT:?}")]
    Timeout { what: String },
}

#[derive(Debug, Clone)]
pub struct DockerApi {
    socket: PathBuf,
}

impl DockerApi {
    pub fn new(socket: &Path) -> DockerApi {
        DockerApi { socket: socket.to_path_buf() }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET path`, its JSON answer.
    pub async fn get(&self, path: &str) -> Result<Value, DockerApiError> {
        let what = path.to_string();
        let work = async {
            let response = self.send(path).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| DockerApiError::Decode { what: what.clone(), why: e.to_string() })?
                .to_bytes();
            if !status.is_success() {
                let body = String::from_utf8_lossy(&body).chars().take(200).collect();
                return Err(DockerApiError::Status { what: what.clone(), status, body });
            }
            serde_json::from_slice(&body)
                .map_err(|e| DockerApiError::Decode { what: what.clone(), why: e.to_string() })
        };
        tokio::time::timeout(TIMEOUT, work)
            .await
            .map_err(|_| DockerApiError::Timeout { what: what.clone() })?
    }

    /// The event stream (`GET /events`) with `filters`, from now on.
    pub async fn events(&self, filters: &Value) -> Result<Events, DockerApiError> {
        let path = format!("/events?filters={}", percent_encode(&filters.to_string()));
        let response = tokio::time::timeout(TIMEOUT, self.send(&path))
            .await
            .map_err(|_| DockerApiError::Timeout { what: "/events".into() })??;
        if !response.status().is_success() {
            return Err(DockerApiError::Status {
                what: "/events".into(),
                status: response.status(),
                body: String::new(),
            });
        }
        Ok(Events { body: response.into_body(), buffer: Vec::new() })
    }

    async fn send(&self, path: &str) -> Result<Response<Incoming>, DockerApiError> {
        let http = |source| DockerApiError::Http { what: path.to_string(), source };
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|source| DockerApiError::Connect { path: self.socket.clone(), source })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "Docker API connection ended with an error");
            }
        });
        let request = Request::get(path)
            .header(hyper::header::HOST, "docker")
            .body(Empty::<Bytes>::new())
            .map_err(|e| DockerApiError::Decode { what: path.to_string(), why: e.to_string() })?;
        sender.send_request(request).await.map_err(http)
    }
}

/// Docker's events, one JSON object per line.
pub struct Events {
    body: Incoming,
    buffer: Vec<u8>,
}

impl Events {
    /// The next event; None when Docker closed the stream (it stopped).
    pub async fn next(&mut self) -> Result<Option<Value>, DockerApiError> {
        let decode = |why: String| DockerApiError::Decode { what: "/events".into(), why };
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line).map(Some).map_err(|e| decode(e.to_string()));
            }
            if self.buffer.len() > MAX_EVENT_BYTES {
                return Err(decode(format!("an event longer than {MAX_EVENT_BYTES} bytes")));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(source)) => return Err(DockerApiError::Http { what: "/events".into(), source }),
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.buffer.extend_from_slice(data);
                    }
                }
            }
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_encoded() {
        assert_eq!(percent_encode(r#"{"type":["network"]}"#), "%7B%22type%22%3A%5B%22network%22%5D%7D");
    }
}
