//! Real container runtimes for the tests, each private to one test and cleaned up by a guard:
//! podman with the CNI backend, containerd with `ctr run --cni`, and dockerd. They run inside a
//! node's network namespace (their containers' veths are that node's), with their own roots,
//! sockets and configurations, so nothing of the machine's is used or changed.
//!
//! Runtimes write a few global files whatever their configuration says (`/etc/docker/key.json`,
//! `/run/runc`, `/run/containerd/s`, `/var/lib/cni/results`, ...): [`global::GlobalFiles`]
//! removes what was not there before.

pub mod containerd;
pub mod docker;
pub mod global;
pub mod image;
pub mod mounts;
pub mod podman;
