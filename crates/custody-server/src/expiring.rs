//! Bounded in-memory tables of things that expire (dashboard sessions, sign-ins in
//! progress): room is made by dropping what has expired, then what expires soonest.

use std::collections::HashMap;
use std::hash::Hash;

/// Makes room for one more entry in `table`, which holds at most `max`: when full, the
/// entries expired at `now` go, and if it is still full, the one that expires soonest.
pub(crate) fn make_room<K: Copy + Eq + Hash, V, T: Ord + Copy>(
    table: &mut HashMap<K, V>,
    max: usize,
    now: T,
    expires: impl Fn(&V) -> T,
) {
    if table.len() >= max {
        table.retain(|_, v| expires(v) > now);
    }
    if table.len() >= max {
        let soonest = table
            .iter()
            .min_by_key(|(_, v)| expires(v))
            .map(|(k, _)| *k);
        if let Some(k) = soonest {
            table.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expired_go_first_then_the_soonest_to_expire() {
        let mut t: HashMap<u8, i64> = [(1, 10), (2, 30), (3, 20)].into();
        make_room(&mut t, 3, 15, |v| *v);
        assert_eq!(t.len(), 2, "the expired one went");
        assert!(!t.contains_key(&1));
        make_room(&mut t, 2, 15, |v| *v);
        assert_eq!(
            t.keys().copied().collect::<Vec<_>>(),
            [2],
            "then the soonest to expire"
        );
        make_room(&mut t, 5, 100, |v| *v);
        assert_eq!(t.len(), 1, "room enough: nothing goes");
    }
}
