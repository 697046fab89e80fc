//! `/etc/meshd/meshd.toml`: meshd's flags written as a file, for a node whose command line would
//! otherwise be long (and for systemd units that should not change per node).
//!
//! Every key is a flag's long name without the dashes (`advertise-addr = "10.0.0.1"`,
//! `docker-plugin = true`, `gossip-probe-interval = "500ms"`), so the file needs no schema of
//! its own and `meshd --help` documents it. It becomes command-line arguments placed before
//! the real ones, and clap lets the last occurrence win: flags override the file, and so do
//! environment variables (a key whose flag's variable is set is left out). The file is checked
//! like flags are: an unknown key or a value of the wrong kind is an error naming the file and
//! the key, before anything starts.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::ArgAction;

/// Read when it exists; `--config PATH` names another (which must exist).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/meshd/meshd.toml";
/// Largest configuration file read.
const MAX_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigFileError {
    #[error("cannot read the configuration file {path}: {error}")]
    Read { path: PathBuf, error: String },
    #[error("{path}: {error}")]
    Syntax { path: PathBuf, error: String },
    #[error("{path}: unknown key {key:?} (keys are meshd's flags without the dashes; see meshd --help)")]
    UnknownKey { path: PathBuf, key: String },
    #[error("{path}: key {key:?}: {why}")]
    Value { path: PathBuf, key: String, why: String },
}

