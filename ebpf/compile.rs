//! Compiles every `ebpf/*.bpf.c` into a BTF-carrying object with clang.
//!
//! Shared by this crate's build script (objects into `OUT_DIR`, embedded into the agent) and by
//! `cargo xtask build-ebpf` (objects into `target/bpf/`), so both build exactly the same way.
//! Kept free of dependencies: a build script should not need any.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The apt packages that provide what this module needs; named in every "not found" error.
pub const APT_PACKAGES: &str = "clang-19 llvm-19 libbpf-dev";

/// Clang binaries tried in order when `$CLANG` is not set.
const CLANG_CANDIDATES: &[&str] = &["clang-19", "clang"];

/// Finds clang: `$CLANG` if set, else the first candidate on `PATH` that runs.
pub fn find_clang() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("CLANG") {
        return Ok(PathBuf::from(path));
    }
    CLANG_CANDIDATES
        .iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|out| out.status.success())
        })
        .map(PathBuf::from)
        .ok_or_else(|| {
            format!("clang not found (tried $CLANG, clang-19, clang): install it with `apt-get install {APT_PACKAGES}`")
        })
}

/// The `.bpf.c` sources directly inside `src_dir`, sorted so builds are reproducible.
pub fn sources(src_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(src_dir)
        .map_err(|e| format!("cannot read eBPF sources in {}: {e}", src_dir.display()))?;
    let mut sources: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.to_str().is_some_and(|p| p.ends_with(".bpf.c")))
        .collect();
    sources.sort();
    Ok(sources)
}

/// The object file name for a source: `veth.bpf.c` -> `veth.bpf.o`.
pub fn object_name(source: &Path) -> String {
    let file = source.file_name().and_then(|f| f.to_str()).unwrap_or("unknown.bpf.c");
    format!("{}.o", file.trim_end_matches(".c"))
}

/// Debian keeps `asm/types.h` (pulled in by `linux/types.h`) under a multiarch directory that
/// clang does not search when targeting bpf.
fn multiarch_include(target_arch: &str) -> Option<String> {
    let triple = match target_arch {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        _ => return None,
    };
    Some(format!("/usr/include/{triple}"))
}

/// Compiles every source in `src_dir` into `out_dir`; returns the objects written.
pub fn compile_all(src_dir: &Path, out_dir: &Path, target_arch: &str) -> Result<Vec<PathBuf>, String> {
    compile_with(src_dir, out_dir, target_arch, &[])
}

/// Compiles the test build of every source into `out_dir`: the same code with `-DMD_TEST`, which
/// adds the hooks of `include/lib/test_hooks.h` (recorded redirects, a tunnel key and a route
/// lookup the packet tests choose). Only the packet tests load these objects.
#[allow(dead_code)] // The build script's; `cargo xtask build-ebpf` builds the real objects only.
pub fn compile_test_objects(
    src_dir: &Path,
    out_dir: &Path,
    target_arch: &str,
) -> Result<Vec<PathBuf>, String> {
    compile_with(src_dir, out_dir, target_arch, &["-DMD_TEST"])
}

/// Compiles every source in `src_dir` into `out_dir` with the extra clang `flags`.
///
/// `-g` is what makes clang emit BTF, which the BTF-defined maps and the loader rely on.
fn compile_with(
    src_dir: &Path,
    out_dir: &Path,
    target_arch: &str,
    flags: &[&str],
) -> Result<Vec<PathBuf>, String> {
    let clang = find_clang()?;
    std::fs::create_dir_all(out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let include = src_dir.join("include");
    if !Path::new("/usr/include/bpf/bpf_helpers.h").exists() && std::env::var_os("CLANG").is_none() {
        return Err(format!("bpf/bpf_helpers.h not found: install it with `apt-get install {APT_PACKAGES}`"));
    }
    let mut objects = Vec::new();
    for source in sources(src_dir)? {
        let object = out_dir.join(object_name(&source));
        let mut cmd = Command::new(&clang);
        cmd.args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            .arg(format!("-D__TARGET_ARCH_{}", bpf_arch(target_arch)))
            .args(flags)
            .arg("-I")
            .arg(&include);
        if let Some(dir) = multiarch_include(target_arch) {
            cmd.arg("-idirafter").arg(dir);
        }
        cmd.arg("-c").arg(&source).arg("-o").arg(&object);
        let output = cmd.output().map_err(|e| format!("cannot run {}: {e}", clang.display()))?;
        if !output.status.success() {
            return Err(format!(
                "clang failed on {}:\n{}",
                source.display(),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        objects.push(object);
    }
    Ok(objects)
}

/// libbpf's name for the architecture, used by its tracing macros.
fn bpf_arch(target_arch: &str) -> &str {
    match target_arch {
        "x86_64" => "x86",
        "aarch64" => "arm64",
        other => other,
    }
}
