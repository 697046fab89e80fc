//! The encryption maps (`ebpf/include/abi/encrypt.h`), opened from their pins in the node's bpffs
//! directory: the engine's settings, the encrypted networks, and the peers with a tunnel. Only
//! this module writes them.

use std::collections::BTreeSet;
use std::path::Path;

use aya::maps::{Array, HashMap, Map, MapData};
use meshd_ebpf::encrypt::{self, EncryptConfig, EncryptedNet, Tunnel, TUNNEL_READY};

use super::EncryptionError;

/// The three maps, typed.
pub struct EncryptMaps {
    config: Array<MapData, EncryptConfig>,
    nets: HashMap<MapData, u32, EncryptedNet>,
    tunnels: HashMap<MapData, u32, Tunnel>,
}

fn open(pin_dir: &Path, name: &'static str) -> Result<Map, EncryptionError> {
    let err = |e: aya::maps::MapError| EncryptionError::Map { map: name, message: e.to_string() };
    Map::from_map_data(MapData::from_pin(pin_dir.join(name)).map_err(err)?).map_err(err)
}

fn map_err(map: &'static str) -> impl Fn(aya::maps::MapError) -> EncryptionError {
    move |e| EncryptionError::Map { map, message: e.to_string() }
}

impl EncryptMaps {
    /// Opens the pinned maps (the programs' loading pinned them).
    pub fn open(pin_dir: &Path) -> Result<EncryptMaps, EncryptionError> {
        Ok(EncryptMaps {
            config: Array::try_from(open(pin_dir, encrypt::CONFIG_MAP)?)
                .map_err(map_err(encrypt::CONFIG_MAP))?,
            nets: HashMap::try_from(open(pin_dir, encrypt::NETS_MAP)?).map_err(map_err(encrypt::NETS_MAP))?,
            tunnels: HashMap::try_from(open(pin_dir, encrypt::TUNNELS_MAP)?)
                .map_err(map_err(encrypt::TUNNELS_MAP))?,
        })
    }

    /// Writes the engine's settings (all zero: no engine, every encrypted packet dropped).
    pub fn set_config(&mut self, config: EncryptConfig) -> Result<(), EncryptionError> {
        if self.config.get(&0, 0).ok() == Some(config) {
            return Ok(());
        }
        self.config.set(0, config, 0).map_err(map_err(encrypt::CONFIG_MAP))
    }

    /// Makes the encrypted networks exactly `vnis`.
    pub fn sync_nets(&mut self, vnis: &BTreeSet<u32>) -> Result<(), EncryptionError> {
        let have: BTreeSet<u32> = self.nets.keys().filter_map(Result::ok).collect();
        for vni in vnis.difference(&have) {
            self.nets.insert(vni, EncryptedNet::default(), 0).map_err(map_err(encrypt::NETS_MAP))?;
        }
        for vni in have.difference(vnis) {
            let _ = self.nets.remove(vni);
        }
        Ok(())
    }

    /// Makes the peers with a tunnel exactly `ready` (underlay addresses in network order).
    pub fn sync_tunnels(&mut self, ready: &BTreeSet<u32>) -> Result<(), EncryptionError> {
        let have: BTreeSet<u32> = self.tunnels.keys().filter_map(Result::ok).collect();
        for addr in ready.difference(&have) {
            self.tunnels
                .insert(addr, Tunnel { flags: TUNNEL_READY, pad: 0 }, 0)
                .map_err(map_err(encrypt::TUNNELS_MAP))?;
        }
        for addr in have.difference(ready) {
            let _ = self.tunnels.remove(addr);
        }
        Ok(())
    }
}
