//! The `CNI_*` environment of one invocation, validated as the spec's section 2 says: which
//! variables each command needs, and what a container ID and an interface name may be.

use super::error::{code, CniError};
use crate::network::ifname;

/// Longest CNI_CONTAINERID, CNI_NETNS and CNI_ARGS accepted (runtimes use far less: a
/// container ID is 64 characters).
pub const MAX_VALUE_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

/// One invocation's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub command: Command,
    /// Present for ADD, CHECK and DEL.
    pub container_id: Option<String>,
    /// The namespace path; may be empty on DEL (ctr sends none after the task exited).
    pub netns: Option<String>,
    pub ifname: Option<String>,
    /// `CNI_ARGS` as given (parsed by [`super::args`]).
    pub args: String,
}

/// Reads the environment through `var` (the process environment, or a test's map).
pub fn read(var: &dyn Fn(&str) -> Option<String>) -> Result<Invocation, CniError> {
    let value = |name: &str| -> Result<Option<String>, CniError> {
        match var(name) {
            Some(v) if v.len() > MAX_VALUE_LEN => {
                Err(invalid(name, &format!("longer than {MAX_VALUE_LEN} bytes")))
            }
            other => Ok(other.filter(|v| !v.is_empty())),
        }
    };
    let command = match value("CNI_COMMAND")?.as_deref() {
        Some("ADD") => Command::Add,
        Some("DEL") => Command::Del,
        Some("CHECK") => Command::Check,
        Some("STATUS") => Command::Status,
        Some("GC") => Command::Gc,
        Some("VERSION") => Command::Version,
        Some(other) => {
            let shown: String = other.chars().take(20).collect();
            return Err(invalid(
                "CNI_COMMAND",
                &format!("{shown:?} is not ADD, DEL, CHECK, STATUS, GC or VERSION"),
            ));
        }
        None => {
            return Err(invalid("CNI_COMMAND", "missing (this is a CNI plugin: a container runtime runs it)"))
        }
    };
    let mut invocation = Invocation {
        command,
        container_id: None,
        netns: None,
        ifname: None,
        args: value("CNI_ARGS")?.unwrap_or_default(),
    };
    if !matches!(command, Command::Add | Command::Del | Command::Check) {
        return Ok(invocation);
    }
    let container_id = value("CNI_CONTAINERID")?.ok_or_else(|| invalid("CNI_CONTAINERID", "missing"))?;
    if !valid_container_id(&container_id) {
        let shown: String = container_id.chars().take(80).collect();
        return Err(invalid(
            "CNI_CONTAINERID",
            &format!("{shown:?} must start with a letter or digit, then letters, digits, '_', '.' or '-'"),
        ));
    }
    let ifname = value("CNI_IFNAME")?.ok_or_else(|| invalid("CNI_IFNAME", "missing"))?;
    ifname::validate(&ifname).map_err(|why| invalid("CNI_IFNAME", &why))?;
    let netns = value("CNI_NETNS")?;
    match (&netns, command) {
        (None, Command::Add | Command::Check) => return Err(invalid("CNI_NETNS", "missing")),
        (Some(path), _) if !path.starts_with('/') => {
            let shown: String = path.chars().take(80).collect();
            return Err(invalid("CNI_NETNS", &format!("{shown:?} is not an absolute path")));
        }
        _ => {}
    }
    invocation.container_id = Some(container_id);
    invocation.ifname = Some(ifname);
    invocation.netns = netns;
    Ok(invocation)
}

/// The spec: alphanumeric first, then alphanumerics, `_`, `.` or `-`.
fn valid_container_id(id: &str) -> bool {
    id.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn invalid(variable: &str, why: &str) -> CniError {
    CniError::new(code::INVALID_ENV, format!("invalid {variable}"), format!("{variable}: {why}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read_from(pairs: &[(&str, &str)]) -> Result<Invocation, CniError> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        read(&|name| map.get(name).cloned())
    }

    #[test]
    fn each_command_needs_its_variables() {
        let add = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
        ];
        let ok = read_from(&add).unwrap();
        assert_eq!((ok.command, ok.ifname.as_deref()), (Command::Add, Some("eth0")));
        let err = read_from(&add[..3]).unwrap_err();
        assert_eq!(err.code, code::INVALID_ENV);
        assert!(err.to_string().contains("CNI_IFNAME"), "{err}");
        // DEL without a namespace (ctr after the task exited) is fine; ADD is not.
        let del = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "default-c1"),
            ("CNI_NETNS", ""),
            ("CNI_IFNAME", "eth0"),
        ];
        assert_eq!(read_from(&del).unwrap().netns, None);
        let err = read_from(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "a"), ("CNI_IFNAME", "eth0")])
            .unwrap_err();
        assert!(err.to_string().contains("CNI_NETNS"), "{err}");
        // VERSION and STATUS need nothing else; podman sends dummies.
        assert_eq!(
            read_from(&[("CNI_COMMAND", "VERSION"), ("CNI_NETNS", "dummy")]).unwrap().command,
            Command::Version
        );
        assert_eq!(read_from(&[("CNI_COMMAND", "STATUS")]).unwrap().command, Command::Status);
    }

    #[test]
    fn bad_values_are_named() {
        for (pairs, variable) in [
            (vec![], "CNI_COMMAND"),
            (vec![("CNI_COMMAND", "LAUNCH")], "CNI_COMMAND"),
            (
                vec![("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "-x"), ("CNI_IFNAME", "eth0")],
                "CNI_CONTAINERID",
            ),
            (
                vec![("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "a/b"), ("CNI_IFNAME", "eth0")],
                "CNI_CONTAINERID",
            ),
            (
                vec![("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "a"), ("CNI_IFNAME", "much-too-long-name")],
                "CNI_IFNAME",
            ),
            (
                vec![
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", "a"),
                    ("CNI_IFNAME", "eth0"),
                    ("CNI_NETNS", "x"),
                ],
                "CNI_NETNS",
            ),
        ] {
            let err = read_from(&pairs).unwrap_err();
            assert_eq!(err.code, code::INVALID_ENV);
            assert!(err.to_string().contains(variable), "{pairs:?}: {err}");
        }
        let long = "a".repeat(MAX_VALUE_LEN + 1);
        let err = read_from(&[("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", &long), ("CNI_IFNAME", "eth0")])
            .unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
    }
}
