//! A BPF array of `u32` created with `BPF_F_MMAPABLE`, written through a shared mapping of its
//! memory: a store per element instead of a copy from user space per element through
//! `bpf(BPF_MAP_UPDATE_BATCH)`, which cost about a second for 10,000 Maglev tables.
//!
//! Each element is written with one aligned 32-bit store, so a program reading it at the same
//! time sees the old value or the new one, never a mix; stores made with [`MappedArray::publish`]
//! are seen after every store before them (release ordering).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// Bytes between two elements in an array map's memory: the kernel rounds every value up to 8
/// bytes (`round_up(value_size, 8)` in kernel/bpf/arraymap.c), so a `u32` element is the first
/// four bytes of an 8-byte cell. (Written with a stride of 4, half of every table was zeros.)
const STRIDE: usize = 8;

/// A mapping of a whole `BPF_F_MMAPABLE` array of `u32`; unmapped on drop.
pub struct MappedArray {
    base: NonNull<AtomicU32>,
    len: usize,
    bytes: usize,
}

impl MappedArray {
    /// Maps the `len` elements of the array `fd` (its max_entries; the kernel refuses a mapping
    /// larger than the array, rounded up to a page).
    pub fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<MappedArray> {
        // SAFETY: sysconf has no preconditions.
        #[allow(unsafe_code)]
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let bytes = (len * STRIDE).next_multiple_of(page.max(1));
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "an empty array cannot be mapped"));
        }
        // SAFETY: a new shared mapping chosen by the kernel (no address given), of an fd the
        // caller keeps open for the call; nothing else in this process aliases it.
        #[allow(unsafe_code)]
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(address.cast::<AtomicU32>()).expect("mmap returned a null mapping");
        Ok(MappedArray { base, len, bytes })
    }

    #[allow(unsafe_code)]
    fn element(&self, index: usize) -> &AtomicU32 {
        assert!(index < self.len, "element {index} of an array of {}", self.len);
        // SAFETY: index < len, so the element lies inside the mapping (len * STRIDE <= bytes),
        // which lives as long as self; the mapping is page-aligned and STRIDE a multiple of 4,
        // so every element is aligned. AtomicU32 has the layout of u32.
        unsafe { &*self.base.as_ptr().cast::<u8>().add(index * STRIDE).cast::<AtomicU32>() }
    }

    /// Element `index`.
    pub fn get(&self, index: usize) -> u32 {
        self.element(index).load(Ordering::Relaxed)
    }

    /// Sets element `index`.
    pub fn set(&self, index: usize, value: u32) {
        self.element(index).store(value, Ordering::Relaxed);
    }

    /// Sets element `index` after every earlier store of this thread is visible (the
    /// fingerprint of a table, written last, says the table is complete).
    pub fn publish(&self, index: usize, value: u32) {
        self.element(index).store(value, Ordering::Release);
    }
}

impl Drop for MappedArray {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, of this size, unmapped once; no reference into it
        // outlives self.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.bytes);
        }
    }
}

// SAFETY: the mapping is shared memory reached only through atomics; it may be used and
// unmapped from any thread.
#[allow(unsafe_code)]
unsafe impl Send for MappedArray {}
