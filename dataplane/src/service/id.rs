//! A service's id in the maps (its key in md_maglev_v3): the same on every node and across
//! restarts, because it is a hash of the service's name.

use crate::util::hash::fnv1a_32;

pub fn service_id(name: &str) -> u32 {
    fnv1a_32(name.bytes())
}

/// The id of the Maglev table of service `name`'s tasks on this node, which its mode=host
/// ports pick from (md_frontends_v2 `table`). A hash of a string no service name can be (a
/// name has no '/'), so it collides with a service's id only as two names' hashes would.
pub fn local_table_id(name: &str) -> u32 {
    fnv1a_32(b"host/".iter().copied().chain(name.bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_differ_by_name() {
        assert_eq!(service_id("web"), service_id("web"));
        assert_ne!(service_id("web"), service_id("api"));
        assert_ne!(local_table_id("web"), service_id("web"));
        assert_eq!(local_table_id("web"), service_id("host/web"));
        // Pinned: a changed hash would make every node rewrite every table after an upgrade.
        assert_eq!(service_id(""), 0x811c_9dc5);
    }
}
