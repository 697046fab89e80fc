//! Versions of the CNI spec meshd-cni speaks. A result is written in the version of the
//! configuration it answers (the spec: "the same version supplied on input"): 0.4.0 results
//! carry `ips[].version`, 1.1.0 adds `interfaces[].mtu`. Runtimes on libcni 1.1 (podman 4,
//! containerd 1.6/1.7) cannot read 1.1.0 results, so the configurations meshd ships say 1.0.0.

use serde_json::{json, Value};

use super::error::{code, CniError};

/// Every version meshd-cni accepts, oldest first.
pub const SUPPORTED: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CniVersion {
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl CniVersion {
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    pub fn parse(text: &str) -> Result<CniVersion, CniError> {
        match text {
            "0.4.0" => Ok(CniVersion::V0_4_0),
            "1.0.0" => Ok(CniVersion::V1_0_0),
            "1.1.0" => Ok(CniVersion::V1_1_0),
            other => Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                "incompatible CNI version",
                format!(
                    "cniVersion {:?} is not supported by meshd-cni (it speaks {})",
                    other.chars().take(20).collect::<String>(),
                    SUPPORTED.join(", ")
                ),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }
}

/// The VERSION answer: the version asked about (any string, echoed) and what we support.
pub fn version_result(asked: &str) -> Value {
    json!({ "cniVersion": asked, "supportedVersions": SUPPORTED })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for text in SUPPORTED {
            assert_eq!(CniVersion::parse(text).unwrap().as_str(), text);
        }
        let err = CniVersion::parse("0.3.1").unwrap_err();
        assert_eq!(err.code, code::INCOMPATIBLE_VERSION);
        assert!(err.details.contains("0.3.1") && err.details.contains("1.1.0"), "{err}");
        assert_eq!(version_result("1.0.0")["supportedVersions"][2], "1.1.0");
    }
}
