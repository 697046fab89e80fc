//! A network's addresses cut into blocks, the unit the managers grant to nodes: which block an
//! address falls in, how many blocks a subnet has, and which addresses no endpoint may hold.
//!
//! Pure arithmetic shared by the two sides of an address: the node that hands it out
//! (`network::ipam`) and every node that checks a claim on it at receipt (`state::claims`).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Addresses per block: 2^4.
pub const BLOCK_BITS: u8 = 4;

/// How many blocks `subnet` has (at least one: a network's prefix is at most /28).
pub fn block_count(subnet: &Ipv4Net) -> u32 {
    1 << (32 - u32::from(subnet.prefix_len()).min(32 - u32::from(BLOCK_BITS)) - u32::from(BLOCK_BITS))
}

/// The index of the block `address` falls in, if it is in `subnet` at all.
pub fn block_of(subnet: &Ipv4Net, address: Ipv4Addr) -> Option<u32> {
    subnet.contains(&address).then(|| (u32::from(address) - u32::from(subnet.network())) >> BLOCK_BITS)
}

/// The addresses of block `index` of `subnet` (the last block may stick out of a subnet
/// smaller than a block; [`block_count`] keeps it at one).
pub fn block_span(subnet: &Ipv4Net, index: u32) -> std::ops::Range<u32> {
    let base = u32::from(subnet.network()) + (index << BLOCK_BITS);
    base..base + (1 << BLOCK_BITS)
}

/// The blocks of a network the managers may grant: those holding at least one dynamic address.
/// With an `--ip-range` that is not block-aligned, a block straddling its edge is grantable and
/// its node hands out only the addresses inside the range (`network::ipam`).
pub fn grantable(record: &super::NetworkRecord, index: u32) -> bool {
    index < block_count(&record.subnet)
        && block_span(&record.subnet, index)
            .any(|a| record.address_use(Ipv4Addr::from(a)) == super::network_options::AddressUse::Dynamic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_fall_in_the_block_of_their_offset() {
        let net: Ipv4Net = "10.1.0.0/24".parse().unwrap();
        assert_eq!(block_count(&net), 16);
        assert_eq!(block_count(&"10.0.0.0/28".parse().unwrap()), 1);
        assert_eq!(block_of(&net, Ipv4Addr::new(10, 1, 0, 2)), Some(0));
        assert_eq!(block_of(&net, Ipv4Addr::new(10, 1, 0, 16)), Some(1));
        assert_eq!(block_of(&net, Ipv4Addr::new(10, 1, 0, 255)), Some(15));
        assert_eq!(block_of(&net, Ipv4Addr::new(10, 1, 1, 0)), None);
        assert_eq!(block_of(&net, Ipv4Addr::new(192, 0, 2, 1)), None);
    }

    #[test]
    fn only_blocks_with_dynamic_addresses_are_grantable() {
        let mut record = crate::state::NetworkRecord {
            subnet: "10.1.0.0/24".parse().unwrap(),
            vni: 5000,
            options: Default::default(),
        };
        assert!((0..16).all(|i| grantable(&record, i)));
        assert!(!grantable(&record, 16), "past the subnet");
        // 10.1.0.40/29 is .40-.47: inside block 2 (.32-.47) only.
        record.options.ip_range = Some("10.1.0.40/29".parse().unwrap());
        assert_eq!((0..16).filter(|i| grantable(&record, *i)).collect::<Vec<_>>(), vec![2]);
        // A range covering blocks 4 and 5.
        record.options.ip_range = Some("10.1.0.64/27".parse().unwrap());
        assert_eq!((0..16).filter(|i| grantable(&record, *i)).collect::<Vec<_>>(), vec![4, 5]);
    }
}
