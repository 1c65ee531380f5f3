//! The tree's proofs against a naive reference: RFC 9162 §2.1 transcribed literally
//! (recursive MTH, PATH and SUBPROOF over the leaf list), memoised so that every
//! (index, size) and (size1, size2) pair up to 300 leaves runs in seconds.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::collections::HashMap;

use custody_ledger::{
    EMPTY_ROOT, Hash, MemoryTree, leaf_hash, node_hash, prove_consistency, prove_inclusion,
    root_from_inclusion, verify_consistency, verify_inclusion,
};
use proptest::prelude::*;

struct Reference {
    leaves: Vec<Hash>,
    memo: HashMap<(usize, usize), Hash>,
}

impl Reference {
    fn new(n: usize) -> Self {
        let leaves = (0..n)
            .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
            .collect();
        Reference {
            leaves,
            memo: HashMap::new(),
        }
    }

    /// The largest power of two smaller than n.
    fn k(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// MTH(D[lo:hi]).
    fn mth(&mut self, lo: usize, hi: usize) -> Hash {
        if let Some(h) = self.memo.get(&(lo, hi)) {
            return *h;
        }
        let h = match hi - lo {
            0 => EMPTY_ROOT,
            1 => self.leaves[lo],
            n => {
                let k = Self::k(n);
                let (l, r) = (self.mth(lo, lo + k), self.mth(lo + k, hi));
                node_hash(&l, &r)
            }
        };
        self.memo.insert((lo, hi), h);
        h
    }

    /// PATH(m, D[lo:hi]), m absolute.
    fn path(&mut self, m: usize, lo: usize, hi: usize) -> Vec<Hash> {
        let n = hi - lo;
        if n == 1 {
            return vec![];
        }
        let k = Self::k(n);
        if m - lo < k {
            let mut p = self.path(m, lo, lo + k);
            p.push(self.mth(lo + k, hi));
            p
        } else {
            let mut p = self.path(m, lo + k, hi);
            p.push(self.mth(lo, lo + k));
            p
        }
    }

    /// SUBPROOF(m, D[lo:hi], b), m relative to lo.
    fn subproof(&mut self, m: usize, lo: usize, hi: usize, b: bool) -> Vec<Hash> {
        let n = hi - lo;
        if m == n {
            return if b { vec![] } else { vec![self.mth(lo, hi)] };
        }
        let k = Self::k(n);
        if m <= k {
            let mut p = self.subproof(m, lo, lo + k, b);
            p.push(self.mth(lo + k, hi));
            p
        } else {
            let mut p = self.subproof(m - k, lo + k, hi, false);
            p.push(self.mth(lo, lo + k));
            p
        }
    }
}

fn tree_of(reference: &Reference) -> MemoryTree {
    let mut tree = MemoryTree::new();
    for h in &reference.leaves {
        tree.append(*h);
    }
    tree
}

#[test]
fn every_inclusion_and_consistency_proof_up_to_300_leaves_matches_the_reference() {
    const N: usize = 300;
    let mut r = Reference::new(N);
    let tree = tree_of(&r);
    for size in 1..=N {
        let root = r.mth(0, size);
        assert_eq!(tree.root(size as u64).unwrap(), root, "root at {size}");
        for index in 0..size {
            let proof = prove_inclusion(&tree, index as u64, size as u64).unwrap();
            assert_eq!(proof, r.path(index, 0, size), "inclusion {index} in {size}");
            verify_inclusion(&r.leaves[index], index as u64, size as u64, &proof, &root).unwrap();
        }
        for size1 in 1..=size {
            let proof = prove_consistency(&tree, size1 as u64, size as u64).unwrap();
            let want = if size1 == size {
                vec![]
            } else {
                r.subproof(size1, 0, size, true)
            };
            assert_eq!(proof, want, "consistency {size1} -> {size}");
            let root1 = r.mth(0, size1);
            verify_consistency(size1 as u64, size as u64, &proof, &root1, &root).unwrap();
        }
    }
}

#[test]
fn tampered_proofs_fail() {
    let r = Reference::new(37);
    let tree = tree_of(&r);
    let root = tree.root(37).unwrap();
    let proof = prove_inclusion(&tree, 5, 37).unwrap();
    for i in 0..proof.len() {
        let mut bad = proof.clone();
        bad[i][0] ^= 1;
        assert!(verify_inclusion(&r.leaves[5], 5, 37, &bad, &root).is_err());
    }
    // Truncated, padded, wrong index, wrong size.
    assert!(verify_inclusion(&r.leaves[5], 5, 37, &proof[..proof.len() - 1], &root).is_err());
    let mut padded = proof.clone();
    padded.push(root);
    assert!(verify_inclusion(&r.leaves[5], 5, 37, &padded, &root).is_err());
    assert!(verify_inclusion(&r.leaves[5], 4, 37, &proof, &root).is_err());
    // A size with another tree shape (proof length) fails; sizes of the same shape
    // compute the same root, which is why a checkpoint signs size and root together.
    assert!(verify_inclusion(&r.leaves[5], 5, 16, &proof, &root).is_err());

    let root20 = tree.root(20).unwrap();
    let cproof = prove_consistency(&tree, 20, 37).unwrap();
    verify_consistency(20, 37, &cproof, &root20, &root).unwrap();
    for i in 0..cproof.len() {
        let mut bad = cproof.clone();
        bad[i][31] ^= 0x80;
        assert!(verify_consistency(20, 37, &bad, &root20, &root).is_err());
    }
    assert!(verify_consistency(20, 37, &cproof[1..], &root20, &root).is_err());
    assert!(verify_consistency(21, 37, &cproof, &root20, &root).is_err());
    // A forked history (another root claimed for size 20) is not consistent.
    let forked_root = tree.root(19).unwrap();
    assert!(verify_consistency(20, 37, &cproof, &forked_root, &root).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn proofs_verify_in_larger_trees(
        size in 1usize..5000,
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        let mut r = Reference::new(size);
        let tree = tree_of(&r);
        let root = tree.root(size as u64).unwrap();
        let index = a.index(size);
        let proof = prove_inclusion(&tree, index as u64, size as u64).unwrap();
        prop_assert_eq!(
            root_from_inclusion(&r.leaves[index], index as u64, size as u64, &proof).unwrap(),
            root
        );
        prop_assert_eq!(&proof, &r.path(index, 0, size));
        let size1 = b.index(size) + 1;
        let proof = prove_consistency(&tree, size1 as u64, size as u64).unwrap();
        let want = if size1 == size { vec![] } else { r.subproof(size1, 0, size, true) };
        prop_assert_eq!(&proof, &want);
        let root1 = r.mth(0, size1);
        prop_assert!(verify_consistency(size1 as u64, size as u64, &proof, &root1, &root).is_ok());
    }
}
