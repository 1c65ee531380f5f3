//! The right edge of a tree: what an appender needs to extend a stored tree without
//! reading it.

use crate::hash::{EMPTY_ROOT, Hash, node_hash};
use crate::node::{NodeId, decompose};

/// The perfect subtrees that make up a tree of `size` leaves, largest first (the
/// "compact range" `[0, size)`): at most 64 hashes for any size.
///
/// A database backend keeps one in memory (or rebuilds it from `size` and the nodes of
/// [`Frontier::nodes_for`]), appends leaves to it, and stores the node hashes each append
/// returns: exactly the complete subtrees that a proof may later read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    /// Invariant: the ids are `decompose(0, size)`, so levels strictly decrease.
    nodes: Vec<(NodeId, Hash)>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Frontier::default()
    }

    /// The subtrees whose hashes [`Frontier::from_hashes`] needs for `size`.
    pub fn nodes_for(size: u64) -> Vec<NodeId> {
        let mut ids = Vec::new();
        decompose(0, size, &mut ids);
        ids
    }

    /// Rebuilds the frontier of a stored tree from the hashes of
    /// [`Frontier::nodes_for`]`(size)`, in that order. `None` if the count is wrong.
    pub fn from_hashes(size: u64, hashes: &[Hash]) -> Option<Self> {
        let ids = Frontier::nodes_for(size);
        if ids.len() != hashes.len() {
            return None;
        }
        Some(Frontier {
            size,
            nodes: ids.into_iter().zip(hashes.iter().copied()).collect(),
        })
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash. Returns every subtree completed by this leaf (the leaf itself
    /// first, then each new parent), which the caller must store for proofs.
    pub fn append(&mut self, leaf_hash: Hash) -> Vec<(NodeId, Hash)> {
        let mut created = Vec::new();
        self.grow(leaf_hash, |node| created.push(node));
        created
    }

    /// Appends a leaf hash, for a caller that needs only the roots (a verifier recomputing
    /// a tree of millions of leaves): [`Frontier::append`] without the list of new nodes.
    pub fn push(&mut self, leaf_hash: Hash) {
        self.grow(leaf_hash, |_| {});
    }

    /// Appends a leaf hash, telling `created` each completed subtree, the leaf first.
    fn grow(&mut self, leaf_hash: Hash, mut created: impl FnMut((NodeId, Hash))) {
        let leaf = (NodeId::leaf(self.size), leaf_hash);
        self.nodes.push(leaf);
        created(leaf);
        self.size += 1;
        // Merge equal-level neighbours: two complete siblings make a complete parent.
        while let [.., (left_id, left), (right_id, right)] = self.nodes[..] {
            if left_id.level != right_id.level {
                break;
            }
            let parent = (
                NodeId::new(left_id.level + 1, left_id.index / 2),
                node_hash(&left, &right),
            );
            self.nodes.truncate(self.nodes.len() - 2);
            self.nodes.push(parent);
            created(parent);
        }
    }

    /// The root hash of the tree.
    pub fn root(&self) -> Hash {
        let mut iter = self.nodes.iter().rev();
        let Some((_, last)) = iter.next() else {
            return EMPTY_ROOT;
        };
        iter.fold(*last, |acc, (_, left)| node_hash(left, &acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryTree, NodeReader, leaf_hash};

    #[test]
    fn frontier_matches_memory_tree_and_reports_every_new_node() {
        let mut frontier = Frontier::new();
        let mut tree = MemoryTree::new();
        let mut stored = std::collections::HashMap::new();
        let mut pushed = Frontier::new();
        for i in 0u32..300 {
            let h = leaf_hash(&i.to_be_bytes());
            tree.append(h);
            for (id, hash) in frontier.append(h) {
                assert!(stored.insert(id, hash).is_none(), "{id:?} created twice");
            }
            assert_eq!(frontier.root(), tree.root(tree.size()).unwrap());
            // A verifier's push keeps the same roots as append.
            pushed.push(h);
            assert_eq!(pushed, frontier);
            // Everything the frontier reported is exactly what the memory tree stores.
            let ids: Vec<_> = stored.keys().copied().collect();
            let want = tree.read_nodes(&ids).unwrap();
            let got: Vec<_> = ids.iter().map(|id| stored[id]).collect();
            assert_eq!(got, want);
            // And the frontier can be rebuilt from stored nodes.
            let size = frontier.size();
            let hashes: Vec<_> = Frontier::nodes_for(size)
                .iter()
                .map(|id| stored[id])
                .collect();
            assert_eq!(Frontier::from_hashes(size, &hashes).unwrap(), frontier);
        }
    }
}
