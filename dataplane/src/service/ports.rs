//! Published ports: what a user writes (`--publish`, Docker's short and long syntax, ranges), the
//! typed value it becomes where a request enters ([`PublishSpec`], [`UnpublishSpec`]), which
//! service holds each port ([`port_claims`]), and the ports no service may publish because
//! meshd itself uses them.
//!
//! | meshd `--publish`                                   | Docker `--publish`                 |
//! |-----------------------------------------------------|------------------------------------|
//! | `8080:80`, `8080:80/udp`                            | the same                           |
//! | `30000-30010:30000-30010[/udp]`                     | the same                           |
//! | `published=8080,target=80[,protocol=..][,mode=..]`  | the same                           |
//! | `...,address=10.0.0.2` or `address=10.0.0.0/24`     | none (moby#26696)                  |
//!
//! Not taken: a target alone (`80`, Docker picks a free published port), a published range to
//! one target (`8000-8010:80`, Docker picks one), `IP:PUBLISHED:TARGET` (`docker run` only).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::error::ServiceError;
use crate::state::{
    ClusterState, EndpointMode, Protocol, PublishMode, PublishedPort, Version, MAX_PUBLISHED_PORTS,
};

/// One `--publish`, parsed and checked: a port or range, its protocol, mode and address. It is
/// a string on the API's wire (what meshctl and Docker users write), decoded with
/// [`parse_publish`], so nothing past the API's decoder sees unchecked text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublishSpec(pub PublishedPort);

impl FromStr for PublishSpec {
    type Err = ServiceError;

    fn from_str(text: &str) -> Result<Self, ServiceError> {
        parse_publish(text).map(PublishSpec)
    }
}

impl TryFrom<String> for PublishSpec {
    type Error = ServiceError;

    fn try_from(text: String) -> Result<Self, ServiceError> {
        text.parse()
    }
}

impl From<PublishSpec> for String {
    fn from(spec: PublishSpec) -> String {
        spec.0.to_string()
    }
}

impl fmt::Display for PublishSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One `--publish-rm`: the published port or range to stop, with its protocol, and (optional)
/// the target and address it must have. Short `PUBLISHED[-END][:TARGET[-END]][/PROTO]` or long
/// `published=..[,target=..][,protocol=..][,address=..]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UnpublishSpec {
    pub published: u16,
    pub count: u16,
    pub protocol: Protocol,
    pub target: Option<u16>,
    pub address: Option<ipnet::Ipv4Net>,
}

impl UnpublishSpec {
    /// Whether `port` (one of the service's entries) is the one named.
    pub fn matches(&self, port: &PublishedPort) -> bool {
        port.published == self.published
            && port.count.max(1) == self.count
            && port.protocol == self.protocol
            && self.target.is_none_or(|t| t == port.target)
            && self.address.is_none_or(|a| Some(a) == port.address)
    }
}

impl FromStr for UnpublishSpec {
    type Err = ServiceError;

    fn from_str(text: &str) -> Result<Self, ServiceError> {
        let bad = |why: &str| ServiceError::UnpublishSyntax(shown(text), why.to_string());
        let fields = if text.contains('=') {
            let fields = long_fields(text).map_err(|why| bad(&why))?;
            if fields.mode.is_some() {
                return Err(bad("mode is not part of a port's name: leave it out"));
            }
            fields
        } else {
            short_fields(text, true).map_err(|why| bad(&why))?
        };
        let (published, count) = fields.published.ok_or_else(|| bad("published= is required"))?;
        if let Some((_, target_count)) = fields.target {
            if target_count != count {
                return Err(bad("the published and target ranges differ in length"));
            }
        }
        Ok(UnpublishSpec {
            published,
            count,
            protocol: fields.protocol.unwrap_or(Protocol::Tcp),
            target: fields.target.map(|(t, _)| t),
            address: fields.address,
        })
    }
}

impl TryFrom<String> for UnpublishSpec {
    type Error = ServiceError;

    fn try_from(text: String) -> Result<Self, ServiceError> {
        text.parse()
    }
}

impl From<UnpublishSpec> for String {
    fn from(spec: UnpublishSpec) -> String {
        spec.to_string()
    }
}

impl fmt::Display for UnpublishSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "published={}", self.published)?;
        if self.count > 1 {
            write!(f, "-{}", u32::from(self.published) + u32::from(self.count) - 1)?;
        }
        if let Some(target) = self.target {
            write!(f, ",target={target}")?;
            if self.count > 1 {
                write!(f, "-{}", u32::from(target) + u32::from(self.count) - 1)?;
            }
        }
        write!(f, ",protocol={}", self.protocol)?;
        if let Some(address) = self.address {
            write!(f, ",address={address}")?;
        }
        Ok(())
    }
}

