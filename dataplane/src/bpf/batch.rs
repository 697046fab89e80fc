//! Batched map writes through the raw `bpf(2)` syscall, which aya 0.14 does not wrap:
//! `BPF_MAP_UPDATE_BATCH` and `BPF_MAP_DELETE_BATCH` (Linux 5.6; hash, LRU hash, array and,
//! for the fd-valued maps of maps, hash of maps). One syscall writes thousands of entries
//! instead of one syscall each: programming 100,000 endpoints, or a Maglev table of 1,021 slots,
//! becomes a handful of calls. For a map of maps the kernel also waits for its RCU grace period
//! (the wait that makes sure no program still runs with a replaced inner map) once per batch
//! instead of once per entry (Linux 6.7 and later).
//!
//! The attribute is aya-obj's own binding of `union bpf_attr`, so the layout is the kernel's.
//! A batch is applied in order and stops at the first failing entry; the kernel reports how
//! many entries it processed, which is how [`delete`] steps over keys that are already gone.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use aya_obj::generated::{bpf_attr, bpf_cmd};

/// Entries per syscall: bounds the kernel's work (and the time it holds the CPU) per call.
pub const BATCH_MAX: usize = 8192;

fn batch_call(
    cmd: bpf_cmd,
    fd: BorrowedFd<'_>,
    keys: *const u8,
    values: *const u8,
    count: usize,
) -> (io::Result<()>, usize) {
    // SAFETY: bpf_attr is a plain C union for which all-zero is the documented initial value.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // Writing a union member is safe; only the `batch` member is used.
    attr.batch.keys = keys as u64;
    attr.batch.values = values as u64;
    attr.batch.count = count as u32;
    attr.batch.map_fd = fd.as_raw_fd() as u32;
    // SAFETY: `keys` (and `values` when not null) point to `count` elements of the map's key
    // (value) size, alive for the call; the kernel reads them and writes back only `count`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            &mut attr as *mut bpf_attr,
            std::mem::size_of::<bpf_attr>(),
        )
    };
    // SAFETY: reading back the member written above (the kernel updates `count`).
    let done = unsafe { attr.batch.count } as usize;
    if rc < 0 {
        (Err(io::Error::last_os_error()), done.min(count))
    } else {
        (Ok(()), count)
    }
}

/// Inserts or overwrites `entries` (`BPF_ANY`), in batches of [`BATCH_MAX`]. `K` and `V` must be
/// the map's key and value types (`#[repr(C)]`, of the map's sizes; for a map of maps `V` is the
/// inner map's fd as `u32`).
pub fn update<K: Copy, V: Copy>(fd: BorrowedFd<'_>, entries: &[(K, V)]) -> io::Result<()> {
    for chunk in entries.chunks(BATCH_MAX) {
        let keys: Vec<K> = chunk.iter().map(|(k, _)| *k).collect();
        let values: Vec<V> = chunk.iter().map(|(_, v)| *v).collect();
        update_slices(fd, &keys, &values)?;
    }
    Ok(())
}

/// [`update`] from parallel slices of keys and values (`keys.len() == values.len()`).
pub fn update_slices<K: Copy, V: Copy>(fd: BorrowedFd<'_>, keys: &[K], values: &[V]) -> io::Result<()> {
    assert_eq!(keys.len(), values.len(), "one value per key");
    for (keys, values) in keys.chunks(BATCH_MAX).zip(values.chunks(BATCH_MAX)) {
        let (result, _) = batch_call(
            bpf_cmd::BPF_MAP_UPDATE_BATCH,
            fd,
            keys.as_ptr().cast(),
            values.as_ptr().cast(),
            keys.len(),
        );
        result?;
    }
    Ok(())
}

/// Deletes `keys`; a key that is not there counts as deleted (that is what the caller wants).
/// Returns how many keys were actually removed.
pub fn delete<K: Copy>(fd: BorrowedFd<'_>, keys: &[K]) -> io::Result<usize> {
    let mut removed = 0;
    let mut rest = keys;
    while !rest.is_empty() {
        let chunk = &rest[..rest.len().min(BATCH_MAX)];
        let (result, done) = batch_call(
            bpf_cmd::BPF_MAP_DELETE_BATCH,
            fd,
            chunk.as_ptr().cast(),
            std::ptr::null(),
            chunk.len(),
        );
        removed += done;
        match result {
            Ok(()) => rest = &rest[chunk.len()..],
            // Entry `done` is missing: step over it and go on with the next.
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => rest = &rest[done + 1..],
            Err(error) => return Err(error),
        }
    }
    Ok(removed)
}

/// Whether the kernel refused a batch command itself (too old, or not for this map type), as
/// opposed to an entry of the batch: callers then fall back to one syscall per entry.
pub fn unsupported(error: &io::Error) -> bool {
    // 524 is the kernel's internal ENOTSUPP, which `bpf(2)` returns for a map type without the
    // batch operation.
    matches!(error.raw_os_error(), Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(524))
}

/// The map behind one of aya's map handles, for the kinds meshd writes in batches.
pub fn map_data(map: &aya::maps::Map) -> Option<&aya::maps::MapData> {
    use aya::maps::Map;
    match map {
        Map::HashMap(data) | Map::LruHashMap(data) | Map::HashOfMaps(data) | Map::Array(data) => Some(data),
        _ => None,
    }
}

/// A batch failure as aya's map error, named after the command.
pub fn map_error(call: &'static str, io_error: io::Error) -> aya::maps::MapError {
    aya::maps::MapError::SyscallError(aya::sys::SyscallError { call, io_error })
}
