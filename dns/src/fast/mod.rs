//! The fast path for the names meshd owns, over UDP.
//!
//! hickory-server spawns a task per UDP request, parses it into owned structures, asks the
//! handler, and encodes the answer afresh. For the queries a container asks all day (`web A`,
//! `tasks.web A`, `web AAAA`) that is most of the cost. Here instead:
//!
//! - answers are prepared when the registry changes ([`answers`]): per network, every name in
//!   wire form with its A records already encoded;
//! - per query, the datagram is read only as far as needed ([`query`]), and the answer is the
//!   asker's header bits, its question copied byte for byte (its case survives), the prepared
//!   records (shuffled), and an OPT record if it sent one ([`answer`]);
//! - a few worker threads per node (one per core), each waiting on an epoll set, own one
//!   SO_REUSEPORT socket of every served namespace; they read and answer in batches
//!   (`recvmmsg`/`sendmmsg`, [`worker`]).
//!
//! Everything the fast path does not answer exactly goes to the slow path unchanged
//! ([`slow`]): hickory's parser, meshd's [`crate::MeshHandler`] and hickory's encoder, as before,
//! on a tokio task. That is: anything [`query::parse`] does not take (responses, other opcodes,
//! several questions, compression in the question, a class other than IN, EDNS other than a
//! plain version-0 OPT, trailing bytes); names not on exactly one of the namespace's networks
//! (NXDOMAIN, forwarding, names on two networks whose addresses are merged); PTR and meta
//! types; and every query that arrives while the prepared answers are not those of the current
//! registry (between a registry swap and the end of the matching [`Prepared::prepare`]).
//! TCP is never on the fast path.
//!
//! The scope is the same: a socket belongs to one namespace, and its queries are looked up in
//! the tables of that namespace's networks only ([`answers::Answers::tables`]). The bounds of
//! [`crate::limits`] are on forwarding slots and TCP connections, neither of which the fast
//! path uses; the handoff to the slow path is one bounded queue per namespace
//! ([`slow::QUEUE`], counted in `udp_slow_queue_full` when full), so one namespace's slow
//! queries never delay another's.

pub mod answer;
pub mod answers;
/// Test support: the fast path checked against the slow one (property tests and fuzzing).
#[doc(hidden)]
pub mod differential;
pub mod query;
pub mod slow;
pub mod worker;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::registry::Registry;
use answers::{find, Answers, Found, Table};
use query::{parse, Parsed, MAX_NAME_LEN, TYPE_A, TYPE_OPT};

pub use answer::MAX_ANSWER;
pub use worker::{FastListener, FastPath};

/// The prepared answers of one registry.
#[derive(Debug)]
pub struct Built {
    /// The registry they were prepared from: used only while it is the current one.
    pub registry: Arc<Registry>,
    pub ttl: u32,
    pub answers: Answers,
}

/// The prepared answers of the node's current registry, shared by every worker.
#[derive(Debug)]
pub struct Prepared {
    current: ArcSwap<Option<Arc<Built>>>,
}

impl Default for Prepared {
    fn default() -> Self {
        Prepared { current: ArcSwap::from_pointee(None) }
    }
}

impl Prepared {
    /// Prepares the answers of `registry` (call after storing it where the handlers read it).
    pub fn prepare(&self, registry: Arc<Registry>, ttl: u32) {
        let answers = Answers::build(&registry, ttl);
        self.current.store(Arc::new(Some(Arc::new(Built { registry, ttl, answers }))));
    }

    /// The prepared answers, if they are those of `registry` with `ttl`.
    pub fn for_registry(&self, registry: &Arc<Registry>, ttl: u32) -> Option<Arc<Built>> {
        let current = self.current.load();
        match current.as_ref() {
            Some(built) if Arc::ptr_eq(&built.registry, registry) && built.ttl == ttl => Some(built.clone()),
            _ => None,
        }
    }
}

/// What the fast path does with one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answered: the first `n` bytes of the out buffer.
    Answer(usize),
    /// For the slow path.
    Slow,
    /// Not even a DNS header: dropped, as hickory-server drops it.
    Drop,
}

/// Answers `datagram` from a namespace's `tables` (None: the prepared answers are not current),
/// or says where it goes instead.
pub fn respond<R: rand::Rng>(
    datagram: &[u8],
    tables: Option<&[&Table]>,
    out: &mut [u8; MAX_ANSWER],
    rng: &mut R,
) -> Verdict {
    let mut name = [0u8; MAX_NAME_LEN];
    let (query, name_len) = match parse(datagram, &mut name) {
        Parsed::Fast { query, name_len } => (query, name_len),
        Parsed::Slow => return Verdict::Slow,
        Parsed::Drop => return Verdict::Drop,
    };
    let Some(tables) = tables else { return Verdict::Slow };
    let found = find(tables, &name[..name_len]);
    match (query.qtype, found) {
        (TYPE_A, Found::One(prepared)) => {
            Verdict::Answer(answer::write(datagram, &query, Some(prepared), out, rng))
        }
        // A name of ours with no records of this type: NODATA, as the slow path answers
        // (whether the name is on one network or several).
        (qtype, Found::One(_) | Found::Several) if nodata_type(qtype) => {
            Verdict::Answer(answer::write(datagram, &query, None, out, rng))
        }
        _ => Verdict::Slow,
    }
}

/// Types the fast path answers with NODATA for an existing name: every data type but A and
/// PTR (a PTR question may be a reverse name: the slow path decides), and not 0, OPT or the
/// meta types (128 and above: ANY, AXFR, ...), which the slow path keeps.
fn nodata_type(qtype: u16) -> bool {
    !matches!(qtype, 0 | TYPE_A | query::TYPE_PTR | TYPE_OPT) && qtype < 128
}
