//! The settings a cluster is created with, the same on every node for its whole life: the
//! default address pools that networks without `--subnet` come from, and the data path (VXLAN)
//! port. Swarm's `docker swarm init --default-addr-pool / --default-addr-pool-mask-length /
//! --data-path-port`.
//!
//! The founding node fixes them from its flags; a joiner learns them in the join answer
//! (`gossip::join`) and every node keeps them in `cluster.json` (`gossip::persist`), so a
//! restart never needs the flags again. A node started with one of the flags checks it against
//! the cluster's: a value that differs is refused (it would be silently ignored otherwise, and a
//! node on another VXLAN port than its peers is a node that cannot reach them).

use std::fmt;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Smallest and largest prefix a network may have: at least one address block of 16. Here,
/// beside the pools' mask length they bound, so that the state's rules (`state::validate`, which
/// re-exports them) and the cluster's settings read one definition from below both.
pub const MIN_PREFIX: u8 = 8;
pub const MAX_PREFIX: u8 = 28;

/// Swarm's default pool and mask length: 10.0.0.0/8 cut into /24s.
pub const DEFAULT_POOL: &str = "10.0.0.0/8";
pub const DEFAULT_MASK_LENGTH: u8 = 24;
/// The IANA VXLAN port, Swarm's default.
pub const DEFAULT_DATA_PATH_PORT: u16 = 4789;
/// Swarm's range for `--data-path-port`: the registered ports. Below 1024 would take a
/// privileged port; 49152 and above is the kernel's ephemeral range (and the range VXLAN's own
/// source ports are hashed into), where a local socket may already hold it.
pub const DATA_PATH_PORTS: std::ops::RangeInclusive<u16> = 1024..=49151;
/// More pools than anyone needs; bounded because the list travels in every join answer and the
/// managers walk it for every network created without `--subnet`.
pub const MAX_POOLS: usize = 32;

/// The cluster-wide settings, fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSettings {
    /// Where networks created without `--subnet` get theirs, first pool first.
    pub default_addr_pools: Vec<Ipv4Net>,
    /// The prefix length of those subnets.
    pub default_addr_pool_mask_length: u8,
    /// The UDP port of the overlay's VXLAN, on every node.
    pub data_path_port: u16,
}

impl Default for ClusterSettings {
    fn default() -> ClusterSettings {
        ClusterSettings {
            default_addr_pools: vec![DEFAULT_POOL.parse().expect("the default pool is a CIDR")],
            default_addr_pool_mask_length: DEFAULT_MASK_LENGTH,
            data_path_port: DEFAULT_DATA_PATH_PORT,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("--default-addr-pool {0:?} is not an IPv4 CIDR such as 10.0.0.0/8")]
    Pool(String),
    #[error("--default-addr-pool {given} has host bits set; did you mean {network}?")]
    PoolHostBits { given: String, network: Ipv4Net },
    #[error("--default-addr-pool {0} must have a prefix between /{MIN_PREFIX} and /{MAX_PREFIX}")]
    PoolPrefix(Ipv4Net),
    #[error("--default-addr-pool {0} and {1} overlap")]
    PoolOverlap(Ipv4Net, Ipv4Net),
    #[error("--default-addr-pool: at most {MAX_POOLS} pools")]
    TooManyPools,
    #[error("--default-addr-pool-mask-length {0} must be between {MIN_PREFIX} and {MAX_PREFIX} (meshd networks are /{MIN_PREFIX} to /{MAX_PREFIX})")]
    MaskLength(u8),
    #[error("--default-addr-pool-mask-length {mask} is shorter than pool {pool}'s prefix: the pool holds no /{mask}")]
    MaskShorterThanPool { mask: u8, pool: Ipv4Net },
    #[error("--data-path-port {0} must be between 1024 and 49151")]
    DataPathPort(u16),
}

impl ClusterSettings {
    /// Checks the settings (the founder's flags, and what a join answer or `cluster.json` says:
    /// a file edited by hand is refused at start, not half used).
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.default_addr_pools.is_empty() || self.default_addr_pools.len() > MAX_POOLS {
            return Err(SettingsError::TooManyPools);
        }
        let mask = self.default_addr_pool_mask_length;
        if !(MIN_PREFIX..=MAX_PREFIX).contains(&mask) {
            return Err(SettingsError::MaskLength(mask));
        }
        for (i, pool) in self.default_addr_pools.iter().enumerate() {
            check_pool(pool)?;
            if mask < pool.prefix_len() {
                return Err(SettingsError::MaskShorterThanPool { mask, pool: *pool });
            }
            if let Some(other) = self.default_addr_pools[..i].iter().find(|o| overlap(o, pool)) {
                return Err(SettingsError::PoolOverlap(*other, *pool));
            }
        }
        if !DATA_PATH_PORTS.contains(&self.data_path_port) {
            return Err(SettingsError::DataPathPort(self.data_path_port));
        }
        Ok(())
    }
}

