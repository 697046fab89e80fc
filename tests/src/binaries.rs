//! Where the `meshd` and `meshctl` binaries under test are.
//!
//! `$MESHD_BIN_DIR` if set; otherwise the cargo target directory this test binary was built in
//! (`target/<profile>/deps/<test>` -> `target/<profile>/`). The README's test command builds the
//! binaries before running the tests.

use std::path::PathBuf;

pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MESHD_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("test binary has a directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} not found: build the binaries first (`cargo build --bins`) or set MESHD_BIN_DIR",
        path.display()
    );
    path
}

pub fn meshd() -> PathBuf {
    binary("meshd")
}

pub fn meshctl() -> PathBuf {
    binary("meshctl")
}

pub fn meshd_cni() -> PathBuf {
    binary("meshd-cni")
}
