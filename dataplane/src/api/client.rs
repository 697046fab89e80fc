//! The blocking API client used by `meshctl` (one request, one response, no runtime needed).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ApiError;
use super::reply::{Reply, Response, StreamLine, MAX_RESPONSE_BYTES};
use super::request::Request;

const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach meshd at {path}: {source} (is meshd running? set --socket or MESHD_SOCKET)")]
    Connect { path: PathBuf, source: io::Error },
    #[error("lost the connection to meshd at {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("meshd sent a response this meshctl does not understand: {0}")]
    Protocol(String),
    #[error("{0}")]
    Api(ApiError),
}

/// Sends one request to the meshd at `socket` and returns its reply.
pub fn call(socket: &Path, request: &Request) -> Result<Reply, ClientError> {
    call_waiting(socket, request, Duration::ZERO)
}

/// [`call`] for a request that takes `extra` longer than usual to answer.
pub fn call_waiting(socket: &Path, request: &Request, extra: Duration) -> Result<Reply, ClientError> {
    let io_err = |source| ClientError::Io { path: socket.to_path_buf(), source };
    let mut stream = UnixStream::connect(socket)
        .map_err(|source| ClientError::Connect { path: socket.to_path_buf(), source })?;
    stream.set_read_timeout(Some(TIMEOUT + extra)).map_err(io_err)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io_err)?;

    let mut line = serde_json::to_vec(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io_err)?;

    let mut reader = BufReader::new(stream).take(MAX_RESPONSE_BYTES as u64);
    let mut response = Vec::new();
    reader.read_until(b'\n', &mut response).map_err(io_err)?;
    if response.is_empty() {
        return Err(ClientError::Protocol("meshd closed the connection without answering".into()));
    }
    match serde_json::from_slice::<Response>(&response) {
        Ok(Response::Ok(reply)) => Ok(reply),
        Ok(Response::Error(error)) => Err(ClientError::Api(error)),
        Err(e) => Err(ClientError::Protocol(e.to_string())),
    }
}

/// Sends a streaming request (`monitor`) and hands every line after the first to `on_line`
/// until it returns false, the stream ends, or meshd goes. The first line is the usual
/// response: an error there is returned as such.
pub fn stream(
    socket: &Path,
    request: &Request,
    mut on_line: impl FnMut(StreamLine) -> bool,
) -> Result<(), ClientError> {
    let io_err = |source| ClientError::Io { path: socket.to_path_buf(), source };
    let mut stream = UnixStream::connect(socket)
        .map_err(|source| ClientError::Connect { path: socket.to_path_buf(), source })?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io_err)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io_err)?;
    let mut line = serde_json::to_vec(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io_err)?;

    let mut reader = BufReader::new(stream.try_clone().map_err(io_err)?);
    let mut first = Vec::new();
    (&mut reader).take(MAX_RESPONSE_BYTES as u64).read_until(b'\n', &mut first).map_err(io_err)?;
    if first.is_empty() {
        return Err(ClientError::Protocol("meshd closed the connection without answering".into()));
    }
    match serde_json::from_slice::<Response>(&first) {
        Ok(Response::Ok(_)) => {}
        Ok(Response::Error(error)) => return Err(ClientError::Api(error)),
        Err(e) => return Err(ClientError::Protocol(e.to_string())),
    }
    // A followed stream may be quiet for as long as nothing happens.
    stream.set_read_timeout(None).map_err(io_err)?;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = (&mut reader).take(MAX_RESPONSE_BYTES as u64).read_until(b'\n', &mut buf).map_err(io_err)?;
        if n == 0 {
            return Ok(());
        }
        let line: StreamLine =
            serde_json::from_slice(&buf).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let end = matches!(line, StreamLine::End {});
        if !on_line(line) || end {
            return Ok(());
        }
    }
}
