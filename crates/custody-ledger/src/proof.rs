//! Proof generation from stored hashes.
//!
//! Generating a proof is split in two so that a database can answer it in one round trip:
//! a *plan* (pure arithmetic on sizes) names the complete subtrees whose hashes are
//! needed, a [`NodeReader`] fetches them in one batch, and the plan *assembles* the proof
//! by folding the few right-edge subtrees that RFC 9162 hashes together on the fly. Every
//! plan needs O(log n) nodes, so a proof never costs a rebuild of the tree.

use crate::hash::{EMPTY_ROOT, Hash, node_hash};
use crate::node::{NodeId, decompose, split_point};

/// Why stored hashes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The request asked about a tree that does not exist (index beyond size, size beyond
    /// the stored tree, sizes out of order).
    #[error("{0}")]
    OutOfRange(String),
    /// A node the plan needs is not stored: the store is incomplete or damaged.
    #[error("hash of subtree level {} index {} is not stored", .0.level, .0.index)]
    Missing(NodeId),
    /// The backend failed.
    #[error("reading stored hashes failed: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

/// Reads hashes of complete subtrees, the storage side of proof generation.
///
/// Contract: `read_nodes(ids)` returns one hash per id, in the order given, or fails; it
/// never returns a hash for a subtree that is not complete in the stored tree. An
/// implementation answers all ids at once (one query, one lock) so that a proof costs one
/// round trip however deep the tree.
pub trait NodeReader {
    /// The hashes of `ids`, in order.
    fn read_nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, ReadError>;
}

/// Which stored subtrees a proof or root needs, and how to fold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofPlan {
    nodes: Vec<NodeId>,
    /// Each proof element is the right-to-left fold of `nodes[start..end]`: a single node
    /// for a perfect subtree, several for a subtree on the ragged right edge.
    elements: Vec<(usize, usize)>,
}

impl ProofPlan {
    fn new() -> Self {
        ProofPlan {
            nodes: Vec::new(),
            elements: Vec::new(),
        }
    }

    /// Adds one proof element: the Merkle tree hash of leaves `[begin, end)`.
    fn push_range(&mut self, begin: u64, end: u64) {
        let start = self.nodes.len();
        decompose(begin, end, &mut self.nodes);
        self.elements.push((start, self.nodes.len()));
    }

    /// The subtrees whose hashes [`ProofPlan::assemble`] needs, in order.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// Builds the proof from the hashes of [`ProofPlan::nodes`], given in the same order.
    pub fn assemble(&self, hashes: &[Hash]) -> Result<Vec<Hash>, ReadError> {
        if hashes.len() != self.nodes.len() {
            return Err(ReadError::Backend(
                format!(
                    "node reader returned {} hashes for {} nodes",
                    hashes.len(),
                    self.nodes.len()
                )
                .into(),
            ));
        }
        Ok(self
            .elements
            .iter()
            .map(|&(start, end)| fold_right(&hashes[start..end]))
            .collect())
    }

    /// Reads the needed hashes from `reader` and assembles the proof.
    pub fn execute(&self, reader: &(impl NodeReader + ?Sized)) -> Result<Vec<Hash>, ReadError> {
        if self.nodes.is_empty() {
            return Ok(Vec::new());
        }
        self.assemble(&reader.read_nodes(&self.nodes)?)
    }
}

/// MTH of a range given its perfect subtrees largest first: `H(a, H(b, H(c, …)))`.
fn fold_right(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let Some(last) = iter.next() else {
        return EMPTY_ROOT;
    };
    iter.fold(*last, |acc, left| node_hash(left, &acc))
}

/// The plan for the root of the tree of `size` leaves (one element; none for size 0).
pub fn root_plan(size: u64) -> ProofPlan {
    let mut plan = ProofPlan::new();
    if size > 0 {
        plan.push_range(0, size);
    }
    plan
}

/// The plan for the inclusion proof of leaf `index` in the tree of `size` leaves
/// (RFC 9162 §2.1.3.1, `PATH(m, D[n])`).
pub fn inclusion_plan(index: u64, size: u64) -> Result<ProofPlan, ReadError> {
    if index >= size {
        return Err(ReadError::OutOfRange(format!(
            "leaf index {index} is not in a tree of size {size}"
        )));
    }
    let mut plan = ProofPlan::new();
    path(index, 0, size, &mut plan);
    Ok(plan)
}

