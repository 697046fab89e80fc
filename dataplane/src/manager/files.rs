//! Small values of the managers' group in the state directory (the vote, the commit point, the
//! purge point, the snapshot): postcard, written atomically by `StateDir`.

use std::io;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::state_dir::StateDir;

pub fn read_value<T: DeserializeOwned>(dir: &StateDir, name: &str) -> io::Result<Option<T>> {
    match dir.read_bytes(name).map_err(io::Error::other)? {
        None => Ok(None),
        Some(bytes) => postcard::from_bytes(&bytes).map(Some).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", dir.path().join(name).display()))
        }),
    }
}

pub fn write_value<T: Serialize>(dir: &StateDir, name: &str, value: &T) -> io::Result<()> {
    let bytes = postcard::to_allocvec(value).map_err(io::Error::other)?;
    dir.write_bytes(name, &bytes).map_err(io::Error::other)
}
