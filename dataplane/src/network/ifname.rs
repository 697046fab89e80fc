//! Interface names a runtime asks for (CNI's `CNI_IFNAME`): what Linux accepts.

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_LEN: usize = 15;

/// Checks `name` the way the kernel's `dev_valid_name` does: 1 to 15 bytes, not `.` or `..`,
/// no `/`, `:` or whitespace.
pub fn validate(name: &str) -> Result<(), String> {
    let ok = (1..=MAX_LEN).contains(&name.len())
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        Ok(())
    } else {
        let shown: String = name.chars().take(40).collect();
        Err(format!(
            "interface name {shown:?} is not valid (1 to {MAX_LEN} characters, no '/', ':' or spaces)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_linux_accepts() {
        for good in ["eth0", "net1", "a", "x-y_z.1", "abcdefghijklmno"] {
            assert!(validate(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "eth/0", "eth:0", "eth 0", "abcdefghijklmnop", "eth\u{e9}"] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
