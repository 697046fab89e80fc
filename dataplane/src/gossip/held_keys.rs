//! The gossip keys this node holds, with the salts that name them in the `secrets` record
//! (see `key_material` for how they are had). Kept in `gossip-keys.json` (0600), so a member
//! restarts without a manager; only the keys the current record names are kept.

use serde::{Deserialize, Serialize};

use super::wire::SaltedKey;
use crate::identity::Secret;
use crate::state_dir::{StateDir, StateDirError};
use crate::trust::ca::ClusterCa;

const FILE: &str = "gossip-keys.json";

/// The gossip keys this node holds (at most a ring's few).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldKeys {
    keys: Vec<SaltedKey>,
}

impl HeldKeys {
    pub fn load(dir: &StateDir) -> Result<HeldKeys, StateDirError> {
        Ok(dir.read_json(FILE)?.unwrap_or_default())
    }

    pub fn save(&self, dir: &StateDir) -> Result<(), StateDirError> {
        dir.write_json(FILE, self)
    }

    /// Forgets them on disk too (after a leave).
    pub fn forget(dir: &StateDir) -> Result<(), StateDirError> {
        dir.remove(FILE)
    }

    /// Every key held, with its salt.
    pub fn keys(&self) -> &[SaltedKey] {
        &self.keys
    }

    pub fn holds(&self, salt: &Secret) -> bool {
        self.keys.iter().any(|k| &k.salt == salt)
    }

    /// Learns `key` for `salt`; whether it was new.
    pub fn insert(&mut self, salted: SaltedKey) -> bool {
        if self.holds(&salted.salt) {
            return false;
        }
        self.keys.push(salted);
        true
    }

    /// Derives (with the CA, on a manager) every key `salts` name; whether one was new.
    pub fn derive(&mut self, ca: &ClusterCa, salts: &[Secret]) -> bool {
        let mut changed = false;
        for salt in salts {
            changed |= self.insert(SaltedKey { salt: salt.clone(), key: ca.gossip_key(salt) });
        }
        changed
    }

    /// Drops every key `salts` no longer names (a retired key is gone from disk too); whether
    /// one was dropped.
    pub fn retain(&mut self, salts: &[Secret]) -> bool {
        let before = self.keys.len();
        self.keys.retain(|k| salts.contains(&k.salt));
        self.keys.len() != before
    }

    /// The keys for `salts` this node holds, in the record's order (the first seals).
    pub fn ring(&self, salts: &[Secret]) -> Vec<Secret> {
        salts.iter().filter_map(|salt| self.get(salt).map(|k| k.key.clone())).collect()
    }

    /// The salts whose keys this node lacks.
    pub fn missing(&self, salts: &[Secret]) -> Vec<Secret> {
        salts.iter().filter(|salt| !self.holds(salt)).cloned().collect()
    }

    pub fn get(&self, salt: &Secret) -> Option<&SaltedKey> {
        self.keys.iter().find(|k| &k.salt == salt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(n: u8) -> Secret {
        Secret::from_bytes([n; 32])
    }

    #[test]
    fn keys_are_the_cas_and_follow_the_record() {
        let ca = ClusterCa::create().unwrap();
        let other = ClusterCa::create().unwrap();
        assert_eq!(ca.gossip_key(&secret(1)), ca.gossip_key(&secret(1)), "deterministic");
        assert_ne!(ca.gossip_key(&secret(1)), ca.gossip_key(&secret(2)), "one key per salt");
        assert_ne!(ca.gossip_key(&secret(1)), other.gossip_key(&secret(1)), "only this CA's key gives it");
        assert_ne!(ca.gossip_key(&secret(1)), secret(1), "the salt is not the key");

        let mut held = HeldKeys::default();
        assert!(held.derive(&ca, &[secret(1), secret(2)]));
        assert!(!held.derive(&ca, &[secret(2)]), "nothing new");
        assert_eq!(
            held.ring(&[secret(2), secret(1)]),
            vec![ca.gossip_key(&secret(2)), ca.gossip_key(&secret(1))]
        );
        assert_eq!(held.missing(&[secret(3), secret(1)]), vec![secret(3)]);
        assert!(held.retain(&[secret(2)]));
        assert!(!held.holds(&secret(1)), "a retired key is forgotten");
        assert_eq!(held.ring(&[secret(1), secret(2)]), vec![ca.gossip_key(&secret(2))]);
    }
}
