//! The two traits every key implements, whether it lives in a file or in a token.

use crate::error::Error;
use crate::key::{Algorithm, KeyId, PublicKey};

/// Something that can sign: a private key in memory ([`crate::PrivateKey`]), or a key in a
/// PKCS#11 token ([`crate::pkcs11::Pkcs11Signer`]).
///
/// Implementations produce signatures in the algorithm's standard encoding (Ed25519: 64
/// bytes; ECDSA P-256: DER, low-S) over the message as given (the signer hashes it), so a
/// verifier cannot tell which kind of signer made one.
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

/// A boxed signer (what the CLI builds from "a key file or a `pkcs11:` URI") signs as the
/// signer inside it.
impl<S: Signer + ?Sized> Signer for Box<S> {
    fn public_key(&self) -> &PublicKey {
        (**self).public_key()
    }

    fn key_id(&self) -> KeyId {
        (**self).key_id()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        (**self).sign(message)
    }
}

/// Something that checks signatures: a public key the caller has decided to trust.
pub trait Verifier: Send + Sync {
    /// The id of the key that verifies.
    fn key_id(&self) -> KeyId;

    /// The algorithm of the key that verifies.
    fn algorithm(&self) -> Algorithm;

    /// `Ok` only if `signature` is a valid signature of `message` by this key.
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error>;
}

impl<V: Verifier + ?Sized> Verifier for &V {
    fn key_id(&self) -> KeyId {
        (**self).key_id()
    }

    fn algorithm(&self) -> Algorithm {
        (**self).algorithm()
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        (**self).verify(message, signature)
    }
}