/// `argv` with the configuration file's settings inserted after the program name. The file is
/// `--config PATH` if given, else [`DEFAULT_CONFIG_FILE`] if it exists, else none.
pub fn with_config_file(
    argv: Vec<OsString>,
    command: &clap::Command,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Vec<OsString>, ConfigFileError> {
    let (path, required) = match config_flag(&argv) {
        Some(path) => (path, true),
        None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
    };
    let text = match read_bounded(&path) {
        Ok(text) => text,
        Err(error) if !required && error.kind() == std::io::ErrorKind::NotFound => return Ok(argv),
        Err(error) => return Err(ConfigFileError::Read { path, error: error.to_string() }),
    };
    let from_file = file_args(&path, &text, command, env)?;
    let mut out = Vec::with_capacity(argv.len() + from_file.len());
    let mut rest = argv.into_iter();
    out.extend(rest.next());
    out.extend(from_file);
    out.extend(rest);
    Ok(out)
}

/// The arguments a file's text stands for.
pub fn file_args(
    path: &Path,
    text: &str,
    command: &clap::Command,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Vec<OsString>, ConfigFileError> {
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| ConfigFileError::Syntax { path: path.to_path_buf(), error: e.to_string() })?;
    let mut out = Vec::new();
    for (key, value) in &table {
        let unknown = || ConfigFileError::UnknownKey { path: path.to_path_buf(), key: key.clone() };
        if matches!(key.as_str(), "config" | "help" | "version") {
            return Err(unknown());
        }
        let arg = command.get_arguments().find(|a| a.get_long() == Some(key.as_str())).ok_or_else(unknown)?;
        if arg.get_env().and_then(|name| env(&name.to_string_lossy())).is_some() {
            continue;
        }
        let bad = |why: &str| ConfigFileError::Value {
            path: path.to_path_buf(),
            key: key.clone(),
            why: why.to_string(),
        };
        let flag = format!("--{key}");
        let is_switch = matches!(arg.get_action(), ArgAction::SetTrue);
        match value {
            toml::Value::Boolean(on) if is_switch => {
                if *on {
                    out.push(flag.into());
                }
            }
            _ if is_switch => return Err(bad("must be true or false")),
            toml::Value::Array(items) => {
                if !matches!(arg.get_action(), ArgAction::Append) {
                    return Err(bad("takes one value, not a list"));
                }
                for item in items {
                    out.push(flag.clone().into());
                    out.push(
                        scalar(item).ok_or_else(|| bad("list items must be strings or numbers"))?.into(),
                    );
                }
            }
            other => {
                out.push(flag.into());
                out.push(scalar(other).ok_or_else(|| bad("must be a string or a number"))?.into());
            }
        }
    }
    Ok(out)
}

fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `--config PATH` or `--config=PATH` on the command line.
fn config_flag(argv: &[OsString]) -> Option<PathBuf> {
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            return None;
        }
        if text == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    None
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?.take(MAX_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_BYTES {
        return Err(std::io::Error::other(format!("larger than {MAX_BYTES} bytes")));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::daemon::config::{Config, DaemonArgs};

    fn load(file: &str, cli: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        let dir =
            std::env::temp_dir().join(format!("meshd-conf-{}-{}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("meshd.toml");
        std::fs::write(&path, file).unwrap();
        let mut argv: Vec<OsString> = vec!["meshd".into(), "--config".into(), path.clone().into()];
        argv.extend(cli.iter().map(OsString::from));
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| OsString::from(v));
        let result = with_config_file(argv, &DaemonArgs::command(), &lookup).map_err(|e| e.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        let args = DaemonArgs::try_parse_from(result?).map_err(|e| e.to_string())?;
        Config::from_args(args).map_err(|e| e.to_string())
    }

    const FILE: &str = r#"
        state-dir = "/var/lib/meshd"
        advertise-addr = "10.1.0.1"
        node-name = "from-file"
        listen-port = 7947
        docker-plugin = true
        gossip-probe-interval = "1s"
    "#;

    #[test]
    fn the_file_stands_in_for_flags_and_flags_win() {
        let config = load(FILE, &[], &[]).unwrap();
        assert_eq!((config.node_name.as_str(), config.listen_port), ("from-file", 7947));
        assert!(config.docker.is_some());
        assert_eq!(config.gossip.probe_interval, std::time::Duration::from_secs(1));
        let config = load(FILE, &["--node-name", "from-flag", "--listen-port", "7000"], &[]).unwrap();
        assert_eq!((config.node_name.as_str(), config.listen_port), ("from-flag", 7000));
        // The environment beats the file too: with MESHD_SOCKET (--socket's variable) set, the
        // file's socket is left out and clap takes the variable.
        let with_socket = format!("{FILE}\nsocket = \"/run/from-file.sock\"\n");
        let config = load(&with_socket, &[], &[]).unwrap();
        assert_eq!(config.socket, PathBuf::from("/run/from-file.sock"));
        let args = file_args(Path::new("f"), &with_socket, &DaemonArgs::command(), &|name| {
            (name == "MESHD_SOCKET").then(|| OsString::from("/run/from-env.sock"))
        })
        .unwrap();
        assert!(!args.contains(&OsString::from("--socket")), "{args:?}");
    }

    #[test]
    fn mistakes_name_the_file_and_key() {
        for (file, needle) in [
            ("advertise-adr = \"10.1.0.1\"", "unknown key \"advertise-adr\""),
            ("docker-plugin = \"yes\"", "must be true or false"),
            ("listen-port = [1, 2]", "one value"),
            ("listen-port = 1.5", "string or a number"),
            ("config = \"/etc/other.toml\"", "unknown key \"config\""),
            ("state-dir = ", "meshd.toml"),
        ] {
            let err = load(file, &["--state-dir", "/x", "--advertise-addr", "10.1.0.1"], &[]).unwrap_err();
            assert!(err.contains(needle) && err.contains("meshd.toml"), "{file}: {err}");
        }
        let err = load("listen-port = 70000", &["--state-dir", "/x", "--advertise-addr", "10.1.0.1"], &[])
            .unwrap_err();
        assert!(err.contains("--listen-port"), "{err}");
        let missing = with_config_file(
            vec!["meshd".into(), "--config".into(), "/nonexistent/meshd.toml".into()],
            &DaemonArgs::command(),
            &|_| None,
        );
        assert!(matches!(missing, Err(ConfigFileError::Read { .. })));
    }
}