/// The fields of either syntax, before the rules that join them.
#[derive(Default)]
struct Fields {
    published: Option<(u16, u16)>,
    target: Option<(u16, u16)>,
    protocol: Option<Protocol>,
    mode: Option<PublishMode>,
    address: Option<ipnet::Ipv4Net>,
}

/// Parses `--publish`: `PUBLISHED[-END]:TARGET[-END][/tcp|/udp]` (TCP when no protocol is
/// given, as in Swarm) or `published=..,target=..[,protocol=tcp|udp][,mode=ingress|host]
/// [,address=IP|CIDR]`. A range publishes each port to the target at the same offset: both
/// ranges have the same length, at most [`MAX_PUBLISHED_PORTS`].
pub fn parse_publish(text: &str) -> Result<PublishedPort, ServiceError> {
    let bad = |why: &str| ServiceError::PublishSyntax(shown(text), why.to_string());
    let fields = if text.contains('=') {
        long_fields(text).map_err(|why| bad(&why))?
    } else {
        short_fields(text, false).map_err(|why| bad(&why))?
    };
    let (published, count) = fields
        .published
        .ok_or_else(|| bad("published= is required (meshd does not pick a free port for you)"))?;
    let (target, target_count) = fields.target.ok_or_else(|| bad("target= is required"))?;
    if count != target_count {
        return Err(bad(&format!(
            "the published range has {count} ports and the target range {target_count}: they must match"
        )));
    }
    Ok(PublishedPort {
        published,
        target,
        protocol: fields.protocol.unwrap_or(Protocol::Tcp),
        count,
        mode: fields.mode.unwrap_or_default(),
        address: fields.address,
    })
}

/// `PUBLISHED[-END][:TARGET[-END]][/PROTO]`; the target is optional only for `--publish-rm`.
fn short_fields(text: &str, target_optional: bool) -> Result<Fields, String> {
    let (ports, protocol) = match text.rsplit_once('/') {
        None => (text, None),
        Some((ports, proto)) => (ports, Some(protocol(proto)?)),
    };
    let (published, target) = match ports.split_once(':') {
        Some((published, target)) => (published, Some(target)),
        None if target_optional => (ports, None),
        None => return Err("use PUBLISHED:TARGET (meshd does not pick a free published port for you)".into()),
    };
    if target.is_some_and(|t| t.contains(':')) {
        return Err("IP:PUBLISHED:TARGET is not taken: use the long syntax's address=".into());
    }
    Ok(Fields {
        published: Some(range(published)?),
        target: target.map(range).transpose()?,
        protocol,
        ..Fields::default()
    })
}

/// `key=value,...` with Docker's keys; each at most once.
fn long_fields(text: &str) -> Result<Fields, String> {
    let mut fields = Fields::default();
    let mut seen: Vec<&str> = Vec::new();
    for pair in text.split(',') {
        let (key, value) = pair.split_once('=').ok_or_else(|| format!("{pair:?} is not KEY=VALUE"))?;
        if seen.contains(&key) {
            return Err(format!("{key}= is given twice"));
        }
        seen.push(key);
        match key {
            "published" => fields.published = Some(range(value)?),
            "target" => fields.target = Some(range(value)?),
            "protocol" => fields.protocol = Some(protocol(value)?),
            "mode" => {
                fields.mode = Some(match value {
                    "ingress" => PublishMode::Ingress,
                    "host" => PublishMode::Host,
                    _ => return Err(format!("mode={value:?}: use ingress or host")),
                })
            }
            "address" => fields.address = Some(address(value)?),
            _ => {
                return Err(format!("unknown key {key:?}: use published, target, protocol, mode and address"))
            }
        }
    }
    Ok(fields)
}

fn protocol(text: &str) -> Result<Protocol, String> {
    match text {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        _ => Err(format!("protocol {text:?}: meshd publishes tcp and udp")),
    }
}

/// `PORT` or `FIRST-LAST` (1-65535, FIRST <= LAST, at most MAX_PUBLISHED_PORTS): (first, count).
fn range(text: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| {
        p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("{p:?} is not a port (1-65535)"))
    };
    let (first, last) = match text.split_once('-') {
        None => (port(text)?, port(text)?),
        Some((first, last)) => (port(first)?, port(last)?),
    };
    if last < first {
        return Err(format!("range {text:?} ends before it starts"));
    }
    let count = usize::from(last - first) + 1;
    if count > MAX_PUBLISHED_PORTS {
        return Err(format!("range {text:?} has {count} ports: at most {MAX_PUBLISHED_PORTS} per service"));
    }
    Ok((first, count as u16))
}

