//! The two traits every key implements, whether it lives in a file or in a token.

use crate::error::Error;
use crate::key::{KeyId, PublicKey};

/// Something that can sign: a private key in memory, or (later) a PKCS#11 token.
///
/// Implementations produce signatures in the algorithm's standard encoding (Ed25519: 64
/// bytes; ECDSA P-256: DER) over the message as given (the signer hashes it).
pub trait Signer: Send + Sync {
    /// The public half, from which the key id and algorithm follow.
    fn public_key(&self) -> &PublicKey;

    /// The key id of the public half.
    fn key_id(&self) -> KeyId {
        self.public_key().key_id()
    }

    /// Signs `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error>;
}

/// Something that checks signatures: a public key the caller has decided to trust.
pub trait Verifier: Send + Sync {
    /// The id of the key that verifies.
    fn key_id(&self) -> KeyId;

    /// `Ok` only if `signature` is a valid signature of `message` by this key.
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error>;
}

impl<V: Verifier + ?Sized> Verifier for &V {
    fn key_id(&self) -> KeyId {
        (**self).key_id()
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        (**self).verify(message, signature)
    }
}
