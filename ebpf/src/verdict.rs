//! Rust mirror of `include/abi/verdict.h`: the per-CPU verdict counters every program updates.

use std::fmt;

/// Name of the pinned map (area + layout version; bump both sides together).
pub const MAP_NAME: &str = "md_verdict_v1";

/// Key of [`MAP_NAME`]; mirrors `struct md_verdict_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VerdictKey {
    /// Interface the program runs on, in the node's namespace.
    pub ifindex: u32,
    /// A [`Reason`] code.
    pub reason: u16,
    /// A [`Direction`] code.
    pub dir: u8,
    /// Explicit padding, always zero.
    pub pad: u8,
}

/// Value of [`MAP_NAME`], one per CPU; mirrors `struct md_verdict_val`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerdictCounter {
    pub packets: u64,
    pub bytes: u64,
}

impl VerdictCounter {
    /// Adds another CPU's slot (or another key's) into this one.
    pub fn add(&mut self, other: &VerdictCounter) {
        self.packets = self.packets.wrapping_add(other.packets);
        self.bytes = self.bytes.wrapping_add(other.bytes);
    }
}

// SAFETY: both are repr(C), built from integers only, with explicit padding, so every bit pattern
// is a valid value and no byte is uninitialised.
#[allow(unsafe_code)]
unsafe impl aya::Pod for VerdictKey {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for VerdictCounter {}

/// Why a packet got its verdict; mirrors `enum md_reason`. Codes are ABI: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Handed to the kernel stack unchanged.
    PassStack,
    /// A code this build does not know (a newer program wrote it); kept so nothing is hidden.
    Unknown(u16),
}

impl Reason {
    /// Every known reason, for tests and for listing.
    pub const KNOWN: &'static [Reason] = &[Reason::PassStack];

    pub fn from_code(code: u16) -> Reason {
        match code {
            1 => Reason::PassStack,
            other => Reason::Unknown(other),
        }
    }

    pub fn code(self) -> u16 {
        match self {
            Reason::PassStack => 1,
            Reason::Unknown(code) => code,
        }
    }

    /// The C enumerator name, as in the header (used by the layout test).
    pub fn c_name(self) -> Option<&'static str> {
        match self {
            Reason::PassStack => Some("MD_REASON_PASS_STACK"),
            Reason::Unknown(_) => None,
        }
    }

    /// Codes from 128 on are drops.
    pub fn is_drop(self) -> bool {
        self.code() >= 128
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::PassStack => f.write_str("pass-stack"),
            Reason::Unknown(code) => write!(f, "unknown({code})"),
        }
    }
}

/// Which way the packet was going, seen from the container; mirrors `enum md_dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    FromContainer,
    ToContainer,
    Unknown(u8),
}

impl Direction {
    pub const KNOWN: &'static [Direction] = &[Direction::FromContainer, Direction::ToContainer];

    pub fn from_code(code: u8) -> Direction {
        match code {
            0 => Direction::FromContainer,
            1 => Direction::ToContainer,
            other => Direction::Unknown(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Direction::FromContainer => 0,
            Direction::ToContainer => 1,
            Direction::Unknown(code) => code,
        }
    }

    pub fn c_name(self) -> Option<&'static str> {
        match self {
            Direction::FromContainer => Some("MD_DIR_FROM_CONTAINER"),
            Direction::ToContainer => Some("MD_DIR_TO_CONTAINER"),
            Direction::Unknown(_) => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Direction::FromContainer => f.write_str("from-container"),
            Direction::ToContainer => f.write_str("to-container"),
            Direction::Unknown(code) => write!(f, "unknown({code})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_round_trip() {
        for reason in Reason::KNOWN {
            assert_eq!(Reason::from_code(reason.code()), *reason);
        }
        assert_eq!(Reason::from_code(999), Reason::Unknown(999));
        assert_eq!(Reason::Unknown(999).to_string(), "unknown(999)");
    }

    #[test]
    fn direction_codes_round_trip() {
        for dir in Direction::KNOWN {
            assert_eq!(Direction::from_code(dir.code()), *dir);
        }
    }
}
