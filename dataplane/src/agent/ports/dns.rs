//! The DNS listener at 127.0.0.11 inside an attached namespace (the rest of the embedded DNS,
//! its names and counters, lives in the process and needs no port).

use std::path::Path;
use std::sync::Arc;

use super::BoxFuture;
use crate::discovery::Discovery;

pub trait NamespaceDns: Send + Sync {
    /// Serves the namespace at `netns` with `networks` as its scope (none: stops serving it);
    /// writes its resolv.conf when `resolv_conf` says so.
    fn serve<'a>(
        &'a self,
        netns: &'a Path,
        networks: Vec<String>,
        resolv_conf: bool,
    ) -> BoxFuture<'a, std::io::Result<()>>;
}

impl NamespaceDns for Arc<Discovery> {
    fn serve<'a>(
        &'a self,
        netns: &'a Path,
        networks: Vec<String>,
        resolv_conf: bool,
    ) -> BoxFuture<'a, std::io::Result<()>> {
        Box::pin(Discovery::serve(self, netns, networks, resolv_conf))
    }
}
