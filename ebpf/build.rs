//! Builds the C eBPF programs into OUT_DIR so `src/lib.rs` can embed them, and their test build
//! (with the hooks of `include/lib/test_hooks.h`) into OUT_DIR/test for the packet tests.

#[path = "compile.rs"]
mod compile;

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());

    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rerun-if-changed=compile.rs");
    println!("cargo:rerun-if-changed=include");
    for source in compile::sources(&manifest).unwrap_or_default() {
        println!("cargo:rerun-if-changed={}", source.display());
    }

    if let Err(message) = compile::compile_all(&manifest, &out_dir, &arch) {
        // One clear line first; clang's own output (if any) follows it.
        eprintln!("error: building the eBPF programs failed: {message}");
        std::process::exit(1);
    }
    // The packet tests' objects (tests/packets): the same sources with the test hooks.
    if let Err(message) = compile::compile_test_objects(&manifest, &out_dir.join("test"), &arch) {
        eprintln!("error: building the test build of the eBPF programs failed: {message}");
        std::process::exit(1);
    }
}
