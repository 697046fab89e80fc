//! Small helpers with no meshd concept in them, used across the crate: each would be a tiny
//! dependency of its own. The bottom floor: nothing here imports anything of meshd.
//!
//! - [`hash`]: FNV-1a, where every node must compute the same value from the same input.
//! - [`hex`]: lower-case hex, and binary data that is hex in JSON and raw in postcard.
//! - [`duration`]: durations on the command line (`500ms`, `5m`, `90d`).
//! - [`histogram`]: a lock-free histogram of durations, read as Prometheus buckets.
//! - [`private_socket`]: binding a Unix socket only its owner may use (API, Docker plugin).

pub mod duration;
pub mod hash;
pub mod hex;
pub mod histogram;
pub mod private_socket;