impl fmt::Display for ClusterSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pools: Vec<String> = self.default_addr_pools.iter().map(|p| p.to_string()).collect();
        write!(
            f,
            "default address pools {} cut into /{}, data path port {}",
            pools.join(", "),
            self.default_addr_pool_mask_length,
            self.data_path_port
        )
    }
}

/// What a node's flags ask for: each setting only if its flag was given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedSettings {
    pub default_addr_pools: Option<Vec<Ipv4Net>>,
    pub default_addr_pool_mask_length: Option<u8>,
    pub data_path_port: Option<u16>,
}

impl RequestedSettings {
    /// From the flags' text, checked as the founder's settings would be (so a mistake on any
    /// node is caught before it touches anything).
    pub fn parse(
        pools: &[String],
        mask_length: Option<u8>,
        data_path_port: Option<u16>,
    ) -> Result<RequestedSettings, SettingsError> {
        let pools = if pools.is_empty() {
            None
        } else {
            if pools.len() > MAX_POOLS {
                return Err(SettingsError::TooManyPools);
            }
            Some(pools.iter().map(|p| parse_pool(p)).collect::<Result<Vec<_>, _>>()?)
        };
        let requested = RequestedSettings {
            default_addr_pools: pools,
            default_addr_pool_mask_length: mask_length,
            data_path_port,
        };
        requested.founding().validate()?;
        Ok(requested)
    }

    pub fn is_empty(&self) -> bool {
        self == &RequestedSettings::default()
    }

    /// The settings a new cluster gets: the flags given, Swarm's defaults for the rest.
    pub fn founding(&self) -> ClusterSettings {
        let defaults = ClusterSettings::default();
        ClusterSettings {
            default_addr_pools: self.default_addr_pools.clone().unwrap_or(defaults.default_addr_pools),
            default_addr_pool_mask_length: self
                .default_addr_pool_mask_length
                .unwrap_or(defaults.default_addr_pool_mask_length),
            data_path_port: self.data_path_port.unwrap_or(defaults.data_path_port),
        }
    }

    /// Why these flags cannot be used in a cluster created with `cluster`: the first one given
    /// with another value than the cluster's. None: every flag given agrees (or none was).
    pub fn conflict(&self, cluster: &ClusterSettings) -> Option<String> {
        let fixed = "the cluster-wide settings are fixed when the cluster is created (by its first node, as \
                     with `docker swarm init`): start this node without the flag, or with the cluster's value";
        if let Some(pools) = &self.default_addr_pools {
            if pools != &cluster.default_addr_pools {
                let shown = |p: &[Ipv4Net]| p.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",");
                return Some(format!(
                    "--default-addr-pool {} differs from the cluster's {}; {fixed}",
                    shown(pools),
                    shown(&cluster.default_addr_pools)
                ));
            }
        }
        if let Some(mask) = self.default_addr_pool_mask_length {
            if mask != cluster.default_addr_pool_mask_length {
                return Some(format!(
                    "--default-addr-pool-mask-length {mask} differs from the cluster's {}; {fixed}",
                    cluster.default_addr_pool_mask_length
                ));
            }
        }
        if let Some(port) = self.data_path_port {
            if port != cluster.data_path_port {
                return Some(format!(
                    "--data-path-port {port} differs from the cluster's {}; {fixed}",
                    cluster.data_path_port
                ));
            }
        }
        None
    }
}

fn parse_pool(text: &str) -> Result<Ipv4Net, SettingsError> {
    let pool: Ipv4Net =
        text.trim().parse().map_err(|_| SettingsError::Pool(text.chars().take(80).collect()))?;
    if pool.trunc() != pool {
        return Err(SettingsError::PoolHostBits { given: text.to_string(), network: pool.trunc() });
    }
    check_pool(&pool)?;
    Ok(pool)
}

