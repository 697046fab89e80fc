//! Rust mirror of `include/abi/verdict.h`: the per-CPU verdict counters every program updates.

use std::fmt;

/// Name of the pinned map (area + layout version; bump both sides together).
pub const MAP_NAME: &str = "md_verdict_v1";
/// `MD_VERDICT_MAX`: capacity of [`MAP_NAME`] in (interface, reason, direction) keys; LRU beyond.
pub const VERDICT_MAX: u32 = 16384;

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
    /// Redirected to an endpoint on this node.
    ForwardLocal,
    /// Sent to the endpoint's node through the VXLAN device.
    ForwardTunnel,
    /// An ARP request answered by the program.
    ArpReply,
    /// Received from the tunnel, delivered to a local endpoint.
    DeliverTunnel,
    /// To a service VIP: destination rewritten to a backend.
    LbDnat,
    /// A backend's reply: source rewritten back to the VIP.
    LbRnat,
    /// To a published port: destination rewritten to a backend.
    MeshDnat,
    /// A published flow's reply: source set back, sent to the client.
    MeshReply,
    /// A published flow's reply: tunnelled back to its ingress node.
    MeshReturn,
    /// From the tunnel to the node's own stack.
    ToNode,
    /// From the node's stack into the tunnel.
    FromNode,
    /// A container to a published port of its own node, balanced at its veth.
    Hairpin,
    /// An ICMP error about a balanced flow, translated back for the client.
    IcmpRnat,
    DropMalformed,
    DropUnsupportedL3,
    DropNoEndpoint,
    DropNetworkMismatch,
    DropVniMismatch,
    DropNoTunnelKey,
    DropNoVxlan,
    DropArp,
    DropNoBackend,
    DropCtFull,
    DropSpoofed,
    /// A header rewrite or checksum update failed.
    DropRewrite,
    /// A tunnel packet whose outer source is not a cluster node.
    DropNotANode,
    /// Out of the tunnel with an inner source that is another node's (or network's) endpoint.
    DropTunnelSpoofed,
    /// A container opening a connection to the node itself (meshd's nftables table counts it).
    DropToNode,
    /// A container sending to the cluster's VXLAN data path port (4789 by default).
    DropTunnelPort,
    /// A TCP packet other than a SYN of an untracked balanced flow: no state for it.
    DropNoFlow,
    /// A container without a flow table (not attached yet).
    DropNoFlowTable,
    /// A container of an `--internal` network sending outside the overlay.
    DropInternal,
    /// A packet of an encrypted network to a node with no WireGuard tunnel up (or no engine).
    DropNoTunnel,
    /// VXLAN of an encrypted network arriving in clear on the underlay.
    DropClearEncrypted,
    /// A code this build does not know (a newer program wrote it); kept so nothing is hidden.
    Unknown(u16),
}

