//! The tamper-evident ledger of custody: an RFC 9162 (§2) Merkle tree.
//!
//! What this crate does:
//! - hashes leaves and interior nodes with domain separation ([`leaf_hash`], [`node_hash`]);
//! - appends leaves to a tree held in memory ([`MemoryTree`]) or, for a database, keeps the
//!   right edge of the tree ([`Frontier`]) and says which new node hashes to store;
//! - plans and assembles inclusion and consistency proofs from *stored* complete-subtree
//!   hashes read through the [`NodeReader`] trait: O(log n) reads, never a rebuild;
//! - verifies proofs offline ([`verify_inclusion`], [`verify_consistency`]) with nothing but
//!   hashes, exactly as RFC 9162 §2.1.3.2 and §2.1.4.2 describe;
//! - formats, parses and verifies C2SP `tlog-checkpoint` notes ([`Checkpoint`]), and follows
//!   the log key's hand-overs to its successors ([`LogKeys`]).
//!
//! What it does not do: store anything durably, read the clock, or decide what a leaf
//! means. The leaves are opaque bytes (custody's events as RFC 8785 JSON, chosen elsewhere).
//!
//! ```
//! use custody_ledger::{MemoryTree, leaf_hash, prove_inclusion, verify_inclusion};
//!
//! let mut tree = MemoryTree::new();
//! for event in [&b"build"[..], b"sign", b"promote"] {
//!     tree.append(leaf_hash(event));
//! }
//! let root = tree.root(3).unwrap();
//! let proof = prove_inclusion(&tree, 1, 3).unwrap();
//! verify_inclusion(&leaf_hash(b"sign"), 1, 3, &proof, &root).unwrap();
//! assert!(verify_inclusion(&leaf_hash(b"forged"), 1, 3, &proof, &root).is_err());
//! ```

mod checkpoint;
mod frontier;
mod hash;
mod log_keys;
mod memory;
mod node;
mod proof;
mod verify;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use frontier::Frontier;
pub use hash::{EMPTY_ROOT, HASH_LEN, Hash, leaf_hash, node_hash};
pub use log_keys::{LOG_KEY_ROTATED, LogKeyRotation, LogKeys};
pub use memory::MemoryTree;
pub use node::NodeId;
pub use proof::{
    NodeReader, ProofPlan, ReadError, consistency_plan, inclusion_plan, prove_consistency,
    prove_inclusion, root_plan, tree_root,
};
pub use verify::{ProofError, root_from_inclusion, verify_consistency, verify_inclusion};
