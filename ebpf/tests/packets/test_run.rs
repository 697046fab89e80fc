//! `BPF_PROG_TEST_RUN` through the `bpf(2)` syscall: aya 0.14 has no API for it.
//!
//! The kernel runs a loaded program once on a packet we give it (in an skb it builds on the
//! loopback device of the calling thread's namespace), and hands back the program's return code
//! and the packet as the program left it. Nothing is sent anywhere: a redirect only sets the
//! return code (the test build's hooks record its target, see `include/lib/test_hooks.h`).
//!
//! The only unsafe code of the packet tests is here: one syscall with a struct the kernel reads
//! and writes, pointing at buffers that outlive the call.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `BPF_PROG_TEST_RUN` in `enum bpf_cmd` (linux/bpf.h).
const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// The `test` member of `union bpf_attr` (linux/bpf.h), up to `batch_size`. Explicit padding:
/// the kernel rejects an attr whose bytes past the fields it knows are not zero.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}

/// `sizeof(struct __sk_buff)` (linux/bpf.h) and the offsets of the two fields a test sets; the
/// kernel refuses a context with any other field set but a few (mark, priority, cb, ...).
const SKB_CTX_LEN: usize = 192;
const SKB_INGRESS_IFINDEX: usize = 36;

/// What one run gave back.
pub struct Ran {
    /// The program's return code (a `TC_ACT_*` for tc programs).
    pub retval: i32,
    /// The packet as the program left it.
    pub packet: Vec<u8>,
}

/// Runs program `prog` once on `packet`. `ingress_ifindex` is what the program reads as
/// `skb->ingress_ifindex` (0: the packet was sent by this host, not received).
pub fn run(prog: BorrowedFd<'_>, packet: &[u8], ingress_ifindex: u32) -> io::Result<Ran> {
    // Room for what a program can add (an encapsulation adds 50 bytes).
    let mut out = vec![0u8; packet.len() + 256];
    let mut ctx = [0u8; SKB_CTX_LEN];
    ctx[SKB_INGRESS_IFINDEX..SKB_INGRESS_IFINDEX + 4].copy_from_slice(&ingress_ifindex.to_ne_bytes());
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: packet.len() as u32,
        data_size_out: out.len() as u32,
        data_in: packet.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: 1,
        ctx_size_in: SKB_CTX_LEN as u32,
        ctx_in: ctx.as_ptr() as u64,
        ..TestRunAttr::default()
    };
    // SAFETY: `attr` is a valid `bpf_attr` prefix of the size passed; the kernel reads
    // `packet` and `ctx` and writes at most `data_size_out` bytes into `out`, all of which live
    // until the call returns.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            size_of::<TestRunAttr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    out.truncate(attr.data_size_out as usize);
    Ok(Ran { retval: attr.retval as i32, packet: out })
}
