//! The DNS server's fast path against its slow path (differential): the same comparison the
//! property tests make (`meshd_dns::fast::differential`), here on AFL's inputs. The first byte
//! of the input picks the asking namespace's scope; the rest is the datagram.

use meshd_dns::fast::differential::{compare, SCOPES};

pub fn fast_against_slow(data: &[u8]) {
    let Some((&pick, datagram)) = data.split_first() else { return };
    let scope = SCOPES[usize::from(pick) % SCOPES.len()];
    if let Err(difference) = compare(datagram, scope) {
        panic!("fast and slow paths differ: {difference}");
    }
}
