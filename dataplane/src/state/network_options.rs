//! A network's options (`network create --gateway/--ip-range/--aux-address/--internal/--opt
//! mtu=N/--label`, Docker's `docker network create` equivalents), and the one rule that says
//! what an address of a network is for: [`address_use`]. The node handing out addresses
//! (`network::ipam`), the managers granting blocks (`manager::machine`) and every node checking
//! a claim at receipt (`state::claims`) all ask it, so they can never disagree.
//!
//! [`NetworkOptions::check`] is what a well-formed set of options is, against its subnet: the API
//! checks it before anything is created, and every node checks it again on a merged record.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Smallest container MTU: IPv4's minimum datagram every host must accept (RFC 791).
pub const MIN_MTU: u32 = 576;
/// Bytes WireGuard adds over an IPv4 underlay: IPv4 20 + UDP 8 + WireGuard header 16 + tag 16.
/// An encrypted network's containers get the overlay MTU less this (`encryption/`).
pub const WIREGUARD_OVERHEAD: u32 = 60;
/// Bounds on what a record may carry (options come from a manager, but a record is checked by
/// every node as it merges: a bound keeps every table small).
pub const MAX_AUX_ADDRESSES: usize = 64;
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_KEY: usize = 128;
pub const MAX_LABEL_VALUE: usize = 1024;

/// What `network create` adds to a subnet. Every field is optional; the default is a network as
/// meshd made them before the options existed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkOptions {
    /// The containers' default route and the address the eBPF ARP responder stands for
    /// (`--gateway`); None: the subnet's first address.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// Where dynamic addresses come from (`--ip-range`); None: the whole subnet.
    #[serde(default)]
    pub ip_range: Option<Ipv4Net>,
    /// Addresses never handed out, by name (`--aux-address NAME=IP`).
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
    /// No route off the overlay (`--internal`): no published ports.
    #[serde(default)]
    pub internal: bool,
    /// The containers' MTU (`--opt mtu=N`, Docker's `com.docker.network.driver.mtu`); None: the
    /// node's overlay MTU (its underlay's less the VXLAN overhead).
    #[serde(default)]
    pub mtu: Option<u32>,
    /// `--label KEY=VALUE`, shown by `network inspect`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `--opt encrypted` (Docker's `-o encrypted`): every packet of the network that leaves a
    /// node travels inside WireGuard to the peer node, or is dropped (`encryption/`). Always
    /// written: the managers' log and gossip use postcard, which has no field names to skip by.
    #[serde(default)]
    pub encrypted: bool,
}

/// Why an address of a network is not for dynamic handing out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    Network,
    Gateway,
    Broadcast,
    Aux,
}

/// What an address is for in a network: the single answer [`address_use`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressUse {
    /// Not in the subnet.
    Outside,
    /// Never an endpoint's.
    Reserved(Reserved),
    /// In the subnet but outside `--ip-range`: only a static address may be here.
    StaticOnly,
    /// IPAM may hand it out.
    Dynamic,
}

impl fmt::Display for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reserved::Network => "the network address",
            Reserved::Gateway => "the gateway",
            Reserved::Broadcast => "the broadcast address",
            Reserved::Aux => "an auxiliary address",
        })
    }
}

/// The gateway of a network: `--gateway`, or the subnet's first address.
pub fn gateway(subnet: &Ipv4Net, options: &NetworkOptions) -> Ipv4Addr {
    options.gateway.unwrap_or_else(|| Ipv4Addr::from(u32::from(subnet.network()) + 1))
}

impl super::NetworkRecord {
    /// This network's gateway (see [`gateway`]).
    pub fn gateway(&self) -> Ipv4Addr {
        gateway(&self.subnet, &self.options)
    }

    /// The containers' MTU on a node whose overlay carries `overlay_mtu`: the network's
    /// `--opt mtu`, clamped to what the node's VXLAN carries (a node with a smaller underlay than
    /// the creating node's), or the node's overlay MTU.
    pub fn container_mtu(&self, overlay_mtu: u32) -> u32 {
        // An encrypted network's VXLAN packets cross WireGuard too: its header comes off.
        let overlay_mtu = if self.options.encrypted {
            overlay_mtu.saturating_sub(WIREGUARD_OVERHEAD).max(MIN_MTU)
        } else {
            overlay_mtu
        };
        self.options.mtu.map_or(overlay_mtu, |mtu| mtu.min(overlay_mtu))
    }

    /// What `address` is for in this network (see [`address_use`]).
    pub fn address_use(&self, address: Ipv4Addr) -> AddressUse {
        address_use(&self.subnet, &self.options, address)
    }
}

