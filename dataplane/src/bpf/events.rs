//! The monitor's maps (`include/abi/events.h`): the ring buffer the programs write drop and flow
//! events into, the switch and rate limit in front of it, and the per-CPU counters of what was
//! sent, suppressed by the rate limit, or lost to a full ring.
//!
//! [`Datapath::take_events`] moves the maps out of the loaded objects (the programs keep using
//! them), so the reader task owns the ring and no lock of the agent sits on the event path.

use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use meshd_ebpf::events::{
    EventBucket, EventConfig, BUCKETS_MAX, BUCKET_MAP, CONFIG_MAP, RING_MAP, TYPE_DROP, TYPE_FLOW,
};
use meshd_ebpf::VETH;

use super::{BpfError, Datapath};

/// The ring buffer, for the one task that reads it.
pub struct EventRing {
    pub ring: RingBuf<MapData>,
}

/// The switch, the rate limit and the counters.
pub struct EventControl {
    config: Array<MapData, EventConfig>,
    buckets: PerCpuArray<MapData, EventBucket>,
}

/// What happened to the events of one type, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventTotals {
    pub emitted: u64,
    pub suppressed: u64,
    pub lost: u64,
}

/// Which event types the programs report, and how many per second each CPU may send of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSettings {
    pub drops: bool,
    pub flows: bool,
    /// Events per second per CPU and type (at least 1).
    pub rate: u32,
    /// Events a CPU may send at once after a quiet time.
    pub burst: u32,
}

impl EventSettings {
    fn to_config(self) -> EventConfig {
        let interval_ns = 1_000_000_000 / u64::from(self.rate.max(1));
        let mask = if self.drops { u32::from(TYPE_DROP) } else { 0 }
            | if self.flows { u32::from(TYPE_FLOW) } else { 0 };
        EventConfig { mask, pad: 0, interval_ns, burst_ns: interval_ns * u64::from(self.burst.max(1)) }
    }
}

impl Datapath {
    /// Moves the monitor's maps out of the loaded objects. Call once, before the agent starts.
    pub fn take_events(&mut self) -> Result<(EventRing, EventControl), BpfError> {
        let mut take = |name: &'static str| {
            self.veth.take_map(name).ok_or(BpfError::MissingMap { object: VETH.name, map: name })
        };
        let ring = take(RING_MAP)?;
        let config = take(CONFIG_MAP)?;
        let buckets = take(BUCKET_MAP)?;
        let ring = RingBuf::try_from(ring)
            .map_err(|source| BpfError::Map { map: RING_MAP, source: Box::new(source) })?;
        let config = Array::try_from(config)
            .map_err(|source| BpfError::Map { map: CONFIG_MAP, source: Box::new(source) })?;
        let buckets = PerCpuArray::try_from(buckets)
            .map_err(|source| BpfError::Map { map: BUCKET_MAP, source: Box::new(source) })?;
        Ok((EventRing { ring }, EventControl { config, buckets }))
    }
}

impl EventControl {
    /// Turns event types on or off and sets the rate limit; the programs see it at their next
    /// packet.
    pub fn apply(&mut self, settings: EventSettings) -> Result<(), BpfError> {
        self.config
            .set(0, settings.to_config(), 0)
            .map_err(|source| BpfError::Map { map: CONFIG_MAP, source: Box::new(source) })
    }

    /// Counters of drop events (index 0) and flow events (index 1), summed over CPUs.
    pub fn totals(&self) -> Result<[EventTotals; BUCKETS_MAX as usize], BpfError> {
        let mut out = [EventTotals::default(); BUCKETS_MAX as usize];
        for (index, total) in out.iter_mut().enumerate() {
            let per_cpu = self
                .buckets
                .get(&(index as u32), 0)
                .map_err(|source| BpfError::Map { map: BUCKET_MAP, source: Box::new(source) })?;
            for bucket in per_cpu.iter() {
                total.emitted = total.emitted.wrapping_add(bucket.emitted);
                total.suppressed = total.suppressed.wrapping_add(bucket.suppressed);
                total.lost = total.lost.wrapping_add(bucket.lost);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_a_token_bucket_in_nanoseconds() {
        let config = EventSettings { drops: true, flows: false, rate: 1000, burst: 50 }.to_config();
        assert_eq!(config.mask, 1);
        assert_eq!(config.interval_ns, 1_000_000);
        assert_eq!(config.burst_ns, 50_000_000);
        let config = EventSettings { drops: true, flows: true, rate: 0, burst: 0 }.to_config();
        assert_eq!((config.mask, config.interval_ns, config.burst_ns), (3, 1_000_000_000, 1_000_000_000));
    }
}
