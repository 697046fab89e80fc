//! Unique, short names for everything a test creates.
//!
//! Namespace names are `mt<pid>x<n>-<tag>` (pid and n in hex): unique per process and per test,
//! short enough to read in `ip netns list`, and all starting with `mt` so a sweep can find
//! leftovers, and tell from the pid whether the run that made them is still going (several runs
//! may share the machine).

use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Common prefix of everything the harness creates.
pub const SWEEP_PREFIX: &str = "mt";

/// A fresh prefix for one test (or one demo run).
pub fn unique_prefix(tag: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tag: String = tag.chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect();
    format!("{SWEEP_PREFIX}{:x}x{n:x}-{tag}", std::process::id())
}