/// What `address` is for in the network on `subnet` with `options`.
pub fn address_use(subnet: &Ipv4Net, options: &NetworkOptions, address: Ipv4Addr) -> AddressUse {
    if !subnet.contains(&address) {
        return AddressUse::Outside;
    }
    if address == subnet.network() {
        return AddressUse::Reserved(Reserved::Network);
    }
    if address == subnet.broadcast() {
        return AddressUse::Reserved(Reserved::Broadcast);
    }
    if address == gateway(subnet, options) {
        return AddressUse::Reserved(Reserved::Gateway);
    }
    if options.aux_addresses.values().any(|a| *a == address) {
        return AddressUse::Reserved(Reserved::Aux);
    }
    match options.ip_range {
        Some(range) if !range.contains(&address) => AddressUse::StaticOnly,
        _ => AddressUse::Dynamic,
    }
}

impl NetworkOptions {
    /// Whether these options fit `subnet`: the gateway, the range and the aux addresses inside
    /// it, none of them the network or broadcast address, no aux address the gateway, a range
    /// with at least one dynamic address, an MTU of at least [`MIN_MTU`], labels well formed.
    /// The upper MTU bound depends on the node's underlay and is checked where one is known.
    pub fn check(&self, subnet: &Ipv4Net) -> Result<(), String> {
        let edge = |a: Ipv4Addr| a == subnet.network() || a == subnet.broadcast();
        if let Some(gw) = self.gateway {
            if !subnet.contains(&gw) {
                return Err(format!("--gateway {gw} is outside subnet {subnet}"));
            }
            if edge(gw) {
                return Err(format!(
                    "--gateway {gw} is the network or broadcast address of {subnet}; choose a host address"
                ));
            }
        }
        if let Some(range) = self.ip_range {
            if range != range.trunc() {
                return Err(format!("--ip-range {range} has host bits set; did you mean {}?", range.trunc()));
            }
            if !subnet.contains(&range) {
                return Err(format!("--ip-range {range} is not inside subnet {subnet}"));
            }
        }
        if self.aux_addresses.len() > MAX_AUX_ADDRESSES {
            return Err(format!("at most {MAX_AUX_ADDRESSES} --aux-address"));
        }
        let gw = gateway(subnet, self);
        for (name, address) in &self.aux_addresses {
            check_key("--aux-address", name)?;
            if !subnet.contains(address) {
                return Err(format!("--aux-address {name}={address} is outside subnet {subnet}"));
            }
            if edge(*address) {
                return Err(format!(
                    "--aux-address {name}={address} is the network or broadcast address of {subnet}"
                ));
            }
            if *address == gw {
                return Err(format!("--aux-address {name}={address} is the gateway"));
            }
        }
        if let Some(range) = self.ip_range {
            let first = u32::from(range.network());
            let dynamic = (first..=u32::from(range.broadcast()))
                .take(1 << 16)
                .any(|a| address_use(subnet, self, Ipv4Addr::from(a)) == AddressUse::Dynamic);
            if !dynamic {
                return Err(format!(
                    "--ip-range {range} has no address left once the network, broadcast, gateway and aux addresses are taken out"
                ));
            }
        }
        if let Some(mtu) = self.mtu {
            if mtu < MIN_MTU {
                return Err(format!("mtu {mtu} is below IPv4's minimum of {MIN_MTU}"));
            }
        }
        if self.labels.len() > MAX_LABELS {
            return Err(format!("at most {MAX_LABELS} --label"));
        }
        for (key, value) in &self.labels {
            check_key("--label", key)?;
            if value.len() > MAX_LABEL_VALUE || value.chars().any(char::is_control) {
                return Err(format!(
                    "--label {key}: the value must be at most {MAX_LABEL_VALUE} bytes without control characters"
                ));
            }
        }
        Ok(())
    }
}

/// A label key or aux-address name: printable, no `=`, no spaces, bounded (Docker's label keys
/// are reverse-DNS words such as `com.example.team`).
fn check_key(flag: &str, key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= MAX_LABEL_KEY
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'));
    if ok {
        Ok(())
    } else {
        let shown: String = key.chars().take(40).collect();
        Err(format!(
            "{flag} {shown:?}: a name is 1 to {MAX_LABEL_KEY} of letters, digits, '.', '-', '_' and '/'"
        ))
    }
}

/// The `--opt`/`-o` keys meshd knows: its own `mtu` and Docker's name for it.
pub const MTU_OPTIONS: [&str; 2] = ["mtu", "com.docker.network.driver.mtu"];

/// The `--opt` key that encrypts a network (`--opt encrypted`, Docker's `-o encrypted`): no
/// value, or `true`/`false`.
pub const ENCRYPTED_OPTION: &str = "encrypted";