/// `address=`: an IPv4 address (exactly that node address) or a network (every node address in
/// it); host bits in a network are refused, as a likely typo.
fn address(text: &str) -> Result<ipnet::Ipv4Net, String> {
    if let Ok(addr) = text.parse::<Ipv4Addr>() {
        return Ok(ipnet::Ipv4Net::from(addr));
    }
    let net: ipnet::Ipv4Net = text
        .parse()
        .map_err(|_| format!("address {text:?}: use an IPv4 address or CIDR (IPv6 is not served)"))?;
    if net.trunc() != net {
        return Err(format!("address {text:?} has host bits: did you mean {}?", net.trunc()));
    }
    Ok(net)
}

fn shown(text: &str) -> String {
    text.chars().take(120).collect()
}

/// One service's published entry as the cluster serves it: `held_by` names the service whose
/// earlier claim overlaps it (then this one is shown but not served).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub service: String,
    pub port: PublishedPort,
    pub held_by: Option<String>,
}

/// Every vip service's published entries, earliest claim (by state version) first. Two services
/// that published overlapping ports concurrently on two managers' old states settle on the same
/// owner everywhere: the earlier one is served, the later one's entry is held (the managers'
/// `service_fits` refuses such a pair, so this only matters for a state from before it).
pub fn port_claims(state: &ClusterState) -> Vec<Claim> {
    let mut services: Vec<(Version, &String, &Vec<PublishedPort>)> = state
        .services
        .entries()
        .filter_map(|(name, entry)| {
            let record = entry.value.as_ref()?;
            (record.mode == EndpointMode::Vip && !record.ports.is_empty()).then_some((
                entry.version,
                name,
                &record.ports,
            ))
        })
        .collect();
    services.sort();
    // Served entries by (protocol, first port); an entry spans at most MAX_PUBLISHED_PORTS, so
    // the ones that can overlap [a, b] start in [a - MAX + 1, b].
    let mut served: BTreeMap<(Protocol, u16), Vec<(PublishedPort, String)>> = BTreeMap::new();
    let mut out = Vec::new();
    for (_, name, ports) in services {
        for port in ports {
            let from = port.published.saturating_sub(MAX_PUBLISHED_PORTS as u16 - 1);
            let last = port.last().min(65535) as u16;
            let held_by = served
                .range((port.protocol, from)..=(port.protocol, last))
                .flat_map(|(_, v)| v)
                .find(|(other, owner)| owner != name && other.conflicts(port))
                .map(|(_, owner)| owner.clone());
            if held_by.is_none() {
                served.entry((port.protocol, port.published)).or_default().push((*port, name.clone()));
            }
            out.push(Claim { service: name.clone(), port: *port, held_by });
        }
    }
    out
}

/// Every served (port, protocol), expanded from ranges, and a service serving it (the earliest
/// claim where services share a port on addresses apart): the node's firewall and reserved
/// ports, and the per-port flow metrics.
pub fn port_owners(state: &ClusterState) -> BTreeMap<(u16, Protocol), String> {
    let mut out = BTreeMap::new();
    for claim in port_claims(state).into_iter().filter(|c| c.held_by.is_none()) {
        for (published, _) in claim.port.pairs() {
            out.entry((published, claim.port.protocol)).or_insert_with(|| claim.service.clone());
        }
    }
    out
}

