//! Addresses and ports as the maps hold them: in network byte order, stored in a native integer,
//! exactly as they appear in packet headers (so a program compares `ip->daddr` with a key
//! without swapping bytes).

use std::net::Ipv4Addr;

/// An IPv4 address as a map field: its four octets in packet order, read as a native `u32`.
pub fn ipv4(ip: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

/// The inverse of [`ipv4`].
pub fn to_ipv4(field: u32) -> Ipv4Addr {
    Ipv4Addr::from(field.to_ne_bytes())
}

/// A TCP or UDP port as a map field (network byte order).
pub fn port(port: u16) -> u16 {
    port.to_be()
}

/// The inverse of [`port`].
pub fn to_port(field: u16) -> u16 {
    u16::from_be(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_hold_packet_order() {
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        assert_eq!(ipv4(ip).to_ne_bytes(), [10, 1, 2, 3]);
        assert_eq!(to_ipv4(ipv4(ip)), ip);
        assert_eq!(port(8080).to_ne_bytes(), [0x1f, 0x90]);
        assert_eq!(to_port(port(8080)), 8080);
    }
}
