//! Services as the cluster decides them (pure: no I/O): what a service is allowed to be, which
//! of its tasks take traffic, and how flows are spread over them.
//!
//! - [`plan`]: names, networks, endpoint modes, checked before a service is written; [`error`].
//! - [`ports`]: published ports (`PUBLISHED:TARGET/PROTO`), who holds each, and the ports meshd
//!   keeps for itself.
//! - [`backends`]: which tasks are backends (the one health rule for the load balancer and DNS).
//! - [`maglev`]: the consistent-hash table and its size (M); [`maglev_cache`]: tables
//!   remembered across reconcile rounds.
//! - [`id`]: a service's id in the maps.

pub mod backends;
pub mod error;
pub mod id;
pub mod maglev;
pub mod maglev_cache;
pub mod plan;
pub mod ports;

pub use error::ServiceError;
pub use maglev_cache::MaglevCache;
