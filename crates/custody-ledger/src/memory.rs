//! A Merkle tree held wholly in memory: the reference [`NodeReader`] and the tree the
//! tests and benchmarks build.

use crate::hash::{EMPTY_ROOT, Hash, node_hash};
use crate::node::NodeId;
use crate::proof::{NodeReader, ReadError, tree_root};

/// An append-only Merkle tree that keeps the hash of every complete subtree.
///
/// Appending costs one leaf hash plus, amortised, one node hash. Memory is about two
/// hashes per leaf.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    /// `levels[l][i]` is the hash of the perfect subtree `NodeId::new(l, i)`.
    /// Invariant: `levels[l + 1].len() == levels[l].len() / 2`.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> Self {
        MemoryTree::default()
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf by its leaf hash ([`crate::leaf_hash`]); returns its index.
    pub fn append(&mut self, leaf_hash: Hash) -> u64 {
        let index = self.size();
        let mut hash = leaf_hash;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(hash);
            let len = row.len();
            // A row of even length just completed a pair: their parent is now complete.
            if len % 2 == 1 {
                break;
            }
            hash = node_hash(&row[len - 2], &row[len - 1]);
            level += 1;
        }
        index
    }

    /// The root of the first `size` leaves; `None` if the tree is smaller.
    pub fn root(&self, size: u64) -> Option<Hash> {
        if size > self.size() {
            return None;
        }
        if size == 0 {
            return Some(EMPTY_ROOT);
        }
        tree_root(self, size).ok()
    }
}

impl NodeReader for MemoryTree {
    fn read_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, ReadError> {
        ids.iter()
            .map(|id| {
                self.levels
                    .get(usize::from(id.level))
                    .and_then(|row| row.get(usize::try_from(id.index).ok()?))
                    .copied()
                    .ok_or(ReadError::Missing(*id))
            })
            .collect()
    }
}
