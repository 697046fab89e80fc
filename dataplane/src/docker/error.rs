//! A refused driver call: Docker shows the message after the call's name
//! (`NetworkDriver.Join: meshd: ...`). Sent as HTTP 500 with `{"Err": ...}`: Docker ignores an
//! `Err` in a 200 answer to some calls (RequestPool).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("meshd: {0}")]
pub struct DriverError(pub String);

impl DriverError {
    /// A request that makes no sense, or asks for something meshd does not do.
    pub fn bad(message: impl Into<String>) -> DriverError {
        DriverError(message.into())
    }
}
