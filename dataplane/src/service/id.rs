//! A service's id in the maps (its key in md_maglev_v3): the same on every node and across
//! restarts, because it is a hash of the service's name.

use crate::util::hash::fnv1a_32;

pub fn service_id(name: &str) -> u32 {
    fnv1a_32(name.bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_differ_by_name() {
        assert_eq!(service_id("web"), service_id("web"));
        assert_ne!(service_id("web"), service_id("api"));
        // Pinned: a changed hash would make every node rewrite every table after an upgrade.
        assert_eq!(service_id(""), 0x811c_9dc5);
    }
}
