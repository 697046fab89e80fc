//! `/metrics`: everything meshd counts, in the Prometheus text format (OpenMetrics, through the
//! `prometheus-client` crate), gathered at scrape time from where it is already counted: the
//! kernel's verdict and event maps, the gossip layer's atomics, the embedded DNS's atomics, the
//! reconcile loop's histograms, the cluster snapshot and the map walk (cached, see
//! `bpf::pressure`). Nothing here runs unless something scrapes.
//!
//! Names: one prefix (`meshd_`), base units (seconds, bytes), `_total` on counters (added by the
//! encoder), and no label whose values grow with traffic or with containers: verdicts are summed
//! over interfaces (reason and direction only, as Cilium's `drop_count_total`); services are
//! labels (their number is the operator's choice, as in Swarm's own metrics).

use std::collections::{BTreeMap, HashMap};

use meshd_dns::Outcome;
use meshd_ebpf::net_order;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::Sources;
use crate::api::views;
use crate::state::Protocol;
use crate::util::histogram::HistogramSnapshot;

type Labels = Vec<(&'static str, String)>;

/// One metric family: name (without `_total`), help, and its samples.
#[derive(Debug)]
enum Family {
    Counter(&'static str, &'static str, Vec<(Labels, u64)>),
    Gauge(&'static str, &'static str, Vec<(Labels, f64)>),
    Histogram(&'static str, &'static str, HistogramSnapshot),
}

/// Everything one scrape shows, gathered first (async), then encoded (sync).
#[derive(Debug, Default)]
pub struct Scrape {
    families: Vec<Family>,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.families {
            match family {
                Family::Counter(name, help, samples) => {
                    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                    match samples.as_slice() {
                        // One sample without labels: `name 3`, not `name{} 3`.
                        [(labels, value)] if labels.is_empty() => ConstCounter::new(*value).encode(metric)?,
                        _ => {
                            for (labels, value) in samples {
                                ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
                            }
                        }
                    }
                }
                Family::Gauge(name, help, samples) => {
                    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                    match samples.as_slice() {
                        [(labels, value)] if labels.is_empty() => ConstGauge::new(*value).encode(metric)?,
                        _ => {
                            for (labels, value) in samples {
                                ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
                            }
                        }
                    }
                }
                Family::Histogram(name, help, h) => {
                    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
                    // The encoder sums the buckets itself and writes f64::MAX as +Inf.
                    let mut below = 0;
                    let buckets: Vec<(f64, u64)> = h
                        .buckets
                        .iter()
                        .map(|(bound, cumulative)| {
                            let own = cumulative.saturating_sub(below);
                            below = *cumulative;
                            (if bound.is_infinite() { f64::MAX } else { *bound }, own)
                        })
                        .collect();
                    metric.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        h.sum, h.count, &buckets, None,
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Verdict counters summed over interfaces, kept monotonic: the kernel map is an LRU keyed by
/// interface, so the counters of a detached container's veth vanish; a plain sum would go
/// backwards (a false counter reset). Each scrape adds what every (interface, reason,
/// direction) gained since the last one.
#[derive(Debug, Default)]
pub struct VerdictTotals {
    last: HashMap<(String, String, String), (u64, u64)>,
    totals: BTreeMap<(String, String), (u64, u64)>,
}

impl VerdictTotals {
    /// Takes one reading: (interface, direction, reason, packets, bytes) rows (the reason may
    /// carry more, e.g. the verdict: it is a key only).
    pub fn update(&mut self, rows: impl IntoIterator<Item = (String, String, String, u64, u64)>) {
        let mut seen = HashMap::new();
        for (interface, direction, reason, packets, bytes) in rows {
            let key = (interface, direction.clone(), reason.clone());
            let (old_packets, old_bytes) = self.last.get(&key).copied().unwrap_or((0, 0));
            // Smaller than before: the entry was evicted and made anew; all of it is new.
            let gained = |now: u64, old: u64| if now >= old { now - old } else { now };
            let total = self.totals.entry((reason, direction)).or_insert((0, 0));
            total.0 += gained(packets, old_packets);
            total.1 += gained(bytes, old_bytes);
            seen.insert(key, (packets, bytes));
        }
        self.last = seen;
    }

    /// ((reason, direction), (packets, bytes)).
    pub fn totals(&self) -> impl Iterator<Item = (&(String, String), &(u64, u64))> {
        self.totals.iter()
    }
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// The resident set size of this process, from /proc/self/status.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Sources {
    /// Gathers one scrape.
    pub async fn gather(&self) -> Scrape {
        let mut families = Vec::new();
        let snapshot = self.gossip.snapshot();

        // The datapath: every verdict by reason and direction.
        if let Ok(rows) = self.agent.counters().await {
            let mut totals = self.verdicts.lock().expect("verdict totals");
            totals.update(rows.into_iter().map(|r| {
                let verdict = if r.reason.is_drop() { "dropped" } else { "forwarded" };
                (r.interface, r.direction.to_string(), format!("{verdict} {}", r.reason), r.packets, r.bytes)
            }));
            let mut packets = Vec::new();
            let mut bytes = Vec::new();
            for ((verdict_reason, direction), (p, b)) in totals.totals() {
                let (verdict, reason) =
                    verdict_reason.split_once(' ').unwrap_or(("forwarded", verdict_reason));
                let l = labels(&[("verdict", verdict), ("reason", reason), ("direction", direction)]);
                packets.push((l.clone(), *p));
                bytes.push((l, *b));
            }
            families.push(Family::Counter(
                "meshd_datapath_packets",
                "Packets by eBPF verdict, reason and direction, summed over interfaces",
                packets,
            ));
            families.push(Family::Counter(
                "meshd_datapath_bytes",
                "Bytes (layer 2 frame length) by eBPF verdict, reason and direction",
                bytes,
            ));
        }

        // Services: backends, tracked flows, published ports.
        let services = views::services(&snapshot);
        let mut backends = Vec::new();
        for service in &services {
            backends
                .push((labels(&[("service", &service.name), ("state", "healthy")]), service.healthy as f64));
            backends.push((labels(&[("service", &service.name), ("state", "total")]), service.tasks as f64));
        }
        families.push(Family::Gauge(
            "meshd_service_backends",
            "Tasks of each service: healthy (take new flows) and total",
            backends,
        ));
        if let Ok(usage) = self.agent.map_usage(&self.usage).await {
            let vips: HashMap<u32, &str> = services
                .iter()
                .filter_map(|s| s.vip.map(|vip| (net_order::ipv4(vip), s.name.as_str())))
                .collect();
            let owners = crate::service::ports::port_owners(&snapshot.state);
            let mut via_vip: BTreeMap<&str, u64> = BTreeMap::new();
            let mut via_port: BTreeMap<(String, u16, &str), u64> = BTreeMap::new();
            for ((addr, port, proto), count) in &usage.flows {
                if let Some(service) = vips.get(addr) {
                    *via_vip.entry(service).or_default() += count;
                    continue;
                }
                let (protocol, name) = if *proto == meshd_ebpf::mesh::PROTO_UDP {
                    (Protocol::Udp, "udp")
                } else {
                    (Protocol::Tcp, "tcp")
                };
                let port = net_order::to_port(*port);
                if let Some(owner) = owners.get(&(port, protocol)) {
                    *via_port.entry((owner.clone(), port, name)).or_default() += count;
                }
            }
            families.push(Family::Gauge(
                "meshd_service_flows",
                "Flows to each service's VIP tracked by this node's conntrack (sampled every 30 s)",
                via_vip.into_iter().map(|(s, n)| (labels(&[("service", s)]), n as f64)).collect(),
            ));
            families.push(Family::Gauge(
                "meshd_published_port_flows",
                "Flows through each published port tracked by this node's conntrack (sampled every 30 s)",
                via_port
                    .into_iter()
                    .map(|((s, port, proto), n)| {
                        (
                            labels(&[("service", &s), ("port", &port.to_string()), ("protocol", proto)]),
                            n as f64,
                        )
                    })
                    .collect(),
            ));
            families.push(Family::Gauge(
                "meshd_bpf_map_pressure",
                "Fill of each eBPF map: entries / max_entries (sampled every 30 s)",
                usage
                    .maps
                    .iter()
                    .map(|m| {
                        (labels(&[("map_name", m.name)]), m.entries as f64 / f64::from(m.max_entries.max(1)))
                    })
                    .collect(),
            ));
            families.push(Family::Gauge(
                "meshd_bpf_map_entries",
                "Entries in each eBPF map (sampled every 30 s)",
                usage.maps.iter().map(|m| (labels(&[("map_name", m.name)]), m.entries as f64)).collect(),
            ));
            families.push(Family::Gauge(
                "meshd_bpf_map_walk_seconds",
                "How long the last walk of every map's keys took (the cost of the two above)",
                vec![(Vec::new(), usage.took.as_secs_f64())],
            ));
        }

        // Gossip.
        let mut messages = Vec::new();
        let mut dropped = Vec::new();
        for (name, value) in self.gossip.stats().snapshot().rows() {
            match name.strip_prefix("dropped_") {
                Some(reason) => dropped.push((labels(&[("reason", reason)]), value)),
                None => messages.push((labels(&[("event", name)]), value)),
            }
        }
        families.push(Family::Counter(
            "meshd_gossip_events",
            "Gossip traffic and outcomes (datagrams, connections, deltas, joins)",
            messages,
        ));
        families.push(Family::Counter(
            "meshd_gossip_dropped",
            "Gossip datagrams and frames dropped, by reason",
            dropped,
        ));
        let mut members: BTreeMap<String, u64> =
            ["alive", "suspect", "down", "left"].iter().map(|s| (s.to_string(), 0)).collect();
        for node in views::nodes(&snapshot) {
            *members.entry(node.status.to_string()).or_default() += 1;
        }
        families.push(Family::Gauge(
            "meshd_members",
            "Nodes this node knows, by state",
            members.into_iter().map(|(s, n)| (labels(&[("state", &s)]), n as f64)).collect(),
        ));
        // What the cluster was created with: the same on every node (a differing value would be
        // a node of another cluster scraped by mistake).
        let settings = self.gossip.settings();
        let pools: Vec<String> = settings.default_addr_pools.iter().map(|p| p.to_string()).collect();
        let mask = settings.default_addr_pool_mask_length.to_string();
        families.push(Family::Gauge(
            "meshd_data_path_port",
            "The cluster's VXLAN UDP port (--data-path-port at cluster creation)",
            vec![(Vec::new(), f64::from(settings.data_path_port))],
        ));
        families.push(Family::Gauge(
            "meshd_default_addr_pools",
            "The cluster's default address pools, one sample per pool, with the mask length of the subnets cut from them",
            pools.iter().map(|p| (labels(&[("pool", p), ("mask_length", &mask)]), 1.0)).collect(),
        ));
        // The managers' group, as this node (a manager) sees it; absent on workers.
        if let Some(status) = snapshot.state.managers.get(&snapshot.self_id) {
            families.push(Family::Gauge(
                "meshd_manager_term",
                "The managers' Raft term this manager is in (a rising term: elections)",
                vec![(Vec::new(), status.term as f64)],
            ));
            families.push(Family::Gauge(
                "meshd_manager_leader",
                "1 while this manager leads the managers' group",
                vec![(Vec::new(), f64::from(u8::from(status.leader == Some(snapshot.self_id))))],
            ));
            families.push(Family::Gauge(
                "meshd_manager_voters",
                "Voters of the managers' group as this manager sees it (a majority of them must agree)",
                vec![(Vec::new(), status.voters.len() as f64)],
            ));
        }

        // Reconcile and convergence.
        let timing = self.agent.timing();
        families.push(Family::Histogram(
            "meshd_reconcile_duration_seconds",
            "Time of each reconcile round (state -> kernel maps, nftables, routes)",
            timing.duration,
        ));
        families.push(Family::Histogram(
            "meshd_convergence_lag_seconds",
            "From a new cluster snapshot on this node to the end of the reconcile that wrote it into the kernel",
            timing.lag,
        ));
        families.push(Family::Counter(
            "meshd_reconcile_errors",
            "Reconcile rounds that failed (retried)",
            vec![(Vec::new(), timing.errors)],
        ));
        if let Some(last) = timing.last_change {
            families.push(Family::Gauge(
                "meshd_state_last_change_timestamp_seconds",
                "Unix time of the last change of the cluster state seen here (compare nodes: the one behind is the oldest)",
                vec![(Vec::new(), last)],
            ));
        }

        // DNS.
        let (dns, in_flight) = self.agent.dns();
        families.push(Family::Counter(
            "meshd_dns_queries",
            "Queries to the embedded DNS, by outcome",
            Outcome::ALL.iter().map(|o| (labels(&[("outcome", o.label())]), dns.count(*o))).collect(),
        ));
        let latency = dns.latency();
        families.push(Family::Histogram(
            "meshd_dns_query_duration_seconds",
            "Time from a query's arrival to its answer being sent",
            HistogramSnapshot { sum: latency.sum_seconds, count: latency.count, buckets: latency.buckets },
        ));
        families.push(Family::Gauge(
            "meshd_dns_forward_in_flight",
            "Queries being forwarded upstream now",
            vec![(Vec::new(), in_flight as f64)],
        ));
        families.push(Family::Counter(
            "meshd_dns_forward_busy",
            "Queries refused because too many were in flight",
            vec![(Vec::new(), dns.busy.load(std::sync::atomic::Ordering::Relaxed))],
        ));

        // The metrics listener itself.
        families.push(Family::Counter(
            "meshd_http_connections_refused",
            "Connections to --metrics-addr closed at once, by the bound they hit (total, per_source)",
            self.http.rows().iter().map(|(reason, n)| (labels(&[("reason", reason)]), *n)).collect(),
        ));

        // The monitor.
        if let Some([drops, flows]) = self.monitor.kernel_totals() {
            let mut events = Vec::new();
            for (kind, t) in [("drop", drops), ("flow", flows)] {
                for (outcome, n) in [("emitted", t.emitted), ("suppressed", t.suppressed), ("lost", t.lost)] {
                    events.push((labels(&[("type", kind), ("outcome", outcome)]), n));
                }
            }
            families.push(Family::Counter(
                "meshd_monitor_events",
                "Monitor events in the kernel: emitted, suppressed by the rate limit, lost to a full ring",
                events,
            ));
        }
        let stats = &self.monitor.stats;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        families.push(Family::Counter(
            "meshd_monitor_subscriber_dropped",
            "Events a monitor client lost because it read too slowly",
            vec![(Vec::new(), load(&stats.subscriber_dropped))],
        ));
        families.push(Family::Gauge(
            "meshd_monitor_subscribers",
            "Monitor clients connected now",
            vec![(Vec::new(), self.monitor.subscribers() as f64)],
        ));

        // The process.
        if let Some(rss) = resident_bytes() {
            families.push(Family::Gauge(
                "meshd_process_resident_memory_bytes",
                "Resident memory of the meshd process",
                vec![(Vec::new(), rss as f64)],
            ));
        }
        Scrape { families }
    }

    /// The text a scrape returns.
    pub async fn render(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.gather().await));
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
            text.clear();
        }
        text
    }
}

/// The same metrics in the classic Prometheus text format (0.0.4), for clients that do not ask
/// for OpenMetrics (curl, `promtool check metrics`, older servers): a counter family is named
/// with its `_total` in `# HELP` and `# TYPE`, and there is no `# EOF` or `# UNIT`.
pub fn to_classic(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len() + counters.len() * 12);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rest = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match rest {
            Some((head, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) { "_total" } else { "" };
                out.push_str(&format!("{head}{name}{suffix} {tail}"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_total() {
        let text = "# HELP meshd_x help.\n# TYPE meshd_x counter\nmeshd_x_total 3\n# HELP meshd_y y.\n# TYPE meshd_y gauge\nmeshd_y 1\n# EOF\n";
        assert_eq!(
            to_classic(text),
            "# HELP meshd_x_total help.\n# TYPE meshd_x_total counter\nmeshd_x_total 3\n# HELP meshd_y y.\n# TYPE meshd_y gauge\nmeshd_y 1\n"
        );
    }

    fn row(interface: &str, packets: u64) -> (String, String, String, u64, u64) {
        (interface.into(), "from-container".into(), "drop-no-endpoint".into(), packets, packets * 100)
    }

    #[test]
    fn verdict_totals_never_go_backwards() {
        let mut totals = VerdictTotals::default();
        totals.update([row("a", 5), row("b", 3)]);
        totals.update([row("a", 7)]); // b's veth is gone: its 3 stay counted
        totals.update([row("a", 2), row("b", 1)]); // a evicted and made anew; b came back
        let all: Vec<_> = totals.totals().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(*all[0].1, (5 + 3 + 2 + 2 + 1, (5 + 3 + 2 + 2 + 1) * 100));
    }

    #[test]
    fn scrape_encodes_as_openmetrics() {
        let scrape = Scrape {
            families: vec![
                Family::Counter("meshd_x", "help", vec![(labels(&[("reason", "a")]), 3)]),
                Family::Gauge("meshd_y", "help", vec![(Vec::new(), 0.5)]),
                Family::Histogram(
                    "meshd_z_seconds",
                    "help",
                    HistogramSnapshot { sum: 1.5, count: 2, buckets: vec![(0.1, 1), (f64::INFINITY, 2)] },
                ),
            ],
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(scrape));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("meshd_x_total{reason=\"a\"} 3"), "{text}");
        assert!(text.contains("\nmeshd_y 0.5\n"), "{text}");
        assert!(text.contains("meshd_z_seconds_bucket{le=\"+Inf\"} 2"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
