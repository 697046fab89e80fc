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

/// The gateway of `subnet`: its first address, answered by the eBPF ARP responder.
pub fn gateway(subnet: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// The index of the block `address` falls in, if it is in `subnet` at all.
pub fn block_of(subnet: &Ipv4Net, address: Ipv4Addr) -> Option<u32> {
    subnet.contains(&address).then(|| (u32::from(address) - u32::from(subnet.network())) >> BLOCK_BITS)
}

/// The network address, the gateway and the broadcast address: never an endpoint's.
pub fn is_reserved(subnet: &Ipv4Net, address: Ipv4Addr) -> bool {
    address == subnet.network() || address == gateway(subnet) || address == subnet.broadcast()
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
        assert!(is_reserved(&net, Ipv4Addr::new(10, 1, 0, 0)));
        assert!(is_reserved(&net, Ipv4Addr::new(10, 1, 0, 1)));
        assert!(is_reserved(&net, Ipv4Addr::new(10, 1, 0, 255)));
        assert!(!is_reserved(&net, Ipv4Addr::new(10, 1, 0, 2)));
    }
}
