//! FNV-1a, the one hash meshd uses where every node must compute the same value from the same
//! input: service IDs, VNIs derived from network names, Maglev permutations and table
//! fingerprints. Not for anything an attacker may choose to collide on purpose.

const OFFSET_32: u32 = 0x811c_9dc5;
const PRIME_32: u32 = 0x0100_0193;
const OFFSET_64: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME_64: u64 = 0x0000_0100_0000_01b3;

/// 32-bit FNV-1a over `bytes`.
pub fn fnv1a_32(bytes: impl IntoIterator<Item = u8>) -> u32 {
    bytes.into_iter().fold(OFFSET_32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(PRIME_32))
}

/// 64-bit FNV-1a over `bytes`, starting from the offset basis xor `seed` (one hash family, one
/// member per seed).
pub fn fnv1a_64(seed: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(OFFSET_64 ^ seed, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(PRIME_64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_test_vectors() {
        // From the FNV reference (draft-eastlake-fnv): "" and "a".
        assert_eq!(fnv1a_32(*b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(*b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_64(0, *b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(0, *b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
