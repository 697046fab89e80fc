//! How many cases a property test runs. The test command keeps each property's own short default
//! (a few thousand cases at most, so that CI keeps its time); `cargo xtask fuzz` sets
//! `PROPTEST_CASES` to run the same properties a million times. An explicit `cases` in a
//! `ProptestConfig` would override that variable, so the properties ask here instead.
//!
//! Shared by path (`#[path = ...] mod depth;`) with the property tests of the other crates, which
//! cannot depend on this harness.

/// `PROPTEST_CASES` when set to a number, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}
