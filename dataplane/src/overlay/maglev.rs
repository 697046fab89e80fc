//! Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of prime size M in
//! which every backend owns about M/N slots, built so that removing one of N backends moves only
//! about 1/N of the slots. Every node builds the same table from the same backend list, so a flow
//! hashes to the same backend whichever node balances it.

use std::net::Ipv4Addr;

/// Smallest prime at least 100 x the number of backends (and at least 101): the bound,
/// which keeps each backend's share within about 1 % of 1/N.
pub fn table_size(backends: usize) -> u32 {
    let mut m = (backends.max(1) as u32 * 100).max(101);
    while !is_prime(m) {
        m += 1;
    }
    m
}

fn is_prime(n: u32) -> bool {
    n >= 2 && (2..).take_while(|d: &u32| d * d <= n).all(|d| n % d != 0)
}

fn hash(seed: u64, ip: Ipv4Addr) -> u64 {
    // FNV-1a over the address with a seed, then a final mix: cheap and stable everywhere.
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for byte in ip.octets() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
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
    let perms: Vec<(u64, u64)> = backends
        .iter()
        .map(|ip| (hash(0x5eed_0001, *ip) % m64, hash(0x5eed_0002, *ip) % (m64 - 1) + 1))
        .collect();
    let mut next = vec![0u64; backends.len()];
    let mut table = vec![u32::MAX; m as usize];
    let mut filled = 0u32;
    'fill: loop {
        for (i, (offset, skip)) in perms.iter().enumerate() {
            let mut slot = (offset + next[i] * skip) % m64;
            while table[slot as usize] != u32::MAX {
                next[i] += 1;
                slot = (offset + next[i] * skip) % m64;
            }
            table[slot as usize] = i as u32;
            next[i] += 1;
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
    fn sizes_are_primes_of_at_least_100_per_backend() {
        assert_eq!(table_size(0), 101);
        assert_eq!(table_size(1), 101);
        assert_eq!(table_size(10), 1009);
        assert!(is_prime(table_size(37)) && table_size(37) >= 3700);
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
        let after = build(&after_list, m);
        let moved = (0..m as usize)
            .filter(|&s| before_list[before[s] as usize] != after_list[after[s] as usize])
            .count() as f64
            / f64::from(m);
        // The removed backend's tenth must move; Maglev moves little else.
        assert!((0.1..0.16).contains(&moved), "moved {moved}");
    }

    #[test]
    fn the_same_list_builds_the_same_table() {
        assert_eq!(build(&backends(5), 503), build(&backends(5), 503));
        assert!(build(&[], 101).is_empty());
    }
}
