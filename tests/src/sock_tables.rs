//! The socket programs' tables of a node as the kernel holds them (bpftool): `md_sock_rnat_v3`
//! is a hash of maps, one LRU table per network namespace.

use std::path::Path;

use crate::command::run;

/// The number of entries in each socket table of the node whose pin directory is `pin_dir`.
pub fn sizes(pin_dir: &Path) -> Vec<usize> {
    let outer = pin_dir.join(meshd_ebpf::mesh::SOCK_RNAT_MAP);
    dump(&["pinned", outer.to_str().expect("a UTF-8 path")])
        .iter()
        .map(|entry| {
            let id = inner_map_id(entry).unwrap_or_else(|| panic!("an inner map: {entry}"));
            dump(&["id", &id.to_string()]).len()
        })
        .collect()
}

/// `bpftool -j map dump ARGS...`, as JSON entries.
fn dump(args: &[&str]) -> Vec<serde_json::Value> {
    let out = run("bpftool", ["-j", "map", "dump"].iter().chain(args));
    let entries: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bpftool's JSON");
    entries.as_array().cloned().unwrap_or_default()
}

/// The inner map's id of a hash-of-maps entry: its value, a u32 in the machine's byte order,
/// which bpftool prints as hex bytes.
fn inner_map_id(entry: &serde_json::Value) -> Option<u32> {
    let bytes: Vec<u8> = entry["value"]
        .as_array()?
        .iter()
        .map(|b| b.as_str().and_then(|s| u8::from_str_radix(s.trim_start_matches("0x"), 16).ok()))
        .collect::<Option<_>>()?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}
