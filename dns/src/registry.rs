//! The names meshd answers, per network.
//!
//! | name | answer |
//! |---|---|
//! | `SVC` | the service's VIP (vip mode) or every healthy task address (dnsrr) |
//! | `tasks.SVC` | every healthy task address |
//! | `TASK` | that task's address |
//!
//! each also as `NAME.NETWORK` (unless the network is named like a public top-level domain:
//! `NAME.com` would be a public name). For a namespace, in this order:
//! 1. a name of one of its own networks is answered;
//! 2. a name that may be public (two labels or more, ending in a public TLD: [`crate::public`])
//!    is forwarded: no name of the cluster ever hides a public one from anyone;
//! 3. a name that is "ours" is NXDOMAIN, exactly like a name that does not exist, and never
//!    leaks upstream: one label, `tasks.X`, a name on any network of the cluster, or a name
//!    ending in a network's name (a private suffix, by 2);
//! 4. everything else is forwarded.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;

use crate::public::{is_public_tld, may_be_public};

#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// (network, lower-case name) -> addresses.
    names: HashMap<(String, String), BTreeSet<Ipv4Addr>>,
    /// (network, address) -> name for PTR.
    reverse: HashMap<(String, Ipv4Addr), String>,
    /// Every network of the cluster, lower case.
    networks: HashSet<String>,
    /// Every name of every network (task names may contain dots, like `web.1`).
    all_names: HashSet<String>,
}

/// What the registry says about a name for one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Ours, with these addresses.
    Found(Vec<Ipv4Addr>),
    /// Ours, and it does not exist (for this namespace): NXDOMAIN.
    NotFound,
    /// Not ours: ask upstream.
    Forward,
}

impl Registry {
    /// Declares a network (so `X.NETWORK` names are recognised as ours).
    pub fn add_network(&mut self, network: &str) {
        self.networks.insert(network.to_ascii_lowercase());
    }

    /// Adds `name` (and `name.network`) -> `address` on `network`. A name that may be public
    /// (`example.org`) is not added, nor is `name.network` when the network is named like a
    /// public top-level domain; `tasks.SVC` always is (Docker's name for a service's tasks).
    pub fn add(&mut self, network: &str, name: &str, address: Ipv4Addr) {
        let network = network.to_ascii_lowercase();
        let name = name.to_ascii_lowercase();
        if may_be_public(&name) && !name.starts_with("tasks.") {
            return;
        }
        self.networks.insert(network.clone());
        self.all_names.insert(name.clone());
        if !is_public_tld(&network) {
            let qualified = format!("{name}.{network}");
            self.all_names.insert(qualified.clone());
            self.names.entry((network.clone(), qualified)).or_default().insert(address);
        }
        self.names.entry((network, name)).or_default().insert(address);
    }

    /// The name PTR queries for `address` on `network` get (`name.network`, or `name` alone on a
    /// network named like a public top-level domain).
    pub fn add_reverse(&mut self, network: &str, address: Ipv4Addr, name: &str) {
        let network = network.to_ascii_lowercase();
        let name = name.to_ascii_lowercase();
        if may_be_public(&name) {
            return;
        }
        let target = if is_public_tld(&network) { name } else { format!("{name}.{network}") };
        self.reverse.insert((network, address), target);
    }

    pub fn networks(&self) -> impl Iterator<Item = &String> {
        self.networks.iter()
    }

