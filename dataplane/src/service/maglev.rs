//! Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of prime size M in
//! which every backend owns about M/N slots, built so that removing one of N backends moves only
//! about 1/N of the slots. Every node builds the same table from the same backend list, so a flow
//! hashes to the same backend whichever node balances it.

use std::net::Ipv4Addr;

use crate::util::hash::fnv1a_64;

/// The table size M for `backends` backends: the largest prime below a power of two (127, 251,
/// 509, 1021, 2039, ...), the smallest such that M >= 100 x backends, which keeps each backend's
/// share within about 1 % of 1/N.
///
/// Sizes come in these classes rather than as the smallest prime above 100 x N because M must
/// not change when one backend comes or goes: a flow uses slot hash % M, so a new M would send
/// almost every new flow elsewhere, and Maglev's promise (removing one of N moves about 1/N)
/// would hold only for a fixed M. With classes, M changes only when N crosses a class boundary
/// (about doubling), which is when the table has to grow anyway.
pub fn table_size(backends: usize) -> u32 {
    static CLASSES: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    let classes =
        CLASSES.get_or_init(|| (7..32).map(|bits| largest_prime_below(1u64 << bits) as u32).collect());
    let wanted = (backends.max(1) as u64 * 100).max(101);
    classes.iter().copied().find(|&m| u64::from(m) >= wanted).unwrap_or(*classes.last().expect("classes"))
}

fn largest_prime_below(limit: u64) -> u64 {
    (2..limit).rev().find(|&n| is_prime(n as u32)).unwrap_or(2)
}

fn is_prime(n: u32) -> bool {
    n >= 2 && (2..).take_while(|d: &u32| d * d <= n).all(|d| !n.is_multiple_of(d))
}

fn hash(seed: u64, ip: Ipv4Addr) -> u64 {
    // FNV-1a over the address with a seed, then a final mix: cheap and stable everywhere.
    let mut h = fnv1a_64(seed, ip.octets());
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The table: slot -> index into `backends`. `backends` should be sorted so that every node
/// builds the same table. Empty for no backends.
pub fn build(backends: &[Ipv4Addr], m: u32) -> Vec<u32> {
    if backends.is_empty() {
        return Vec::new();
    }
    let m64 = u64::from(m);
    // Each backend walks its permutation offset, offset + skip, offset + 2 skip, ... (mod M);
    // `position` is where it stands, advanced by addition rather than recomputed with a
    // multiplication and a modulo at every step.
    let skips: Vec<u32> = backends.iter().map(|ip| (hash(0x5eed_0002, *ip) % (m64 - 1) + 1) as u32).collect();
    let mut position: Vec<u32> = backends.iter().map(|ip| (hash(0x5eed_0001, *ip) % m64) as u32).collect();
    let advance = |at: u32, skip: u32| if at >= m - skip { at - (m - skip) } else { at + skip };
    let mut table = vec![u32::MAX; m as usize];
    let mut filled = 0u32;
    'fill: loop {
        for (i, skip) in skips.iter().enumerate() {
            let mut slot = position[i];
            while table[slot as usize] != u32::MAX {
                slot = advance(slot, *skip);
            }
            table[slot as usize] = i as u32;
            position[i] = advance(slot, *skip);
            filled += 1;
            if filled == m {
                break 'fill;
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: u8) -> Vec<Ipv4Addr> {
        (1..=n).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect()
    }

    #[test]
    fn sizes_are_primes_of_at_least_100_per_backend_in_classes() {
        assert_eq!(table_size(0), 127);
        assert_eq!(table_size(1), 127);
        assert_eq!(table_size(10), 1021);
        assert_eq!(table_size(9), 1021, "one backend less keeps the size");
        assert!(is_prime(table_size(37)) && table_size(37) >= 3700);
        assert_eq!(table_size(100_000), 16_777_213);
    }

    #[test]
    fn every_backend_gets_a_fair_share() {
        let list = backends(10);
        let m = table_size(list.len());
        let table = build(&list, m);
        assert_eq!(table.len(), m as usize);
        for i in 0..list.len() as u32 {
            let share = table.iter().filter(|&&b| b == i).count() as f64 / f64::from(m);
            assert!((share - 0.1).abs() < 0.01, "backend {i} has {share}");
        }
    }

    #[test]
    fn removing_one_of_ten_moves_about_a_tenth() {
        let before_list = backends(10);
        let m = table_size(10);
        let before = build(&before_list, m);
        let mut after_list = before_list.clone();
        after_list.remove(3);
        assert_eq!(table_size(after_list.len()), m);
        let after = build(&after_list, m);
        let moved = (0..m as usize)
            .filter(|&s| before_list[before[s] as usize] != after_list[after[s] as usize])
            .count() as f64
            / f64::from(m);
        // The removed backend's tenth must move; Maglev moves little else.
        assert!((0.1..0.16).contains(&moved), "moved {moved}");
    }

    /// The textbook construction (Eisenbud et al., pseudo-code 1), to check the faster walk.
    fn reference(backends: &[Ipv4Addr], m: u32) -> Vec<u32> {
        let m64 = u64::from(m);
        let perms: Vec<(u64, u64)> = backends
            .iter()
            .map(|ip| (hash(0x5eed_0001, *ip) % m64, hash(0x5eed_0002, *ip) % (m64 - 1) + 1))
            .collect();
        let mut next = vec![0u64; backends.len()];
        let mut table = vec![u32::MAX; m as usize];
        let mut filled = 0;
        while filled < m {
            for (i, (offset, skip)) in perms.iter().enumerate() {
                if filled == m {
                    break;
                }
                let mut slot = (offset + next[i] * skip) % m64;
                while table[slot as usize] != u32::MAX {
                    next[i] += 1;
                    slot = (offset + next[i] * skip) % m64;
                }
                table[slot as usize] = i as u32;
                next[i] += 1;
                filled += 1;
            }
        }
        table
    }

    #[test]
    fn the_fast_walk_builds_the_textbook_table() {
        for n in [1u8, 2, 7, 10, 33] {
            let list = backends(n);
            let m = table_size(list.len());
            assert_eq!(build(&list, m), reference(&list, m), "{n} backends");
        }
    }

    #[test]
    fn the_same_list_builds_the_same_table() {
        assert_eq!(build(&backends(5), 509), build(&backends(5), 509));
        assert!(build(&[], 127).is_empty());
    }
}
