//! The fuzz targets: one function per place where meshd receives bytes from outside the process,
//! each calling meshd's own handling of them (not only the decoder crate it uses). A target
//! panics on a finding: a panic inside meshd, or, for the differential DNS target, a fast answer
//! that is not the slow path's.
//!
//! `src/main.rs` runs one of them under AFL (`meshd-fuzz TARGET`), writes the seed corpora built
//! with meshd's own types (`meshd-fuzz seeds DIR`) and replays files (`meshd-fuzz replay TARGET
//! FILE...`), which is how a crash becomes a regression seed under `regressions/`.

pub mod dns;
pub mod runtimes;
pub mod seeds;
pub mod universe;
pub mod wire;

/// Every target, by the name `cargo xtask fuzz --target` takes.
pub const TARGETS: [(&str, fn(&[u8])); 8] = [
    ("gossip_udp", wire::gossip_udp),
    ("gossip_tcp", wire::gossip_tcp),
    ("raft", wire::raft),
    ("dns_fast", dns::fast_against_slow),
    ("api", runtimes::api),
    ("cni", runtimes::cni),
    ("docker", runtimes::docker),
    ("config", runtimes::config),
];

pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}