/// Reads one `--opt KEY=VALUE` into `options`; an unknown key is refused (a typo must not be
/// silently ignored).
pub fn apply_opt(options: &mut NetworkOptions, key: &str, value: &str) -> Result<(), String> {
    if key == ENCRYPTED_OPTION {
        options.encrypted = match value.trim() {
            "" | "true" => true,
            "false" => false,
            other => {
                return Err(format!(
                    "--opt encrypted={:?}: expected no value, true or false",
                    other.chars().take(20).collect::<String>()
                ))
            }
        };
        return Ok(());
    }
    if MTU_OPTIONS.contains(&key) {
        let mtu = value.trim().parse::<u32>().map_err(|_| {
            format!(
                "--opt {key}={:?}: the MTU is a number of bytes",
                value.chars().take(20).collect::<String>()
            )
        })?;
        options.mtu = Some(mtu);
        return Ok(());
    }
    Err(format!(
        "unknown option --opt {:?} (known: {}, {ENCRYPTED_OPTION})",
        key.chars().take(60).collect::<String>(),
        MTU_OPTIONS.join(", ")
    ))
}

/// Splits `KEY=VALUE` (a `--label`, an `--aux-address`, an `--opt`), for the CLI and the
/// drivers that receive them as text.
pub fn split_pair(flag: &str, text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("{flag} {:?}: expected KEY=VALUE", text.chars().take(80).collect::<String>())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    #[test]
    fn every_kind_of_address_has_one_use() {
        let subnet = net("10.1.0.0/24");
        let mut options = NetworkOptions {
            gateway: Some(ip("10.1.0.254")),
            ip_range: Some(net("10.1.0.128/25")),
            ..Default::default()
        };
        options.aux_addresses.insert("printer".into(), ip("10.1.0.130"));
        let use_of = |a: &str| address_use(&subnet, &options, ip(a));
        assert_eq!(use_of("10.2.0.1"), AddressUse::Outside);
        assert_eq!(use_of("10.1.0.0"), AddressUse::Reserved(Reserved::Network));
        assert_eq!(use_of("10.1.0.255"), AddressUse::Reserved(Reserved::Broadcast));
        assert_eq!(use_of("10.1.0.254"), AddressUse::Reserved(Reserved::Gateway));
        assert_eq!(use_of("10.1.0.130"), AddressUse::Reserved(Reserved::Aux));
        assert_eq!(use_of("10.1.0.1"), AddressUse::StaticOnly, "no longer the gateway, outside the range");
        assert_eq!(use_of("10.1.0.129"), AddressUse::Dynamic);
        assert_eq!(gateway(&subnet, &NetworkOptions::default()), ip("10.1.0.1"));
        assert_eq!(use_of("10.1.0.131"), AddressUse::Dynamic);
        assert!(options.check(&subnet).is_ok());
    }

    #[test]
    fn bad_options_are_refused_with_the_reason() {
        let subnet = net("10.1.0.0/24");
        let refused = |options: NetworkOptions, words: &str| {
            let error = options.check(&subnet).unwrap_err();
            assert!(error.contains(words), "{error:?} should say {words:?}");
        };
        refused(NetworkOptions { gateway: Some(ip("10.2.0.1")), ..Default::default() }, "outside subnet");
        refused(NetworkOptions { gateway: Some(ip("10.1.0.255")), ..Default::default() }, "broadcast");
        refused(NetworkOptions { ip_range: Some(net("10.1.1.0/25")), ..Default::default() }, "not inside");
        refused(NetworkOptions { ip_range: Some(net("10.0.0.0/16")), ..Default::default() }, "not inside");
        refused(NetworkOptions { ip_range: Some(net("10.1.0.5/25")), ..Default::default() }, "host bits");
        refused(NetworkOptions { mtu: Some(100), ..Default::default() }, "minimum");
        let aux = |name: &str, a: &str| NetworkOptions {
            aux_addresses: [(name.to_string(), ip(a))].into_iter().collect(),
            ..Default::default()
        };
        refused(aux("a", "10.9.0.1"), "outside subnet");
        refused(aux("a", "10.1.0.1"), "is the gateway");
        refused(aux("a b", "10.1.0.9"), "a name is");
        let label = |k: &str, v: &str| NetworkOptions {
            labels: [(k.to_string(), v.to_string())].into_iter().collect(),
            ..Default::default()
        };
        refused(label("", "x"), "a name is");
        refused(label("team", "a\nb"), "control");
        assert!(label("com.example.team", "blue").check(&subnet).is_ok());
        // A /32 range on the gateway leaves nothing to hand out.
        refused(
            NetworkOptions { ip_range: Some(net("10.1.0.1/32")), ..Default::default() },
            "no address left",
        );
        assert_eq!(split_pair("--label", "a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(split_pair("--label", "=b").is_err());
        assert!(split_pair("--label", "ab").is_err());
        let mut options = NetworkOptions::default();
        apply_opt(&mut options, "com.docker.network.driver.mtu", "1400").unwrap();
        assert_eq!(options.mtu, Some(1400));
        assert!(apply_opt(&mut options, "mtu", "big").unwrap_err().contains("number"));
        assert!(apply_opt(&mut options, "color", "red").unwrap_err().contains("unknown option"));
        assert!(!options.encrypted);
        apply_opt(&mut options, "encrypted", "").unwrap();
        assert!(options.encrypted);
        assert!(apply_opt(&mut options, "encrypted", "maybe").unwrap_err().contains("true or false"));
    }
}
