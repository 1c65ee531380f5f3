//! Offline proof verification, exactly as RFC 9162 §2.1.3.2 and §2.1.4.2 specify.
//!
//! Everything here takes untrusted bytes (hashes straight from a wire format or an export)
//! and checks their lengths itself, so an auditor can call it on whatever they were given.
//! Nothing here reads a store: a proof is checked against roots the caller already trusts
//! (from a signed checkpoint).

use crate::hash::{HASH_LEN, Hash, node_hash};

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// A hash in the input is not 32 bytes.
    #[error("{what} is {len} bytes; a SHA-256 hash is {HASH_LEN}")]
    BadHashLength {
        /// Which input ("leaf hash", "root", "proof hash 3", …).
        what: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The index or sizes describe no valid proof.
    #[error("{0}")]
    BadRequest(String),
    /// The proof has too many or too few hashes for the index and size.
    #[error(
        "proof has the wrong number of hashes for the tree sizes (and an inclusion proof's leaf index) it is about"
    )]
    WrongProofLength,
    /// The proof was well-formed but leads to a different root: the leaf is not in the tree,
    /// or the trees are not consistent.
    #[error("{0} computed from the proof does not match the one given")]
    RootMismatch(&'static str),
}

fn to_hash(what: impl FnOnce() -> String, bytes: &[u8]) -> Result<Hash, ProofError> {
    Hash::try_from(bytes).map_err(|_| ProofError::BadHashLength {
        what: what(),
        len: bytes.len(),
    })
}

fn proof_hashes(proof: &[impl AsRef<[u8]>]) -> Result<Vec<Hash>, ProofError> {
    proof
        .iter()
        .enumerate()
        .map(|(i, p)| to_hash(|| format!("proof hash {i}"), p.as_ref()))
        .collect()
}

/// Recomputes the root from a leaf hash and its inclusion proof (RFC 9162 §2.1.3.2).
pub fn root_from_inclusion(
    leaf_hash: &[u8],
    index: u64,
    size: u64,
    proof: &[impl AsRef<[u8]>],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::BadRequest(format!(
            "leaf index {index} is not in a tree of size {size}"
        )));
    }
    let leaf = to_hash(|| "leaf hash".into(), leaf_hash)?;
    let proof = proof_hashes(proof)?;
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = leaf;
    for p in &proof {
        if snode == 0 {
            return Err(ProofError::WrongProofLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongProofLength);
    }
    Ok(r)
}

/// Checks that the leaf with hash `leaf_hash` is at `index` in the tree of `size` leaves
/// whose root is `root`.
pub fn verify_inclusion(
    leaf_hash: &[u8],
    index: u64,
    size: u64,
    proof: &[impl AsRef<[u8]>],
    root: &[u8],
) -> Result<(), ProofError> {
    let root = to_hash(|| "root".into(), root)?;
    if root_from_inclusion(leaf_hash, index, size, proof)? != root {
        return Err(ProofError::RootMismatch("root"));
    }
    Ok(())
}

/// Checks that the tree of `size2` leaves with root `root2` extends the tree of `size1`
/// leaves with root `root1` (RFC 9162 §2.1.4.2): nothing in the first was changed or
/// dropped.
///
/// Equal sizes need an empty proof and equal roots. A proof from size 0 is refused:
/// every tree "extends" the empty one, so such a check would prove nothing.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[impl AsRef<[u8]>],
    root1: &[u8],
    root2: &[u8],
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::BadRequest(format!(
            "size1 {size1} is larger than size2 {size2}"
        )));
    }
    if size1 == 0 {
        return Err(ProofError::BadRequest(
            "a consistency proof from the empty tree proves nothing".into(),
        ));
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength);
        }
        if root1 != root2 {
            return Err(ProofError::RootMismatch("root"));
        }
        return Ok(());
    }
    let first_hash = to_hash(|| "root1".into(), root1)?;
    let second_hash = to_hash(|| "root2".into(), root2)?;
    let mut path = proof_hashes(proof)?;
    if path.is_empty() {
        return Err(ProofError::WrongProofLength);
    }
    // Step 2: when the old tree is a perfect subtree, its root is the proof's start.
    if size1.is_power_of_two() {
        path.insert(0, first_hash);
    }
    let (mut fnode, mut snode) = (size1 - 1, size2 - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(ProofError::WrongProofLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongProofLength);
    }
    if fr != first_hash {
        return Err(ProofError::RootMismatch("root1"));
    }
    if sr != second_hash {
        return Err(ProofError::RootMismatch("root2"));
    }
    Ok(())
}