pub use crate::state::validate::meshd_ports;

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::identity::NodeId;
    use crate::state::{Change, Delta, NodeRecord};

    fn net(text: &str) -> Option<ipnet::Ipv4Net> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn short_and_long_syntax_and_ranges_parse() {
        let p = |text: &str| parse_publish(text).unwrap();
        assert_eq!(p("8080:80"), PublishedPort::single(8080, 80, Protocol::Tcp));
        assert_eq!(p("53:5353/udp"), PublishedPort::single(53, 5353, Protocol::Udp));
        assert_eq!(p("published=8080,target=80"), p("8080:80"));
        assert_eq!(p("target=80,published=8080,protocol=tcp,mode=ingress"), p("8080:80"));
        let range = p("30000-30019:40000-40019/udp");
        assert_eq!((range.published, range.target, range.count), (30000, 40000, 20));
        assert_eq!(range.pairs().nth(19), Some((30019, 40019)));
        assert_eq!(p("published=30000-30019,target=40000-40019,protocol=udp"), range);
        let host = p("published=8080,target=80,mode=host,address=10.0.0.7");
        assert_eq!((host.mode, host.address), (PublishMode::Host, net("10.0.0.7/32")));
        assert_eq!(p("published=8080,target=80,address=10.0.0.0/24").address, net("10.0.0.0/24"));
        // Display is parseable and gives the same value back.
        for text in [
            "8080:80/tcp",
            "30000-30019:40000-40019/udp",
            "published=8080,target=80,mode=host,address=127.0.0.1",
        ] {
            assert_eq!(p(&p(text).to_string()), p(text), "{text}");
        }
        assert_eq!(p("8080:80").to_string(), "8080:80/tcp");
        assert_eq!(host.to_string(), "published=8080,target=80,protocol=tcp,mode=host,address=10.0.0.7");
        // The API's wire form is the text.
        let spec: PublishSpec = serde_json::from_str("\"30000-30001:80-81\"").unwrap();
        assert_eq!(serde_json::to_string(&spec).unwrap(), "\"30000-30001:80-81/tcp\"");
    }

    #[test]
    fn bad_publish_says_why() {
        let cases = [
            ("80", "PUBLISHED:TARGET"),
            ("0:80", "not a port"),
            ("80:0", "not a port"),
            ("x:80", "not a port"),
            ("70000:80", "not a port"),
            (":80", "not a port"),
            ("80:", "not a port"),
            ("80:80/sctp", "tcp and udp"),
            ("80:80/", "tcp and udp"),
            ("1:2:3", "address="),
            ("30000-30010:80", "must match"),
            ("30000-30010:80-81", "must match"),
            ("30010-30000:80", "ends before"),
            ("1-2000:1-2000", "at most 1024"),
            ("published=80", "target= is required"),
            ("target=80", "published= is required"),
            ("published=80,target=80,mode=global", "ingress or host"),
            ("published=80,target=80,address=10.0.0.1/24", "did you mean 10.0.0.0/24"),
            ("published=80,target=80,address=fd00::1", "IPv4"),
            ("published=80,target=80,published=81", "twice"),
            ("published=80,target=80,colour=red", "unknown key"),
            ("published=80,target", "KEY=VALUE"),
        ];
        for (text, why) in cases {
            let err = parse_publish(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
        assert!(serde_json::from_str::<PublishSpec>("\"80\"").is_err());
    }

    #[test]
    fn unpublish_names_a_port_or_range() {
        let u = |text: &str| text.parse::<UnpublishSpec>().unwrap();
        let port = parse_publish("8080:80").unwrap();
        assert!(u("8080").matches(&port));
        assert!(u("8080:80/tcp").matches(&port));
        assert!(u("published=8080,target=80").matches(&port));
        assert!(!u("8080:81").matches(&port));
        assert!(!u("8080/udp").matches(&port));
        let range = parse_publish("30000-30019:30000-30019").unwrap();
        assert!(u("30000-30019").matches(&range));
        assert!(!u("30000").matches(&range), "a range goes whole");
        for bad in ["", "x", "0", "8080:", "8080/sctp", "1:2:3", "published=1,mode=host", "8080-8081:80"] {
            assert!(bad.parse::<UnpublishSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_decide_which_entries_conflict() {
        let p = |text: &str| parse_publish(text).unwrap();
        let on = |addr: &str| p(&format!("published=8080,target=80,address={addr}"));
        assert!(on("10.0.0.1").conflicts(&on("10.0.0.1")));
        assert!(!on("10.0.0.1").conflicts(&on("10.0.0.2")));
        assert!(on("10.0.0.0/24").conflicts(&on("10.0.0.9")));
        assert!(!on("10.0.0.0/25").conflicts(&on("10.0.0.128/25")));
        assert!(p("8080:80").conflicts(&on("10.0.0.1")), "no address is every address");
        assert!(!p("8080:80").conflicts(&p("8080:80/udp")));
        assert!(p("8000-8100:8000-8100").conflicts(&p("8080:80")));
        assert!(!p("8000-8079:8000-8079").conflicts(&p("8080:80")));
        assert!(on("10.0.0.0/24").answers_on("10.0.0.5".parse().unwrap()));
        assert!(!on("10.0.0.0/24").answers_on("10.0.1.5".parse().unwrap()));
    }

    #[test]
    fn every_nodes_gossip_port_and_vxlan_are_meshds_own() {
        let mut state = ClusterState::default();
        for (n, port) in [(1u8, 7946u16), (2, 8000)] {
            let id = NodeId::from_bytes([n; 16]);
            let record = NodeRecord {
                name: format!("n{n}"),
                gossip_addr: format!("10.0.0.{n}:{port}").parse().unwrap(),
                left: false,
                departed: None,
                cert: Default::default(),
                founder: None,
                keyring: Default::default(),
                wireguard: None,
            };
            let delta = Delta {
                version: Version { lamport: 1, node: id },
                change: Change::Node { id, record: Some(record) },
            };
            state.apply(delta, Instant::now()).unwrap();
        }
        assert_eq!(
            meshd_ports(&state, 4789),
            [
                (4789, Protocol::Udp),
                (7946, Protocol::Tcp),
                (7946, Protocol::Udp),
                (8000, Protocol::Tcp),
                (8000, Protocol::Udp)
            ]
        );
    }
}
