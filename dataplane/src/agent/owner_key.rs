//! What an owner key is: the name a runtime gives the attachments it owns (`cni/NET/CONTAINER/
//! IFNAME`, `docker/ENDPOINT`). One rule, checked wherever a key comes in.

use super::AgentError;

/// Longest owner key accepted.
pub const MAX_OWNER_LEN: usize = 512;

/// An owner key is printable ASCII without spaces, 1 to [`MAX_OWNER_LEN`] bytes.
pub fn validate(owner: &str) -> Result<(), AgentError> {
    if (1..=MAX_OWNER_LEN).contains(&owner.len()) && owner.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        let shown: String = owner.chars().take(60).collect();
        Err(AgentError::BadRequest(format!(
            "owner {shown:?} is not valid (1 to {MAX_OWNER_LEN} printable ASCII characters, no spaces)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_keys() {
        assert!(validate("cni/front/abc/eth0").is_ok());
        assert!(validate("docker/0123abcd").is_ok());
        assert!(validate("").is_err());
        assert!(validate("has space").is_err());
        assert!(validate(&"x".repeat(MAX_OWNER_LEN + 1)).is_err());
        assert!(validate("caf\u{e9}").is_err());
    }
}
