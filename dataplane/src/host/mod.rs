//! Host plumbing that is not netlink: sysctls under /proc/sys (IPv4 forwarding, reserved local
//! ports) and meshd's nftables table (VXLAN notrack, masquerade, no forwarding into the overlay).

pub mod nftables;
pub mod sysctl;
