//! Rust mirror of `include/abi/events.h`: monitor events from the programs (drops, new balanced
//! flows) through a ring buffer, and the per-CPU rate limit in front of it.

/// The ring buffer the programs write events into.
pub const RING_MAP: &str = "md_events_v1";
/// `MD_EVENTS_RING_BYTES`: size of [`RING_MAP`] in bytes.
pub const RING_BYTES: u32 = 262144;
/// Which event types are on, and the rate limit; an array of one.
pub const CONFIG_MAP: &str = "md_event_config_v1";
/// `MD_EVENT_CONFIG_MAX`.
pub const CONFIG_MAX: u32 = 1;
/// Per-CPU token buckets and counters, one per event type (index `type - 1`).
pub const BUCKET_MAP: &str = "md_event_bucket_v1";
/// `MD_EVENT_BUCKETS_MAX`.
pub const BUCKETS_MAX: u32 = 2;

/// `MD_EVENT_DROP`: a dropped packet; also its bit in [`EventConfig::mask`].
pub const TYPE_DROP: u8 = 1;
/// `MD_EVENT_FLOW`: a new balanced flow; also its bit in [`EventConfig::mask`].
pub const TYPE_FLOW: u8 = 2;
/// `MD_EVENT_DIR_UNKNOWN`: the direction of a flow event (conntrack does not know it).
pub const DIR_UNKNOWN: u8 = 255;
/// `MD_EVENT_FLOW_PACKET`: a flow event's `reason` when a tc program balanced its first packet.
pub const FLOW_PACKET: u16 = 0;
/// `MD_EVENT_FLOW_SOCKET`: a flow event's `reason` when the socket program balanced a
/// container's connect() (the client's port is not chosen yet: 0).
pub const FLOW_SOCKET: u16 = 1;

/// Mirrors `struct md_event`. Addresses and ports in network order.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Event {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC.
    pub time_ns: u64,
    pub ifindex: u32,
    pub len: u32,
    pub saddr: u32,
    pub daddr: u32,
    /// A flow's backend; 0 for a drop.
    pub backend: u32,
    pub sport: u16,
    pub dport: u16,
    /// A drop's `enum md_reason`; 0 for a flow.
    pub reason: u16,
    /// `enum md_dir`, or [`DIR_UNKNOWN`].
    pub dir: u8,
    pub proto: u8,
    /// [`TYPE_DROP`] or [`TYPE_FLOW`].
    pub kind: u8,
    pub pad: [u8; 3],
}

impl Event {
    /// An event read from the ring buffer; None if the record is shorter than an event.
    pub fn from_bytes(bytes: &[u8]) -> Option<Event> {
        let bytes = bytes.get(..size_of::<Event>())?;
        let u16_at = |at: usize| u16::from_ne_bytes([bytes[at], bytes[at + 1]]);
        let u32_at = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        Some(Event {
            time_ns: u64::from_ne_bytes(bytes[0..8].try_into().expect("8 bytes")),
            ifindex: u32_at(8),
            len: u32_at(12),
            saddr: u32_at(16),
            daddr: u32_at(20),
            backend: u32_at(24),
            sport: u16_at(28),
            dport: u16_at(30),
            reason: u16_at(32),
            dir: bytes[34],
            proto: bytes[35],
            kind: bytes[36],
            pad: [bytes[37], bytes[38], bytes[39]],
        })
    }
}

/// Mirrors `struct md_event_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventConfig {
    /// Bits [`TYPE_DROP`], [`TYPE_FLOW`].
    pub mask: u32,
    pub pad: u32,
    /// Credit one event costs, in ns: 1e9 / (events per second per CPU).
    pub interval_ns: u64,
    /// Most credit a CPU saves up, in ns.
    pub burst_ns: u64,
}

/// Mirrors `struct md_event_bucket`, one per CPU and type.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventBucket {
    pub last_ns: u64,
    pub credit_ns: u64,
    pub emitted: u64,
    pub suppressed: u64,
    pub lost: u64,
}

// SAFETY: repr(C), integers and byte arrays only, explicit padding: every bit pattern is valid.
#[allow(unsafe_code)]
unsafe impl aya::Pod for Event {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for EventConfig {}
#[allow(unsafe_code)]
unsafe impl aya::Pod for EventBucket {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_the_kernel_writes() {
        let event = Event {
            time_ns: 0x0102_0304_0506_0708,
            ifindex: 7,
            len: 98,
            saddr: u32::from_ne_bytes([10, 0, 0, 2]),
            daddr: u32::from_ne_bytes([10, 1, 0, 3]),
            backend: 0,
            sport: 0x1234,
            dport: 0x5678,
            reason: 131,
            dir: 0,
            proto: 1,
            kind: TYPE_DROP,
            pad: [0; 3],
        };
        let mut bytes = Vec::new();
        bytes.extend(event.time_ns.to_ne_bytes());
        for word in [event.ifindex, event.len, event.saddr, event.daddr, event.backend] {
            bytes.extend(word.to_ne_bytes());
        }
        for half in [event.sport, event.dport, event.reason] {
            bytes.extend(half.to_ne_bytes());
        }
        bytes.extend([event.dir, event.proto, event.kind, 0, 0, 0]);
        assert_eq!(bytes.len(), size_of::<Event>());
        assert_eq!(Event::from_bytes(&bytes), Some(event));
        assert_eq!(Event::from_bytes(&bytes[..39]), None);
    }
}
