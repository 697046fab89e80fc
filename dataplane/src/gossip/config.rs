//! Gossip timings. Defaults aim at detecting a dead node in about two seconds on a LAN
//! (memberlist's LAN defaults take about five) without false positives on a busy machine: the
//! probe timeout and the suspicion time leave a loaded scheduler hundreds of milliseconds.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use super::crypto::OVERHEAD;

#[derive(Debug, Clone)]
pub struct GossipConfig {
    /// How often each node probes one random member.
    pub probe_interval: Duration,
    /// How long a direct probe may take before indirect probes are sent.
    pub probe_timeout: Duration,
    /// How long a member stays suspect before it is declared down.
    pub suspect_timeout: Duration,
    /// How often pending updates are gossiped, and to how many members.
    pub gossip_interval: Duration,
    pub gossip_fanout: usize,
    /// How often a full state exchange runs with one random member over TCP.
    pub push_pull_interval: Duration,
    /// How often a node with no live members announces itself to every known peer (restarts,
    /// partitions), and how often down members are re-contacted.
    pub rejoin_interval: Duration,
    /// How long tombstones, departed nodes and long-dead nodes are kept before being forgotten.
    pub reap_after: Duration,
    /// Frames whose timestamp is further than this from the local clock are dropped.
    pub replay_window: Duration,
    /// Largest sealed datagram sent; keeps every gossip packet inside a 1500-byte underlay MTU.
    pub max_datagram: usize,
    /// How many times each node passes on each update (membership or state delta). In
    /// infection-style dissemination a node misses an update with probability about
    /// e^-retransmits whatever the cluster size: memberlist's 4 x log10(n+1) (4 to 5 for small
    /// clusters) leaves about one node in fifty waiting for the next push-pull, 12 about one in
    /// 160,000. Updates are small and ride on messages sent anyway, so the extra cost is low.
    pub retransmits: u8,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            probe_interval: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(200),
            suspect_timeout: Duration::from_millis(1000),
            gossip_interval: Duration::from_millis(100),
            gossip_fanout: 3,
            push_pull_interval: Duration::from_secs(30),
            rejoin_interval: Duration::from_secs(2),
            reap_after: Duration::from_secs(24 * 3600),
            replay_window: Duration::from_secs(30),
            max_datagram: 1400,
            retransmits: 12,
        }
    }
}

impl GossipConfig {
    /// foca's configuration derived from ours.
    pub fn foca(&self, expected_cluster_size: u32) -> foca::Config {
        let size = NonZeroU32::new(expected_cluster_size.max(1)).expect("non-zero");
        let mut config = foca::Config::new_lan(size);
        config.probe_period = self.probe_interval;
        config.probe_rtt = self.probe_timeout;
        config.suspect_to_down_after = self.suspect_timeout;
        config.remove_down_after = Some(self.reap_after);
        config.max_packet_size =
            NonZeroUsize::new(self.max_datagram - OVERHEAD).expect("max_datagram > overhead");
        config.notify_down_members = true;
        config.max_transmissions = std::num::NonZeroU8::new(self.retransmits.max(1)).expect("non-zero");
        config.periodic_gossip = Some(foca::PeriodicParams {
            frequency: self.gossip_interval,
            num_members: NonZeroUsize::new(self.gossip_fanout.max(1)).expect("non-zero"),
        });
        config.periodic_announce = Some(foca::PeriodicParams {
            frequency: self.push_pull_interval,
            num_members: NonZeroUsize::new(1).expect("non-zero"),
        });
        config.periodic_announce_to_down_members = Some(foca::PeriodicParams {
            frequency: self.rejoin_interval,
            num_members: NonZeroUsize::new(2).expect("non-zero"),
        });
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foca_packets_fit_the_datagram_budget() {
        let config = GossipConfig::default();
        let foca = config.foca(5);
        assert_eq!(foca.max_packet_size.get() + OVERHEAD, config.max_datagram);
        assert!(config.max_datagram + 28 <= 1500, "IPv4 + UDP headers + datagram fit the MTU");
    }
}
