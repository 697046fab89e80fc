//! Which names may be public DNS names: any name of two labels or more whose last label is a
//! public top-level domain. meshd never answers such a name unless it is one of the asking
//! namespace's own names, and never refuses one (NXDOMAIN): it forwards it, so no network,
//! service or task name can hide a public name from anyone.
//!
//! The list (`tlds.txt`): the ICANN section of the Public Suffix List (top-level labels, IDNs in
//! their `xn--` form) and the special-use names resolvers treat specially (`local`, `localhost`,
//! `test`, `invalid`, `example`, `onion`, `internal`, `alt`). `scripts/update-tlds.sh`
//! regenerates it from Debian's `publicsuffix` package; a TLD delegated after that is not known
//! until then.

use std::collections::HashSet;
use std::sync::OnceLock;

const TLDS: &str = include_str!("tlds.txt");

fn tlds() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| TLDS.lines().map(str::trim).filter(|l| !l.is_empty()).collect())
}

/// Whether `label` (any case) is a public top-level domain or a special-use name.
pub fn is_public_tld(label: &str) -> bool {
    let lower = label.trim_end_matches('.').to_ascii_lowercase();
    tlds().contains(lower.as_str())
}

/// Whether `name` (any case, trailing dot or not) has two labels or more and ends in a public
/// top-level domain: it may exist in public DNS.
pub fn may_be_public(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    match name.rsplit_once('.') {
        Some((_, last)) => is_public_tld(last),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_tlds_and_special_use_names() {
        for tld in ["com", "ORG", "uk", "app", "arpa", "xn--p1ai", "local", "localhost", "internal"] {
            assert!(is_public_tld(tld), "{tld}");
        }
        for not in ["front", "back", "1", "web-1", "", "tasks"] {
            assert!(!is_public_tld(not), "{not}");
        }
        assert!(may_be_public("example.com."));
        assert!(may_be_public("www.Example.ORG"));
        assert!(!may_be_public("com"), "one label: never public");
        assert!(!may_be_public("web.1"));
        assert!(!may_be_public("web.front"));
    }
}
