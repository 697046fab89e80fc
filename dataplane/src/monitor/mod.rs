//! `meshctl monitor`: drop and flow events from the eBPF programs, as they happen.
//!
//! - [`event`]: the event as people see it, names resolved from the cluster state.
//! - [`hub`]: history, subscribers with bounded queues, and the kernel switch for flow events.
//! - [`reader`]: the task that reads the kernel's ring buffer.
//!
//! The kernel side is `ebpf/include/lib/events.h`: a ring buffer behind a per-CPU token bucket,
//! so a flood of drops costs the agent a bounded number of events per second.

pub mod event;
pub mod hub;
pub mod reader;

pub use event::{EventKind, MonitorEvent, Peer};
pub use hub::{Filter, Monitor, MonitorError, Subscription};
