//! CNI error objects: `{"cniVersion","code","msg","details"}` on stdout with a non-zero exit,
//! which is where libcni (podman, containerd, Kubernetes) reads them; it shows `msg: details`.

use serde_json::{json, Value};

/// The spec's codes (0-99 reserved) and meshd-cni's own (100+).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// The message must name the key and its value.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// The message must name the variables.
    pub const INVALID_ENV: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: ADD cannot be served.
    pub const NOT_AVAILABLE: u32 = 50;
    /// meshd refused the request (the message says why).
    pub const MESHD_REFUSED: u32 = 100;
    /// CHECK found the attachment different from the ADD's result.
    pub const CHECK_FAILED: u32 = 101;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}: {details}")]
pub struct CniError {
    pub code: u32,
    /// Short: what kind of failure.
    pub msg: String,
    /// What exactly, and what to do about it.
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> CniError {
        CniError { code, msg: msg.into(), details: details.into() }
    }

    /// The error object in protocol version `version`.
    pub fn to_json(&self, version: &str) -> Value {
        json!({ "cniVersion": version, "code": self.code, "msg": self.msg, "details": self.details })
    }
}