impl Reason {
    /// Every known reason, for tests and for listing.
    pub const KNOWN: &'static [Reason] = &[
        Reason::PassStack,
        Reason::ForwardLocal,
        Reason::ForwardTunnel,
        Reason::ArpReply,
        Reason::DeliverTunnel,
        Reason::LbDnat,
        Reason::LbRnat,
        Reason::MeshDnat,
        Reason::MeshReply,
        Reason::MeshReturn,
        Reason::ToNode,
        Reason::FromNode,
        Reason::Hairpin,
        Reason::IcmpRnat,
        Reason::DropMalformed,
        Reason::DropUnsupportedL3,
        Reason::DropNoEndpoint,
        Reason::DropNetworkMismatch,
        Reason::DropVniMismatch,
        Reason::DropNoTunnelKey,
        Reason::DropNoVxlan,
        Reason::DropArp,
        Reason::DropNoBackend,
        Reason::DropCtFull,
        Reason::DropSpoofed,
        Reason::DropRewrite,
        Reason::DropNotANode,
        Reason::DropTunnelSpoofed,
        Reason::DropToNode,
        Reason::DropTunnelPort,
        Reason::DropNoFlow,
        Reason::DropNoFlowTable,
        Reason::DropInternal,
        Reason::DropNoTunnel,
        Reason::DropClearEncrypted,
    ];

    /// (code, C enumerator, name shown to people) of every known reason: the one table both
    /// directions of conversion and the layout test read.
    const TABLE: &'static [(u16, &'static str, &'static str)] = &[
        (1, "MD_REASON_PASS_STACK", "pass-stack"),
        (2, "MD_REASON_FORWARD_LOCAL", "forward-local"),
        (3, "MD_REASON_FORWARD_TUNNEL", "forward-tunnel"),
        (4, "MD_REASON_ARP_REPLY", "arp-reply"),
        (5, "MD_REASON_DELIVER_TUNNEL", "deliver-tunnel"),
        (6, "MD_REASON_LB_DNAT", "lb-dnat"),
        (7, "MD_REASON_LB_RNAT", "lb-rnat"),
        (8, "MD_REASON_MESH_DNAT", "mesh-dnat"),
        (9, "MD_REASON_MESH_REPLY", "mesh-reply"),
        (10, "MD_REASON_MESH_RETURN", "mesh-return"),
        (11, "MD_REASON_TO_NODE", "to-node"),
        (12, "MD_REASON_FROM_NODE", "from-node"),
        (13, "MD_REASON_HAIRPIN", "hairpin"),
        (14, "MD_REASON_ICMP_RNAT", "icmp-rnat"),
        (128, "MD_REASON_DROP_MALFORMED", "drop-malformed"),
        (129, "MD_REASON_DROP_UNSUPPORTED_L3", "drop-unsupported-l3"),
        (130, "MD_REASON_DROP_NO_ENDPOINT", "drop-no-endpoint"),
        (131, "MD_REASON_DROP_NETWORK_MISMATCH", "drop-network-mismatch"),
        (132, "MD_REASON_DROP_VNI_MISMATCH", "drop-vni-mismatch"),
        (133, "MD_REASON_DROP_NO_TUNNEL_KEY", "drop-no-tunnel-key"),
        (134, "MD_REASON_DROP_NO_VXLAN", "drop-no-vxlan"),
        (135, "MD_REASON_DROP_ARP", "drop-arp"),
        (136, "MD_REASON_DROP_NO_BACKEND", "drop-no-backend"),
        (137, "MD_REASON_DROP_CT_FULL", "drop-ct-full"),
        (138, "MD_REASON_DROP_SPOOFED", "drop-spoofed"),
        (139, "MD_REASON_DROP_REWRITE", "drop-rewrite"),
        (140, "MD_REASON_DROP_NOT_A_NODE", "drop-not-a-node"),
        (141, "MD_REASON_DROP_TUNNEL_SPOOFED", "drop-tunnel-spoofed"),
        (142, "MD_REASON_DROP_TO_NODE", "drop-to-node"),
        (143, "MD_REASON_DROP_TUNNEL_PORT", "drop-tunnel-port"),
        (144, "MD_REASON_DROP_NO_FLOW", "drop-no-flow"),
        (145, "MD_REASON_DROP_NO_FLOW_TABLE", "drop-no-flow-table"),
        (146, "MD_REASON_DROP_INTERNAL", "drop-internal"),
        (147, "MD_REASON_DROP_NO_TUNNEL", "drop-no-tunnel"),
        (148, "MD_REASON_DROP_CLEAR_ENCRYPTED", "drop-clear-encrypted"),
    ];

    fn index(self) -> Option<usize> {
        Reason::KNOWN.iter().position(|r| *r == self)
    }

    pub fn from_code(code: u16) -> Reason {
        Reason::TABLE
            .iter()
            .position(|(c, _, _)| *c == code)
            .map(|i| Reason::KNOWN[i])
            .unwrap_or(Reason::Unknown(code))
    }

    pub fn code(self) -> u16 {
        match self {
            Reason::Unknown(code) => code,
            known => Reason::TABLE[known.index().expect("known")].0,
        }
    }

    /// The C enumerator name, as in the header (used by the layout test).
    pub fn c_name(self) -> Option<&'static str> {
        self.index().map(|i| Reason::TABLE[i].1)
    }

    /// Codes from 128 on are drops.
    pub fn is_drop(self) -> bool {
        self.code() >= 128
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index() {
            Some(i) => f.write_str(Reason::TABLE[i].2),
            None => write!(f, "unknown({})", self.code()),
        }
    }
}

/// Which way the packet was going, seen from the container; mirrors `enum md_dir`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    FromContainer,
    ToContainer,
    FromTunnel,
    FromUnderlay,
    ToTunnel,
    Unknown(u8),
}

impl Direction {
    pub const KNOWN: &'static [Direction] = &[
        Direction::FromContainer,
        Direction::ToContainer,
        Direction::FromTunnel,
        Direction::FromUnderlay,
        Direction::ToTunnel,
    ];

    pub fn from_code(code: u8) -> Direction {
        match code {
            0 => Direction::FromContainer,
            1 => Direction::ToContainer,
            2 => Direction::FromTunnel,
            3 => Direction::FromUnderlay,
            4 => Direction::ToTunnel,
            other => Direction::Unknown(other),
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Direction::FromContainer => 0,
            Direction::ToContainer => 1,
            Direction::FromTunnel => 2,
            Direction::FromUnderlay => 3,
            Direction::ToTunnel => 4,
            Direction::Unknown(code) => code,
        }
    }

    pub fn c_name(self) -> Option<&'static str> {
        match self {
            Direction::FromContainer => Some("MD_DIR_FROM_CONTAINER"),
            Direction::ToContainer => Some("MD_DIR_TO_CONTAINER"),
            Direction::FromTunnel => Some("MD_DIR_FROM_TUNNEL"),
            Direction::FromUnderlay => Some("MD_DIR_FROM_UNDERLAY"),
            Direction::ToTunnel => Some("MD_DIR_TO_TUNNEL"),
            Direction::Unknown(_) => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Direction::FromContainer => f.write_str("from-container"),
            Direction::ToContainer => f.write_str("to-container"),
            Direction::FromTunnel => f.write_str("from-tunnel"),
            Direction::FromUnderlay => f.write_str("from-underlay"),
            Direction::ToTunnel => f.write_str("to-tunnel"),
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
        assert_eq!(Reason::KNOWN.len(), Reason::TABLE.len());
        assert!(Reason::DropArp.is_drop() && !Reason::ArpReply.is_drop());
    }

    #[test]
    fn direction_codes_round_trip() {
        for dir in Direction::KNOWN {
            assert_eq!(Direction::from_code(dir.code()), *dir);
        }
    }
}
