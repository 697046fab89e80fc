//! Errors of the local API: a kind a script can branch on, and a message a person can act on.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request could not be parsed or is invalid; nothing was changed.
    BadRequest,
    /// The request exceeded [`MAX_REQUEST_BYTES`].
    TooLarge,
    /// The caller is not allowed to use the API.
    Forbidden,
    /// The request names something that does not exist.
    NotFound,
    /// The request conflicts with the current state (exists already, in use, overlaps).
    Conflict,
    /// The cluster cannot decide it now (no majority of the managers can be reached); nothing
    /// was changed: try again once they can.
    Unavailable,
    /// meshd failed while carrying out a valid request.
    Internal,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError { kind, message: message.into() }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::BadRequest => "bad request",
            ErrorKind::TooLarge => "request too large",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal error",
        })
    }
}
