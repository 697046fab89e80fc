//! The kernel settings meshd changes in the node's network namespace, through /proc/sys.

/// Turns on IPv4 forwarding in this namespace (containers reach the underlay through the node).
pub fn enable_forwarding() -> std::io::Result<()> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
}

/// The node's reserved local ports (`net.ipv4.ip_local_reserved_ports`): the kernel never
/// picks them as ephemeral ports. A published port must be one of them, or the routing mesh
/// would take the replies to the node's own connections that happen to use it.
const RESERVED_PORTS: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/// The reserved ports as the kernel lists them now (kept as they are: meshd adds to them).
pub fn reserved_ports() -> std::io::Result<String> {
    Ok(std::fs::read_to_string(RESERVED_PORTS)?.trim().to_string())
}

/// Reserves `base` (the list found at start) plus `published`.
pub fn reserve_ports(base: &str, published: &[u16]) -> std::io::Result<()> {
    let mut list: Vec<String> =
        base.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from).collect();
    list.extend(published.iter().map(u16::to_string));
    // An empty write is refused by the kernel; a single newline clears the list.
    let value = if list.is_empty() { "\n".to_string() } else { list.join(",") };
    std::fs::write(RESERVED_PORTS, value)
}
