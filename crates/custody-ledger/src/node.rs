//! Addresses of complete subtrees, the unit of hash storage.
//!
//! A tree of any size is a sequence of *perfect* subtrees (sizes that are powers of two,
//! aligned to their size). Their hashes never change once the subtree is full, so they are
//! what a store keeps; every root and every proof node is either one of them or the fold
//! of a few of them along the tree's right edge.

/// A perfect subtree: level `level` (size `2^level` leaves), the `index`-th such subtree
/// from the left. It covers leaves `[index << level, (index + 1) << level)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    /// Height above the leaves; leaves are level 0.
    pub level: u8,
    /// Position among the subtrees of this level.
    pub index: u64,
}

impl NodeId {
    /// The node `(level, index)`.
    pub const fn new(level: u8, index: u64) -> Self {
        NodeId { level, index }
    }

    /// The leaf at `index`, a subtree of size one.
    pub const fn leaf(index: u64) -> Self {
        NodeId { level: 0, index }
    }
}

/// The largest power of two strictly less than `n` (`n >= 2`): where RFC 9162 splits a
/// tree of `n` leaves into its left and right children.
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Decomposes the leaf range `[begin, end)` into perfect subtrees, largest first.
///
/// Invariant relied on by callers: `begin` is aligned to the largest power of two not
/// above `end - begin` (true of every range the RFC 9162 recursions produce), so the sizes
/// strictly decrease and the MTH of the range is the right-to-left fold of the result.
pub(crate) fn decompose(begin: u64, end: u64, out: &mut Vec<NodeId>) {
    let mut at = begin;
    while at < end {
        let remaining = end - at;
        // The largest level that both fits in what remains and keeps `at` aligned.
        let fit = 63 - remaining.leading_zeros();
        let align = if at == 0 { 63 } else { at.trailing_zeros() };
        let level = fit.min(align);
        out.push(NodeId::new(level as u8, at >> level));
        at += 1 << level;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_largest_power_below() {
        let cases = [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (1 << 40, 1 << 39),
        ];
        for (n, k) in cases {
            assert_eq!(split_point(n), k, "n={n}");
        }
    }

    /// Any range, aligned or not, is covered exactly by aligned perfect subtrees in order.
    #[test]
    fn decompose_covers_any_range_with_aligned_subtrees() {
        for begin in 0..40u64 {
            for end in begin..80 {
                let mut out = vec![];
                decompose(begin, end, &mut out);
                let mut at = begin;
                for node in out {
                    assert_eq!(node.index << node.level, at, "[{begin}, {end}): {node:?}");
                    at += 1 << node.level;
                }
                assert_eq!(at, end, "[{begin}, {end})");
            }
        }
    }

    #[test]
    fn decompose_follows_binary_of_the_length() {
        let mut out = vec![];
        decompose(0, 13, &mut out);
        assert_eq!(
            out,
            [NodeId::new(3, 0), NodeId::new(2, 2), NodeId::new(0, 12)]
        );
        out.clear();
        decompose(8, 16, &mut out);
        assert_eq!(out, [NodeId::new(3, 1)]);
        out.clear();
        decompose(4, 7, &mut out);
        assert_eq!(out, [NodeId::new(1, 2), NodeId::new(0, 6)]);
    }
}
