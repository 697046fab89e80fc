//! Pins an older build left behind. A map whose layout changes gets a new versioned name
//! (`md_ifaces_v1` -> `md_ifaces_v2`), so a new build never reuses a pin of the wrong shape;
//! the old pin would otherwise stay in bpffs, holding its kernel memory, until the node's pin
//! directory is removed. After the objects are loaded, every versioned map pin that no loaded
//! object names is removed. Only names of that form are touched: the `links/` directory and
//! anything else in the directory stay.

use std::collections::BTreeSet;
use std::path::Path;

/// Whether `name` is a versioned map name of meshd's (`md_<what>_v<digits>`).
fn versioned_map_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("md_") else { return false };
    let Some((stem, version)) = rest.rsplit_once("_v") else { return false };
    !stem.is_empty() && !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit())
}

/// The pins among `present` that are versioned map names no loaded object uses.
pub fn retired<'a>(present: impl IntoIterator<Item = &'a str>, in_use: &BTreeSet<&str>) -> Vec<String> {
    present
        .into_iter()
        .filter(|name| versioned_map_name(name) && !in_use.contains(name))
        .map(str::to_string)
        .collect()
}

/// Removes the retired map pins under `pin_dir` (files only); returns their names. A pin that
/// cannot be read or removed is logged and left: it costs memory, not correctness.
pub fn remove(pin_dir: &Path, in_use: &BTreeSet<&str>) -> Vec<String> {
    let entries = match std::fs::read_dir(pin_dir) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(dir = %pin_dir.display(), %error, "cannot list the pin directory for retired maps");
            return Vec::new();
        }
    };
    let files: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    let mut removed = Vec::new();
    for name in retired(files.iter().map(String::as_str), in_use) {
        match std::fs::remove_file(pin_dir.join(&name)) {
            Ok(()) => {
                tracing::info!(map = %name, "removed the pin of a map an older build used");
                removed.push(name);
            }
            Err(error) => tracing::warn!(map = %name, %error, "cannot remove a retired map pin"),
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_versioned_map_names_no_object_uses_are_retired() {
        let in_use: BTreeSet<&str> = ["md_ifaces_v2", "md_config_v4"].into_iter().collect();
        let present = [
            "md_ifaces_v1",
            "md_ifaces_v2",
            "md_config_v3",
            "md_config_v4",
            "links",
            "md_",
            "md_x_v",
            "md_x_v1a",
            "other_v1",
        ];
        assert_eq!(retired(present, &in_use), ["md_ifaces_v1", "md_config_v3"]);
    }

    #[test]
    fn removes_files_only() {
        let dir = std::env::temp_dir().join(format!("meshd-retired-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("md_links_v1")).unwrap();
        for name in ["md_old_v1", "md_new_v2"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        let in_use: BTreeSet<&str> = ["md_new_v2"].into_iter().collect();
        assert_eq!(remove(&dir, &in_use), ["md_old_v1"]);
        assert!(dir.join("md_new_v2").exists() && dir.join("md_links_v1").is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