/// `PATH(m, D[lo:hi])`: the audit path of leaf `m` within the subtree of leaves `[lo, hi)`,
/// leaf-side first.
fn path(m: u64, lo: u64, hi: u64, plan: &mut ProofPlan) {
    if hi - lo <= 1 {
        return;
    }
    let k = split_point(hi - lo);
    if m < lo + k {
        path(m, lo, lo + k, plan);
        plan.push_range(lo + k, hi);
    } else {
        path(m, lo + k, hi, plan);
        plan.push_range(lo, lo + k);
    }
}

/// The plan for the consistency proof between the trees of `size1` and `size2` leaves
/// (RFC 9162 §2.1.4.1, `PROOF(m, D[n])`). Equal sizes need an empty proof; a proof from
/// the empty tree is meaningless and refused, as verifiers refuse it.
pub fn consistency_plan(size1: u64, size2: u64) -> Result<ProofPlan, ReadError> {
    if size1 > size2 {
        return Err(ReadError::OutOfRange(format!(
            "consistency from size {size1} to the smaller size {size2} is undefined"
        )));
    }
    if size1 == 0 {
        return Err(ReadError::OutOfRange(
            "consistency from the empty tree proves nothing: ask from size 1 or more".into(),
        ));
    }
    let mut plan = ProofPlan::new();
    // Equal sizes end at once: the old tree is the new one's root, which the verifier has.
    subproof(size1, 0, size2, true, &mut plan);
    Ok(plan)
}

/// `SUBPROOF(m, D[lo:hi], b)`; `m` is absolute (the old tree size).
fn subproof(m: u64, lo: u64, hi: u64, is_old_root: bool, plan: &mut ProofPlan) {
    if m == hi {
        // The old tree's subtree appears whole; the verifier knows it already when it is
        // the old root itself.
        if !is_old_root {
            plan.push_range(lo, hi);
        }
        return;
    }
    let k = split_point(hi - lo);
    if m <= lo + k {
        subproof(m, lo, lo + k, is_old_root, plan);
        plan.push_range(lo + k, hi);
    } else {
        subproof(m, lo + k, hi, false, plan);
        plan.push_range(lo, lo + k);
    }
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves, from stored hashes.
pub fn prove_inclusion(
    reader: &(impl NodeReader + ?Sized),
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ReadError> {
    inclusion_plan(index, size)?.execute(reader)
}

/// The consistency proof from `size1` to `size2`, from stored hashes.
pub fn prove_consistency(
    reader: &(impl NodeReader + ?Sized),
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, ReadError> {
    consistency_plan(size1, size2)?.execute(reader)
}

/// The root of the tree of `size` leaves, from stored hashes.
pub fn tree_root(reader: &(impl NodeReader + ?Sized), size: u64) -> Result<Hash, ReadError> {
    let plan = root_plan(size);
    Ok(plan.execute(reader)?.first().copied().unwrap_or(EMPTY_ROOT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusion_plan_reads_log_n_nodes() {
        let size = 1_000_000;
        for index in [0, 1, 524_287, 524_288, 999_999] {
            let plan = inclusion_plan(index, size).unwrap();
            // 20 levels; the ragged right edge adds at most one node per set bit.
            assert!(
                plan.nodes().len() <= 2 * 20,
                "{index}: {}",
                plan.nodes().len()
            );
        }
    }

    /// A store reads a plan's nodes itself and assembles them: the same proof as executing
    /// the plan on the tree, and the same root as the tree's.
    #[test]
    fn a_plan_assembled_from_its_nodes_is_the_executed_proof() {
        let mut tree = crate::MemoryTree::new();
        for i in 0u32..13 {
            tree.append(crate::leaf_hash(&i.to_be_bytes()));
        }
        for plan in [
            inclusion_plan(4, 13).unwrap(),
            consistency_plan(5, 13).unwrap(),
            root_plan(13),
        ] {
            assert!(!plan.nodes().is_empty());
            let read = tree.read_nodes(plan.nodes()).unwrap();
            assert_eq!(plan.assemble(&read).unwrap(), plan.execute(&tree).unwrap());
        }
        let read = tree.read_nodes(root_plan(13).nodes()).unwrap();
        assert_eq!(
            root_plan(13).assemble(&read).unwrap(),
            [tree.root(13).unwrap()]
        );
        // The empty tree's root is a constant: nothing to read, nothing to assemble.
        assert!(root_plan(0).nodes().is_empty());
        assert!(root_plan(0).assemble(&[]).unwrap().is_empty());
    }

    #[test]
    fn plans_refuse_impossible_requests() {
        assert!(inclusion_plan(5, 5).is_err());
        assert!(inclusion_plan(0, 0).is_err());
        assert!(consistency_plan(6, 5).is_err());
        assert!(consistency_plan(0, 5).is_err());
        assert!(consistency_plan(5, 5).unwrap().nodes().is_empty());
    }
}
