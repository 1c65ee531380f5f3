//! Signatures for custody: everything custody signs or verifies goes through here.
//!
//! What this crate does:
//! - keys: Ed25519 and ECDSA P-256 generation, PKCS#8 / SPKI PEM in and out, key ids
//!   (lowercase hex SHA-256 of the SPKI DER) — [`PrivateKey`], [`PublicKey`], [`KeyId`];
//! - strict verification everywhere: weak (small-order) Ed25519 keys refused when read,
//!   Ed25519 checked as `verify_strict`, ECDSA P-256 accepted in DER or raw `r‖s` but only in
//!   low-S form, and what custody signs is low-S (the rules live in one private module,
//!   `strict.rs`);
//! - one [`Signer`] / [`Verifier`] pair of traits that file keys and keys in a PKCS#11 token
//!   ([`pkcs11::Pkcs11Signer`], configured by an RFC 7512 URI) implement alike: a verifier
//!   cannot tell which signed;
//! - DSSE v1.0.2 envelopes: PAE, signing, t-of-n verification that hands on only the
//!   verified payload bytes — [`dsse`];
//! - in-toto Statement v1 with checked subjects, digests and predicates — [`statement`];
//! - C2SP signed notes with Ed25519 keys — [`note`]; witness cosignatures on them (C2SP
//!   `tlog-cosignature`, Ed25519 v1) — [`cosignature`];
//! - streaming SHA-256 / SHA-512 of artifacts — [`hashing`].
//!
//! What it does not do: read or write files (callers pass bytes or a reader; the one
//! exception is the PIN file a PKCS#11 configuration names), read the clock, or decide which
//! keys to trust (callers pass the trusted set in).
//!
//! ```
//! use custody_crypto::{Algorithm, PrivateKey, Signer, dsse};
//!
//! let key = PrivateKey::generate(Algorithm::Ed25519);
//! let envelope = dsse::sign(&key, "text/plain", b"hello", dsse::KeyIdHint::KeyId).unwrap();
//! let verified = dsse::verify(&envelope, &[key.public_key()], 1).unwrap();
//! assert_eq!(verified.payload(), b"hello");
//! assert_eq!(verified.key_ids(), [key.key_id()]);
//! ```

pub mod cosignature;
pub mod dsse;
mod error;
pub mod hashing;
mod key;
pub mod note;
pub mod pkcs11;
mod signer;
pub mod statement;
mod strict;

pub use error::Error;
pub use key::{Algorithm, KeyId, PrivateKey, PublicKey};
pub use pkcs11::{Pkcs11Config, Pkcs11Signer};
pub use signer::{Signer, Verifier};
