//! `cargo xtask`: project tasks that are not a plain cargo build.
//!
//! - `build-ebpf`: compile every `ebpf/*.bpf.c` into `target/bpf/*.bpf.o` (with BTF), exactly as
//!   the `meshd-ebpf` build script does for the objects embedded in meshd.
//! - `bench <suite>...`: build everything in release mode and run the benchmark suites
//!   (`tests/src/bin/bench/`), which print their figures as Markdown tables. Needs root.
//! - `fuzz`: the property tests at depth, then the AFL targets of `tests/fuzz` (see `fuzz.rs`).

#[path = "../../ebpf/compile.rs"]
mod compile;
mod fuzz;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const TASKS: &str = "usage: cargo xtask <task>

tasks:
  build-ebpf              compile ebpf/*.bpf.c into target/bpf/ (clang-19 -O2 -g -target bpf)
  bench [--quick] SUITE   release build, then run a benchmark suite (gossip, gossip-sim, overlay,
                          mesh, lb-scale, dns, managers, runtimes, events, map-walk, scale,
                          soak); root
";

fn usage() -> String {
    format!("{TASKS}{}", fuzz::USAGE)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build-ebpf") => build_ebpf(),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{}", usage());
            Ok(())
        }
        Some(other) => Err(format!("unknown task {other:?}\n\n{}", usage())),
        None => Err(usage()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

fn build_ebpf() -> Result<(), String> {
    let src = workspace_root().join("ebpf");
    let out = target_dir().join("bpf");
    let objects = compile::compile_all(&src, &out, std::env::consts::ARCH)?;
    for object in &objects {
        let bytes = std::fs::read(object).map_err(|e| format!("cannot read {}: {e}", object.display()))?;
        // The section name table holds ".BTF" when clang emitted type information (-g).
        if !bytes.windows(5).any(|w| w == b".BTF\0") {
            return Err(format!("{} has no BTF section", object.display()));
        }
        println!("{} ({} bytes, BTF)", object.display(), bytes.len());
    }
    Ok(())
}

fn bench(args: &[String]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(&cargo)
        .args(["build", "--release", "--workspace", "--bins", "--locked"])
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("the release build failed".into());
    }
    let bench = target_dir().join("release").join("bench");
    let status = std::process::Command::new(&bench)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", bench.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the benchmark failed ({status})"))
    }
}
