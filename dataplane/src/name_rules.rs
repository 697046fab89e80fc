//! The rules for the names DNS answers: network, service and task names, checked when they are
//! created or attached, when a record merged from another node is used (discovery skips what
//! fails here), and by whoever else needs them (the state's merge rules). Pure functions.
//!
//! - A network name is one DNS label: `NAME.NETWORK` must be two labels. A network may be named
//!   like a public top-level domain (`com`): it then gets no `NAME.NETWORK` names, which would
//!   be public names (see `meshd_dns::public`).
//! - A service name is one DNS label.
//! - A task name is one or more DNS labels (`web.1`, as Swarm names tasks), at most 253
//!   characters; a dotted one may not end in a public top-level domain (`example.org` would
//!   hide that name) nor start with `tasks.` (the name of a service's tasks).
//!
//! A label: 1 to 63 letters, digits, `-` or `_`, starting with a letter or digit and not
//! ending with `-`.

use std::fmt;

use meshd_dns::public::is_public_tld;
use serde::{Deserialize, Serialize};

/// What a name names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Network,
    Service,
    Task,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Network => "network",
            NameKind::Service => "service",
            NameKind::Task => "task",
        })
    }
}

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {name:?}: {reason}")]
pub struct NameError {
    pub kind: NameKind,
    /// The name as given (cut to 80 characters).
    pub name: String,
    pub reason: &'static str,
}

const LABEL_RULE: &str =
    "use 1 to 63 letters, digits, '_' or '-', starting with a letter or digit and not ending with '-'";

/// Checks `name` as a name of `kind`.
pub fn check(kind: NameKind, name: &str) -> Result<(), NameError> {
    let refuse = |reason| Err(NameError { kind, name: name.chars().take(80).collect(), reason });
    match kind {
        NameKind::Network | NameKind::Service => {
            if !is_label(name) {
                return refuse(LABEL_RULE);
            }
        }
        NameKind::Task => {
            if name.len() > 253 || !name.split('.').all(is_label) {
                return refuse("use DNS labels separated by dots (each 1 to 63 letters, digits, '_' or '-', starting with a letter or digit and not ending with '-'), at most 253 characters");
            }
            if let (Some((first, _)), Some((_, last))) = (name.split_once('.'), name.rsplit_once('.')) {
                if first.eq_ignore_ascii_case("tasks") {
                    return refuse("'tasks.' names a service's tasks");
                }
                if is_public_tld(last) {
                    return refuse("it ends in a public top-level domain, so it would hide a public name");
                }
            }
        }
    }
    Ok(())
}

/// A name of one kind, checked where it enters (the API's decoding, meshctl's arguments): a value
/// of this type passed [`check`], so a request that names something new carries no unchecked
/// string past the API. Names that only refer to something (`network rm NAME`) stay strings:
/// looking them up is their check.
macro_rules! checked_name {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(name: String) -> Result<Self, NameError> {
                check($kind, &name)?;
                Ok(Self(name))
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(name: &str) -> Result<Self, NameError> {
                Self::try_from(name.to_string())
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_name!(
    /// A new network's name (`network create`).
    NetworkName,
    NameKind::Network
);
checked_name!(
    /// A new service's name (`service create`).
    ServiceName,
    NameKind::Service
);
checked_name!(
    /// A task's name or alias (`attach --name`, `--alias`).
    TaskName,
    NameKind::Task
);

/// Whether `label` is one DNS label as meshd allows it.
pub fn is_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1] != b'-'
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_services_are_one_label() {
        for kind in [NameKind::Network, NameKind::Service] {
            for ok in ["front", "back-end", "web_1", "a", "com", &"x".repeat(63)] {
                assert_eq!(check(kind, ok), Ok(()), "{ok}");
            }
            for bad in ["", "-x", "x-", "a b", "front.v2", "x.com", "é", &"x".repeat(64)] {
                assert!(check(kind, bad).is_err(), "{bad}");
            }
        }
        let err = check(NameKind::Network, "bad name").unwrap_err();
        assert!(err.to_string().starts_with("invalid network name \"bad name\": use 1 to 63"), "{err}");
    }

    #[test]
    fn task_names_are_labels_that_hide_no_public_name() {
        for ok in ["web.1", "web.1.ks8ny5yy", "db", "api.2.x-y"] {
            assert_eq!(check(NameKind::Task, ok), Ok(()), "{ok}");
        }
        for bad in ["example.org", "www.example.COM", "web..1", ".web", "web.", "tasks.web", "x.local"] {
            assert!(check(NameKind::Task, bad).is_err(), "{bad}");
        }
        let err = check(NameKind::Task, "example.org").unwrap_err();
        assert!(err.to_string().contains("public top-level domain"), "{err}");
        assert!(check(NameKind::Task, &"a.".repeat(127)).is_err(), "longer than 253");
    }
}
