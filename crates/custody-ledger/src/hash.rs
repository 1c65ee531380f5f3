//! RFC 9162 §2.1.1 hashing: SHA-256 with a one-byte domain separator, so that a leaf can
//! never be passed off as an interior node (second-preimage resistance).

use sha2::{Digest as _, Sha256};

/// Length of every hash in the tree, in bytes.
pub const HASH_LEN: usize = 32;

/// A SHA-256 hash of a leaf, a node or a whole tree.
pub type Hash = [u8; HASH_LEN];

/// The root of the empty tree: `SHA-256()` of nothing.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// `SHA-256(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(leaf);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 1 + 2 * HASH_LEN];
    buf[0] = 0x01;
    buf[1..1 + HASH_LEN].copy_from_slice(left);
    buf[1 + HASH_LEN..].copy_from_slice(right);
    Sha256::digest(buf).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(EMPTY_ROOT, <[u8; 32]>::from(Sha256::digest([])));
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let mut concat = vec![];
        concat.extend_from_slice(&a);
        concat.extend_from_slice(&b);
        // The same 64 bytes hashed as a leaf must differ from the node over them.
        assert_ne!(leaf_hash(&concat), node_hash(&a, &b));
        // RFC 6962 test data: the leaf hash of the empty string.
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }
}
