//! Installing meshd on a node: the systemd unit passes `systemd-analyze verify`, the example
//! configuration and CNI files parse, `meshctl completion` writes scripts the shells accept,
//! and the binaries are the workspace's. Nothing is installed on this machine and no service
//! is started: the unit is verified inside a temporary root.

use std::path::{Path, PathBuf};

use meshd_tests::binaries;
use meshd_tests::command::{describe_failure, try_run};

fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("dataplane/dist")
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("meshd-install-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_systemd_unit_verifies() {
    // A root with systemd's own units (the targets the unit names), the binaries where the
    // unit expects them, and the unit as an operator installs it.
    let root = TempDir::new("systemd");
    let r = &root.0;
    let units = r.join("units");
    let copy =
        try_run("cp", [std::ffi::OsStr::new("-r"), "/usr/lib/systemd/system".as_ref(), units.as_os_str()]);
    assert!(copy.status.success(), "{}", describe_failure("cp", &copy));
    std::fs::create_dir_all(r.join("usr/lib/systemd")).unwrap();
    std::fs::rename(r.join("units"), r.join("usr/lib/systemd/system")).unwrap();
    std::fs::create_dir_all(r.join("usr/local/bin")).unwrap();
    std::fs::create_dir_all(r.join("etc/systemd/system")).unwrap();
    for binary in [binaries::meshd(), binaries::meshctl(), binaries::meshd_cni()] {
        std::fs::copy(&binary, r.join("usr/local/bin").join(binary.file_name().unwrap())).unwrap();
    }
    std::fs::copy(dist().join("systemd/meshd.service"), r.join("etc/systemd/system/meshd.service")).unwrap();
    let root_flag = format!("--root={}", r.display());
    let verify = try_run("systemd-analyze", ["verify", root_flag.as_str(), "meshd.service"]);
    let said =
        format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
    assert!(
        verify.status.success() && said.trim().is_empty(),
        "{}",
        describe_failure("systemd-analyze verify", &verify)
    );

    let unit = std::fs::read_to_string(dist().join("systemd/meshd.service")).unwrap();
    for line in [
        "Restart=on-failure",
        "StateDirectory=meshd",
        "LoadCredential=join-token:",
        "ExecStart=/usr/local/bin/meshd --config /etc/meshd/meshd.toml",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "the unit has {line}");
    }
}

#[test]
fn the_example_files_parse() {
    // The example meshd.toml, with the commented join settings switched on.
    let text = std::fs::read_to_string(dist().join("meshd.toml")).unwrap();
    let mut argv: Vec<std::ffi::OsString> =
        vec!["meshd".into(), "--config".into(), dist().join("meshd.toml").into()];
    let args =
        meshd::daemon::config_file::with_config_file(argv.clone(), &clap_command(), &|_| None).unwrap();
    assert!(
        args.iter().any(|a| a == "--state-dir") && args.iter().any(|a| a == "/var/lib/meshd"),
        "{args:?}"
    );
    let switched = text
        .replace("# docker-plugin = true", "docker-plugin = true")
        .replace("# join = ", "join = ")
        .replace("# token-file = ", "token-file = ");
    let dir = TempDir::new("toml");
    std::fs::write(dir.0.join("meshd.toml"), switched).unwrap();
    argv[2] = dir.0.join("meshd.toml").into();
    let args = meshd::daemon::config_file::with_config_file(argv, &clap_command(), &|_| None).unwrap();
    assert!(args.iter().any(|a| a == "--docker-plugin"), "{args:?}");
    assert!(args.iter().any(|a| a == "/run/credentials/meshd.service/join-token"), "{args:?}");
    let parsed = <meshd::daemon::config::DaemonArgs as clap::Parser>::try_parse_from(&args);
    assert!(parsed.is_ok(), "{parsed:?}");

    // The example conflists: what a runtime would hand meshd-cni (plus name and version).
    for entry in std::fs::read_dir(dist().join("cni")).unwrap() {
        let path = entry.unwrap().path();
        let list: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            list["cniVersion"],
            "1.0.0",
            "{}: podman 4 and containerd 1.6 cannot read 1.1.0 results",
            path.display()
        );
        let mut plugin = list["plugins"][0].clone();
        assert_eq!(plugin["type"], "meshd-cni");
        plugin["name"] = list["name"].clone();
        plugin["cniVersion"] = list["cniVersion"].clone();
        meshd::cni::config::parse(plugin.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn completions_for_three_shells() {
    for shell in ["bash", "zsh", "fish"] {
        let out = try_run(binaries::meshctl().to_str().unwrap(), ["completion", shell]);
        assert!(out.status.success(), "{}", describe_failure("meshctl completion", &out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("meshctl") && script.contains("attach"), "{shell}: {script:.200}");
        if shell == "bash" {
            let dir = TempDir::new("completion");
            let path = dir.0.join("meshctl.bash");
            std::fs::write(&path, script.as_bytes()).unwrap();
            let check = try_run("bash", [std::ffi::OsStr::new("-n"), path.as_os_str()]);
            assert!(check.status.success(), "{}", describe_failure("bash -n", &check));
        }
    }
    let wrong = try_run(binaries::meshctl().to_str().unwrap(), ["completion", "tcsh"]);
    assert_eq!(wrong.status.code(), Some(2), "an unknown shell is a usage error");
}

fn clap_command() -> clap::Command {
    <meshd::daemon::config::DaemonArgs as clap::CommandFactory>::command()
}
