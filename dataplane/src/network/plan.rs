//! Network names, subnets and VNIs.
//!
//! The VNI is derived from the name (FNV-1a, folded into 4096..2^24): two nodes creating
//! networks at the same moment never pick the same VNI the way "lowest free number" would, and a
//! network re-created under the same name gets the same VNI everywhere. A hash collision with an
//! existing network is refused at creation, like an overlapping subnet or a duplicate name.

use std::str::FromStr;

use ipnet::Ipv4Net;

use crate::state::network_options::NetworkOptions;
use crate::state::{ClusterState, NetworkRecord};

pub use crate::state::validate::{vni_for, MAX_PREFIX, MIN_PREFIX, VNI_BASE};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Name(#[from] crate::name_rules::NameError),
    #[error("invalid subnet {0:?}: expected an IPv4 CIDR such as 10.10.0.0/24")]
    Subnet(String),
    #[error("subnet {given} has host bits set; did you mean {network}?")]
    HostBits { given: String, network: Ipv4Net },
    #[error("subnet {0} must have a prefix between /{MIN_PREFIX} and /{MAX_PREFIX}")]
    Prefix(Ipv4Net),
    #[error("a network named {0:?} already exists")]
    Exists(String),
    #[error("subnet {subnet} overlaps network {other:?} ({other_subnet})")]
    Overlap { subnet: Ipv4Net, other: String, other_subnet: Ipv4Net },
    #[error("network {name:?} would get VNI {vni}, already used by {other:?}; choose another name")]
    VniCollision { name: String, vni: u32, other: String },
    #[error("no network named {0:?}")]
    NotFound(String),
    #[error("network {name:?} still has {count} attached endpoint(s); detach them first")]
    InUse { name: String, count: usize },
    #[error("{0}")]
    Options(String),
    #[error(
        "mtu {mtu} is above this node's limit of {limit} (its underlay's MTU {underlay} less {overhead} bytes of VXLAN)",
        underlay = limit + crate::netlink::vxlan::OVERHEAD,
        overhead = crate::netlink::vxlan::OVERHEAD
    )]
    MtuTooLarge { mtu: u32, limit: u32 },
}

/// A network name is one DNS label (`crate::name_rules`).
pub fn validate_name(name: &str) -> Result<(), NetworkError> {
    Ok(crate::name_rules::check(crate::name_rules::NameKind::Network, name)?)
}

/// Reads a subnet as users type it (`10.10.0.0/24`) and checks it (`check_subnet`). Used where
/// requests enter (meshctl's arguments, the API's decoding), so the agent only sees checked values.
pub fn parse_subnet(text: &str) -> Result<Ipv4Net, NetworkError> {
    let net =
        Ipv4Net::from_str(text.trim()).map_err(|_| NetworkError::Subnet(text.chars().take(80).collect()))?;
    check_subnet(net)
}

/// A network's subnet has no host bits set and a prefix meshd serves (/8 to /28).
pub fn check_subnet(net: Ipv4Net) -> Result<Ipv4Net, NetworkError> {
    if net.trunc() != net {
        return Err(NetworkError::HostBits { given: net.to_string(), network: net.trunc() });
    }
    if !(MIN_PREFIX..=MAX_PREFIX).contains(&net.prefix_len()) {
        return Err(NetworkError::Prefix(net));
    }
    Ok(net)
}

/// Validates a new network against the state; returns its record. `overlay_mtu` is the largest
/// MTU this node's underlay carries through VXLAN.
pub fn plan_create(
    state: &ClusterState,
    name: &str,
    subnet: Ipv4Net,
    options: NetworkOptions,
    overlay_mtu: u32,
) -> Result<NetworkRecord, NetworkError> {
    validate_name(name)?;
    // Checked again: the API decodes only checked subnets, but the agent is also called directly.
    let subnet = check_subnet(subnet)?;
    options.check(&subnet).map_err(NetworkError::Options)?;
    if let Some(mtu) = options.mtu.filter(|mtu| *mtu > overlay_mtu) {
        return Err(NetworkError::MtuTooLarge { mtu, limit: overlay_mtu });
    }
    if state.networks.get(&name.to_string()).is_some() {
        return Err(NetworkError::Exists(name.to_string()));
    }
    let vni = vni_for(name);
    for (other, record) in state.networks.live() {
        if record.subnet.contains(&subnet.network()) || subnet.contains(&record.subnet.network()) {
            return Err(NetworkError::Overlap { subnet, other: other.clone(), other_subnet: record.subnet });
        }
        if record.vni == vni {
            return Err(NetworkError::VniCollision { name: name.to_string(), vni, other: other.clone() });
        }
    }
    Ok(NetworkRecord { subnet, vni, options })
}