    /// Every (network, lower-case name, addresses) that [`Registry::lookup`] finds, for the
    /// answers the fast path prepares ahead ([`crate::fast::answers`]).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, &BTreeSet<Ipv4Addr>)> {
        self.names.iter().map(|((network, name), addresses)| (network.as_str(), name.as_str(), addresses))
    }

    /// Looks `name` up for a namespace on `scope` (its networks).
    pub fn lookup(&self, scope: &[String], name: &str) -> Lookup {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return Lookup::Forward;
        }
        let mut found = BTreeSet::new();
        if self.all_names.contains(&name) || !name.contains('.') || name.starts_with("tasks.") {
            for network in scope {
                if let Some(addresses) = self.names.get(&(network.to_ascii_lowercase(), name.clone())) {
                    found.extend(addresses.iter().copied());
                }
            }
        }
        if !found.is_empty() {
            Lookup::Found(found.into_iter().collect())
        } else if may_be_public(&name) || !self.is_ours(&name) {
            Lookup::Forward
        } else {
            Lookup::NotFound
        }
    }

    /// The name of `address` for a namespace on `scope`, if it is a task or a VIP there.
    pub fn reverse(&self, scope: &[String], address: Ipv4Addr) -> Option<String> {
        scope.iter().find_map(|network| self.reverse.get(&(network.to_ascii_lowercase(), address)).cloned())
    }

    fn is_ours(&self, name: &str) -> bool {
        if self.all_names.contains(name) {
            return true;
        }
        let labels: Vec<&str> = name.split('.').collect();
        match labels.as_slice() {
            [_] => true,
            ["tasks", _] => true,
            [.., last] => self.networks.contains(*last),
            [] => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let mut r = Registry::default();
        r.add("front", "web", Ipv4Addr::new(10, 0, 0, 100));
        r.add("front", "tasks.web", Ipv4Addr::new(10, 0, 0, 2));
        r.add("front", "tasks.web", Ipv4Addr::new(10, 0, 0, 3));
        r.add("front", "web.1", Ipv4Addr::new(10, 0, 0, 2));
        r.add("back", "db", Ipv4Addr::new(10, 1, 0, 5));
        r.add_reverse("front", Ipv4Addr::new(10, 0, 0, 2), "web.1");
        r
    }

    fn scope(networks: &[&str]) -> Vec<String> {
        networks.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_resolve_within_scope_case_insensitively() {
        let r = registry();
        let front = scope(&["front"]);
        assert_eq!(r.lookup(&front, "web"), Lookup::Found(vec![Ipv4Addr::new(10, 0, 0, 100)]));
        assert_eq!(r.lookup(&front, "WEB.front."), Lookup::Found(vec![Ipv4Addr::new(10, 0, 0, 100)]));
        assert_eq!(
            r.lookup(&front, "tasks.web").clone(),
            Lookup::Found(vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)])
        );
        assert_eq!(r.lookup(&front, "web.1"), Lookup::Found(vec![Ipv4Addr::new(10, 0, 0, 2)]));
    }

    #[test]
    fn other_networks_look_like_nothing_and_never_leak_upstream() {
        let r = registry();
        let front = scope(&["front"]);
        assert_eq!(r.lookup(&front, "db"), Lookup::NotFound);
        assert_eq!(r.lookup(&front, "db.back"), Lookup::NotFound);
        assert_eq!(r.lookup(&front, "nothing"), Lookup::NotFound);
        assert_eq!(r.lookup(&front, "tasks.nothing"), Lookup::NotFound);
        assert_eq!(
            r.lookup(&scope(&["front", "back"]), "db"),
            Lookup::Found(vec![Ipv4Addr::new(10, 1, 0, 5)])
        );
    }

    #[test]
    fn everything_else_is_forwarded() {
        let r = registry();
        assert_eq!(r.lookup(&scope(&["front"]), "example.com"), Lookup::Forward);
        assert_eq!(r.lookup(&scope(&["front"]), "www.example.org."), Lookup::Forward);
    }

    #[test]
    fn no_cluster_name_hides_a_public_name() {
        let mut r = registry();
        // A network named like a TLD, with a service `example` and a task `www` on it; a task
        // named like a public domain on `front` (refused at attach; here as if merged anyway).
        r.add("com", "example", Ipv4Addr::new(10, 2, 0, 100));
        r.add("com", "www", Ipv4Addr::new(10, 2, 0, 2));
        r.add("front", "example.org", Ipv4Addr::new(10, 0, 0, 9));
        r.add_reverse("com", Ipv4Addr::new(10, 2, 0, 2), "www");
        for networks in [&["com"][..], &["front"], &["back"]] {
            for name in ["example.com", "www.com", "anything.com", "example.org", "www.example.org"] {
                assert_eq!(r.lookup(&scope(networks), name), Lookup::Forward, "{name} from {networks:?}");
            }
        }
        // The names themselves still work on their network, without the public-looking form.
        assert_eq!(r.lookup(&scope(&["com"]), "example"), Lookup::Found(vec![Ipv4Addr::new(10, 2, 0, 100)]));
        assert_eq!(r.lookup(&scope(&["front"]), "example"), Lookup::NotFound);
        assert_eq!(r.reverse(&scope(&["com"]), Ipv4Addr::new(10, 2, 0, 2)).as_deref(), Some("www"));
        // A private suffix stays private: never forwarded, in scope or not.
        assert_eq!(r.lookup(&scope(&["back"]), "nothing.front"), Lookup::NotFound);
    }

    #[test]
    fn reverse_names_are_scoped() {
        let r = registry();
        assert_eq!(r.reverse(&scope(&["front"]), Ipv4Addr::new(10, 0, 0, 2)).as_deref(), Some("web.1.front"));
        assert_eq!(r.reverse(&scope(&["back"]), Ipv4Addr::new(10, 0, 0, 2)), None);
    }
}
