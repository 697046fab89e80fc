//! The next free subnet of the cluster's default address pools (Swarm's `--default-addr-pool`):
//! the first subnet of the mask length, pool by pool in the order given, that overlaps no
//! subnet in use. Pure, so the managers' state machine runs it at a command's place in the log
//! and every manager picks the same, and the Docker driver runs it over the same pools.

use ipnet::Ipv4Net;

use crate::identity::ClusterSettings;

/// The first free subnet, or None when every pool is full. The subnets in use are sorted once
/// and walked along with the candidates: a candidate that overlaps one is skipped past the end
/// of it, so a /8 cut into /28s with thousands of networks takes thousands of steps, not a
/// million.
pub fn next_free(settings: &ClusterSettings, used: &[Ipv4Net]) -> Option<Ipv4Net> {
    let mask = settings.default_addr_pool_mask_length;
    let size = 1u64 << (32 - u32::from(mask));
    let span = |net: &Ipv4Net| (u64::from(u32::from(net.network())), u64::from(u32::from(net.broadcast())));
    let mut used: Vec<(u64, u64)> = used.iter().map(span).collect();
    used.sort_unstable();
    for pool in &settings.default_addr_pools {
        if mask < pool.prefix_len() {
            continue;
        }
        let (start, last) = span(pool);
        let mut at = start;
        // Entries before `first` end before `at`, and so before every later candidate.
        let mut first = 0;
        while at + size - 1 <= last {
            let end = at + size - 1;
            while first < used.len() && used[first].1 < at {
                first += 1;
            }
            let taken = used[first..]
                .iter()
                .take_while(|(s, _)| *s <= end)
                .filter(|(_, e)| *e >= at)
                .map(|(_, e)| *e)
                .max();
            match taken {
                None => return Some(Ipv4Net::new((at as u32).into(), mask).expect("mask length checked")),
                // Aligned to the mask: the first candidate after the subnet in the way.
                Some(taken_end) => at = (taken_end.max(end) + 1).div_ceil(size) * size,
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(a: &Ipv4Net, b: &Ipv4Net) -> bool {
        a.contains(&b.network()) || b.contains(&a.network())
    }

    fn settings(pools: &[&str], mask: u8) -> ClusterSettings {
        ClusterSettings {
            default_addr_pools: pools.iter().map(|p| p.parse().unwrap()).collect(),
            default_addr_pool_mask_length: mask,
            data_path_port: 4789,
        }
    }

    fn nets(list: &[&str]) -> Vec<Ipv4Net> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn the_first_free_subnet_of_the_first_pool_with_room() {
        let s = settings(&["10.0.0.0/8"], 24);
        assert_eq!(next_free(&s, &[]), Some("10.0.0.0/24".parse().unwrap()));
        assert_eq!(next_free(&s, &nets(&["10.0.0.0/24"])), Some("10.0.1.0/24".parse().unwrap()));
        // A larger network in the way is skipped whole; a smaller one takes its /24.
        assert_eq!(next_free(&s, &nets(&["10.0.0.0/16"])), Some("10.1.0.0/24".parse().unwrap()));
        assert_eq!(
            next_free(&s, &nets(&["10.0.0.0/24", "10.0.1.64/26"])),
            Some("10.0.2.0/24".parse().unwrap())
        );
        // A network outside the pool does not matter; one covering the pool fills it.
        assert_eq!(next_free(&s, &nets(&["192.168.0.0/16"])), Some("10.0.0.0/24".parse().unwrap()));
        assert_eq!(next_free(&s, &nets(&["8.0.0.0/6"])), None);
    }

    #[test]
    fn pools_are_used_in_order_and_run_out() {
        let s = settings(&["192.168.0.0/25", "172.20.0.0/27"], 26);
        let mut used = Vec::new();
        while let Some(next) = next_free(&s, &used) {
            assert!(!used.iter().any(|u| overlap(u, &next)), "{next} overlaps");
            used.push(next);
        }
        assert_eq!(used, nets(&["192.168.0.0/26", "192.168.0.64/26"]), "a /27 holds no /26");
        let s = settings(&["192.168.0.0/25", "172.20.0.0/24"], 26);
        used.clear();
        while let Some(next) = next_free(&s, &used) {
            used.push(next);
        }
        assert_eq!(used.len(), 6);
        assert_eq!(used[2], "172.20.0.0/26".parse().unwrap());
    }

    #[test]
    fn many_networks_are_walked_quickly() {
        let s = settings(&["10.0.0.0/8"], 28);
        let mut used = Vec::new();
        for _ in 0..2000 {
            used.push(next_free(&s, &used).unwrap());
        }
        assert_eq!(used[1999], "10.0.124.240/28".parse().unwrap());
        // Nothing free in a full pool, found without walking a million candidates.
        let full = settings(&["10.0.0.0/8"], 28);
        assert_eq!(next_free(&full, &nets(&["10.0.0.0/8"])), None);
    }
}