/// Validates a new network without a subnet (the managers give it one from the cluster's
/// default address pools, `network::pool`): the name, and its VNI against the state. The
/// record's subnet is left unspecified for the managers to fill in.
pub fn plan_create_from_pool(
    state: &ClusterState,
    name: &str,
    options: NetworkOptions,
    overlay_mtu: u32,
) -> Result<NetworkRecord, NetworkError> {
    validate_name(name)?;
    // Addresses inside a subnet not chosen yet cannot be checked (Docker refuses them too).
    if options.gateway.is_some() || options.ip_range.is_some() || !options.aux_addresses.is_empty() {
        return Err(NetworkError::Options(
            "--gateway, --ip-range and --aux-address need --subnet (as in Docker)".into(),
        ));
    }
    if let Some(mtu) = options.mtu.filter(|mtu| *mtu > overlay_mtu) {
        return Err(NetworkError::MtuTooLarge { mtu, limit: overlay_mtu });
    }
    if state.networks.get(&name.to_string()).is_some() {
        return Err(NetworkError::Exists(name.to_string()));
    }
    let vni = vni_for(name);
    if let Some((other, _)) = state.networks.live().find(|(_, record)| record.vni == vni) {
        return Err(NetworkError::VniCollision { name: name.to_string(), vni, other: other.clone() });
    }
    Ok(NetworkRecord { subnet: Ipv4Net::default(), vni, options })
}