fn check_pool(pool: &Ipv4Net) -> Result<(), SettingsError> {
    if pool.trunc() != *pool {
        return Err(SettingsError::PoolHostBits { given: pool.to_string(), network: pool.trunc() });
    }
    if !(MIN_PREFIX..=MAX_PREFIX).contains(&pool.prefix_len()) {
        return Err(SettingsError::PoolPrefix(*pool));
    }
    Ok(())
}

fn overlap(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pools: &[&str], mask: Option<u8>, port: Option<u16>) -> Result<RequestedSettings, String> {
        let pools: Vec<String> = pools.iter().map(|p| p.to_string()).collect();
        RequestedSettings::parse(&pools, mask, port).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_swarms() {
        let founded = parse(&[], None, None).unwrap().founding();
        assert_eq!(founded.default_addr_pools, vec!["10.0.0.0/8".parse::<Ipv4Net>().unwrap()]);
        assert_eq!(founded.default_addr_pool_mask_length, 24);
        assert_eq!(founded.data_path_port, 4789);
        assert_eq!(founded, ClusterSettings::default());
    }

    #[test]
    fn bad_flags_are_refused_with_the_flag_named() {
        assert!(parse(&["10.0.0.0"], None, None).unwrap_err().contains("not an IPv4 CIDR"));
        assert!(parse(&["fd00::/64"], None, None).unwrap_err().contains("not an IPv4 CIDR"));
        assert!(parse(&["10.1.2.3/16"], None, None).unwrap_err().contains("did you mean 10.1.0.0/16"));
        assert!(parse(&["0.0.0.0/4"], None, None).unwrap_err().contains("prefix between"));
        let err = parse(&["10.0.0.0/16"], Some(12), None).unwrap_err();
        assert!(err.contains("shorter than pool 10.0.0.0/16"), "{err}");
        assert!(parse(&[], Some(30), None).unwrap_err().contains("between 8 and 28"));
        assert!(parse(&[], Some(31), None).unwrap_err().contains("--default-addr-pool-mask-length 31"));
        let err = parse(&["10.0.0.0/8", "10.5.0.0/16"], None, None).unwrap_err();
        assert!(err.contains("overlap"), "{err}");
        assert!(parse(&[], None, Some(80)).unwrap_err().contains("--data-path-port 80"));
        assert!(parse(&[], None, Some(50000)).unwrap_err().contains("1024 and 49151"));
        let many: Vec<String> = (0..33).map(|i| format!("10.{i}.0.0/16")).collect();
        let many: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
        assert!(parse(&many, None, None).unwrap_err().contains("at most 32"));
    }

    #[test]
    fn given_flags_found_the_cluster() {
        let founded = parse(&["192.168.0.0/16", "172.20.0.0/14"], Some(26), Some(4790)).unwrap().founding();
        assert_eq!(founded.default_addr_pools.len(), 2);
        assert_eq!(founded.default_addr_pool_mask_length, 26);
        assert_eq!(founded.data_path_port, 4790);
        assert!(founded.validate().is_ok());
    }

    #[test]
    fn a_joiner_may_repeat_the_clusters_values_but_not_change_them() {
        let cluster = parse(&["192.168.0.0/16"], Some(26), Some(4790)).unwrap().founding();
        assert_eq!(RequestedSettings::default().conflict(&cluster), None);
        assert_eq!(parse(&["192.168.0.0/16"], Some(26), Some(4790)).unwrap().conflict(&cluster), None);
        assert_eq!(parse(&[], None, Some(4790)).unwrap().conflict(&cluster), None);
        let why = parse(&[], None, Some(4789)).unwrap().conflict(&cluster).unwrap();
        assert!(why.starts_with("--data-path-port 4789 differs from the cluster's 4790"), "{why}");
        let why = parse(&["10.0.0.0/8"], None, None).unwrap().conflict(&cluster).unwrap();
        assert!(why.contains("differs from the cluster's 192.168.0.0/16"), "{why}");
        assert!(parse(&[], Some(24), None).unwrap().conflict(&cluster).unwrap().contains("mask-length 24"));
    }

    #[test]
    fn settings_from_elsewhere_are_checked_too() {
        let mut settings = ClusterSettings::default();
        settings.default_addr_pools.clear();
        assert!(settings.validate().is_err());
        let settings = ClusterSettings { data_path_port: 0, ..ClusterSettings::default() };
        assert!(settings.validate().is_err());
        let settings = ClusterSettings { default_addr_pool_mask_length: 4, ..ClusterSettings::default() };
        assert!(settings.validate().is_err());
    }
}