/// Checks that a network exists and has no endpoints left, anywhere.
pub fn plan_remove(state: &ClusterState, name: &str) -> Result<(), NetworkError> {
    if state.networks.get(&name.to_string()).is_none() {
        return Err(NetworkError::NotFound(name.to_string()));
    }
    let count = state.endpoints.live().filter(|(_, e)| e.network == name).count();
    if count > 0 {
        return Err(NetworkError::InUse { name: name.to_string(), count });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::identity::NodeId;
    use crate::state::{Change, Delta, Version};

    /// A network created as a user types it: the subnet read from text, then planned.
    fn create(
        state: &ClusterState,
        name: &str,
        subnet: &str,
        options: NetworkOptions,
        overlay_mtu: u32,
    ) -> Result<NetworkRecord, NetworkError> {
        plan_create(state, name, parse_subnet(subnet)?, options, overlay_mtu)
    }

    fn with_network(name: &str, subnet: &str) -> ClusterState {
        let mut state = ClusterState::default();
        let record = create(&state, name, subnet, NetworkOptions::default(), 1450).unwrap();
        let version = Version { lamport: 1, node: NodeId::from_bytes([1; 16]) };
        state
            .apply(
                Delta { version, change: Change::Network { name: name.into(), record: Some(record) } },
                Instant::now(),
            )
            .unwrap();
        state
    }

    #[test]
    fn names_and_subnets_are_validated() {
        let state = ClusterState::default();
        assert!(matches!(
            create(&state, "", "10.0.0.0/24", NetworkOptions::default(), 1450),
            Err(NetworkError::Name(_))
        ));
        assert!(matches!(
            create(&state, "-x", "10.0.0.0/24", NetworkOptions::default(), 1450),
            Err(NetworkError::Name(_))
        ));
        assert!(matches!(
            create(&state, "a b", "10.0.0.0/24", NetworkOptions::default(), 1450),
            Err(NetworkError::Name(_))
        ));
        // NAME.NETWORK must be two labels.
        assert!(matches!(
            create(&state, "front.v2", "10.0.0.0/24", NetworkOptions::default(), 1450),
            Err(NetworkError::Name(_))
        ));
        assert!(matches!(
            create(&state, "ok", "10.0.0.0", NetworkOptions::default(), 1450),
            Err(NetworkError::Subnet(_))
        ));
        assert!(matches!(
            create(&state, "ok", "300.0.0.0/24", NetworkOptions::default(), 1450),
            Err(NetworkError::Subnet(_))
        ));
        assert!(matches!(
            create(&state, "ok", "fd00::/64", NetworkOptions::default(), 1450),
            Err(NetworkError::Subnet(_))
        ));
        let err = create(&state, "ok", "10.0.0.5/24", NetworkOptions::default(), 1450).unwrap_err();
        assert_eq!(err.to_string(), "subnet 10.0.0.5/24 has host bits set; did you mean 10.0.0.0/24?");
        assert!(matches!(
            create(&state, "ok", "10.0.0.0/30", NetworkOptions::default(), 1450),
            Err(NetworkError::Prefix(_))
        ));
        assert!(matches!(
            create(&state, "ok", "0.0.0.0/4", NetworkOptions::default(), 1450),
            Err(NetworkError::Prefix(_))
        ));
        assert_eq!(
            create(&state, "front-end_v2", "10.0.0.0/24", NetworkOptions::default(), 1450)
                .unwrap()
                .subnet
                .to_string(),
            "10.0.0.0/24"
        );
    }

    #[test]
    fn duplicates_and_overlaps_are_refused() {
        let state = with_network("front", "10.10.0.0/16");
        assert_eq!(
            create(&state, "front", "10.20.0.0/24", NetworkOptions::default(), 1450),
            Err(NetworkError::Exists("front".into()))
        );
        assert!(matches!(
            create(&state, "inner", "10.10.5.0/24", NetworkOptions::default(), 1450),
            Err(NetworkError::Overlap { .. })
        ));
        assert!(matches!(
            create(&state, "outer", "10.0.0.0/8", NetworkOptions::default(), 1450),
            Err(NetworkError::Overlap { .. })
        ));
        assert!(create(&state, "back", "10.11.0.0/16", NetworkOptions::default(), 1450).is_ok());
    }

    #[test]
    fn a_network_from_the_pools_is_checked_but_for_its_subnet() {
        let state = with_network("front", "10.10.0.0/16");
        assert_eq!(
            plan_create_from_pool(&state, "front", NetworkOptions::default(), 1450),
            Err(NetworkError::Exists("front".into()))
        );
        assert!(matches!(
            plan_create_from_pool(&state, "a b", NetworkOptions::default(), 1450),
            Err(NetworkError::Name(_))
        ));
        assert_eq!(
            plan_create_from_pool(&state, "back", NetworkOptions::default(), 1450).unwrap().vni,
            vni_for("back")
        );
    }

    #[test]
    fn vnis_are_stable_and_in_range() {
        assert_eq!(vni_for("front"), vni_for("front"));
        assert_ne!(vni_for("front"), vni_for("back"));
        for name in ["a", "front", "x".repeat(63).as_str()] {
            let vni = vni_for(name);
            assert!((VNI_BASE..1 << 24).contains(&vni), "{vni}");
        }
    }

    #[test]
    fn removal_needs_an_empty_existing_network() {
        let state = with_network("front", "10.10.0.0/24");
        assert_eq!(plan_remove(&state, "nope"), Err(NetworkError::NotFound("nope".into())));
        assert_eq!(plan_remove(&state, "front"), Ok(()));
    }

    #[test]
    fn options_are_checked_before_anything_is_created() {
        let state = ClusterState::default();
        let gateway = |ip: &str| NetworkOptions { gateway: Some(ip.parse().unwrap()), ..Default::default() };
        let created = create(&state, "a", "10.0.0.0/24", gateway("10.0.0.254"), 1450).unwrap();
        assert_eq!(created.gateway(), "10.0.0.254".parse::<std::net::Ipv4Addr>().unwrap());
        let error = create(&state, "a", "10.0.0.0/24", gateway("10.0.1.1"), 1450).unwrap_err();
        assert!(error.to_string().contains("outside subnet 10.0.0.0/24"), "{error}");
        let mtu = |mtu| NetworkOptions { mtu: Some(mtu), ..Default::default() };
        assert!(create(&state, "a", "10.0.0.0/24", mtu(1450), 1450).is_ok());
        let error = create(&state, "a", "10.0.0.0/24", mtu(1451), 1450).unwrap_err();
        assert_eq!(
            error.to_string(),
            "mtu 1451 is above this node's limit of 1450 (its underlay's MTU 1500 less 50 bytes of VXLAN)"
        );
    }
}
