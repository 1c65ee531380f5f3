//! What counts as a valid key and a valid signature: the strict rules every verification in
//! custody applies, in one place.
//!
//! - **Ed25519 keys** must be canonically encoded points of the prime-order subgroup. A
//!   small-order ("weak") key would let one fixed signature verify *any* message; a key with a
//!   small-order component cannot belong to an honest signer (every real key is `a·B`) and is
//!   what lets batch and single verification disagree.
//! - **Ed25519 signatures** are checked as ed25519-dalek's `verify_strict`: S reduced below the
//!   group order L, R canonically encoded and not of small order, the cofactorless equation.
//!   So a signature has exactly one valid encoding.
//! - **ECDSA P-256 signatures** are accepted as DER or raw `r‖s` (DSSE producers use both), and
//!   are verified in their normalised low-S form: the high-S twin `(r, n−s)` of a signature is
//!   the same signature. ECDSA as standardised (and Wycheproof) counts both forms valid, and
//!   common signers (OpenSSL, so securesystemslib; Go's crypto/ecdsa) emit either, so refusing
//!   high-S would refuse about half of the P-256 attestations made elsewhere. Malleability buys
//!   an attacker nothing here: custody never identifies a signature by its bytes (a threshold
//!   counts distinct keys; records are identified by their payload and key). What custody
//!   signs is low-S before it leaves the signer.

use curve25519_dalek::edwards::CompressedEdwardsY;
use p256::ecdsa::Signature as P256Signature;
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

/// Why a signature failed, for the error message; the caller names the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The signature has the wrong length for the algorithm.
    Length(usize),
    /// Ed25519: S is not reduced modulo the group order, the classic malleated encoding.
    NonCanonicalS,
    /// ECDSA: neither a DER `ECDSA-Sig-Value` nor 64 bytes of `r‖s` with `0 < r, s < n`.
    Encoding,
    /// Well-formed, but not a signature of this message by this key.
    Mismatch,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Length(n) => write!(f, "an Ed25519 signature is 64 bytes, this one is {n}"),
            Refusal::NonCanonicalS => f.write_str(
                "its S value is not reduced below the group order (a malleated signature)",
            ),
            Refusal::Encoding => f.write_str(
                "it is neither a DER ECDSA signature nor 64 bytes of r‖s with 0 < r, s < n",
            ),
            Refusal::Mismatch => f.write_str("it does not match the message"),
        }
    }
}

/// Checks 32 bytes as an Ed25519 public key custody will verify with.
pub(crate) fn ed25519_key(bytes: &[u8; 32]) -> Result<ed25519_dalek::VerifyingKey, String> {
    let point = CompressedEdwardsY(*bytes)
        .decompress()
        .ok_or("the bytes are not a point on the Ed25519 curve")?;
    // curve25519-dalek decodes a y coordinate ≥ p by reducing it; such an encoding is a second
    // name for the same key and no honest encoder emits it.
    if point.compress().as_bytes() != bytes {
        return Err("the point is not canonically encoded (y ≥ p)".into());
    }
    if point.is_small_order() {
        return Err(
            "it is a small-order (weak) key, for which one signature verifies any \
                    message"
                .into(),
        );
    }
    if !point.is_torsion_free() {
        return Err("it has a small-order component, which no honestly generated key has".into());
    }
    ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|e| e.to_string())
}

/// Strict Ed25519 verification (`verify_strict`), with the key already checked by
/// [`ed25519_key`].
pub(crate) fn verify_ed25519(
    key: &ed25519_dalek::VerifyingKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), Refusal> {
    let bytes: &[u8; 64] = signature
        .try_into()
        .map_err(|_| Refusal::Length(signature.len()))?;
    let signature = ed25519_dalek::Signature::from_bytes(bytes);
    // verify_strict refuses a non-reduced S too; checking it first only sharpens the message.
    if Option::<curve25519_dalek::Scalar>::from(curve25519_dalek::Scalar::from_canonical_bytes(
        *signature.s_bytes(),
    ))
    .is_none()
    {
        return Err(Refusal::NonCanonicalS);
    }
    // ed25519-dalek's `verify_strict`, computed by aws-lc (whose assembly verifies about
    // 1.3x faster). aws-lc checks S < L and the cofactorless equation by comparing the
    // canonical encoding of R' = [S]B − [k]A with R's bytes, so R is canonical. What
    // `verify_strict` adds is that R is not of small order: since the key is checked to lie
    // in the prime-order subgroup (`ed25519_key`), so does R', and the one point of small
    // order there is the identity. So refusing R = identity makes the two agree on every
    // signature (tests/strict.rs and the Wycheproof vectors hold both to it).
    if signature.r_bytes() == &IDENTITY {
        return Err(Refusal::Mismatch);
    }
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, key.as_bytes())
        .verify(message, bytes)
        .map_err(|_| Refusal::Mismatch)
}

/// The canonical encoding of the identity point (y = 1), the one small-order point of the
/// prime-order subgroup.
const IDENTITY: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 1;
    b
};

/// ECDSA P-256 verification over SHA-256 of `message`, the signature in DER or `r‖s`, read
/// in its low-S form.
///
/// `sec1` is the key's uncompressed point. `ring` does the arithmetic (several times faster than
/// the pure-Rust implementation); the encodings are checked here first.
pub(crate) fn verify_p256(sec1: &[u8], message: &[u8], signature: &[u8]) -> Result<(), Refusal> {
    // A 64-byte signature is usually r‖s, but a DER signature can be 64 bytes long as well:
    // try both readings rather than decide by length alone.
    let raw = (signature.len() == 64)
        .then(|| P256Signature::from_slice(signature).ok())
        .flatten();
    let der = P256Signature::from_der(signature).ok();
    let mut refusal = Refusal::Encoding;
    for sig in [raw, der].into_iter().flatten() {
        let sig = low_s(sig);
        if UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, sec1)
            .verify(message, &sig.to_bytes())
            .is_ok()
        {
            return Ok(());
        }
        if refusal == Refusal::Encoding {
            refusal = Refusal::Mismatch;
        }
    }
    Err(refusal)
}

/// The low-S form of an ECDSA signature: what every custody signer emits.
pub(crate) fn low_s(signature: P256Signature) -> P256Signature {
    signature.normalize_s().unwrap_or(signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;

    #[test]
    fn every_small_order_point_is_refused_as_a_key() {
        for t in EIGHT_TORSION {
            let err = ed25519_key(t.compress().as_bytes()).unwrap_err();
            assert!(err.contains("small-order"), "{err}");
        }
    }

    #[test]
    fn a_mixed_order_key_is_refused() {
        let honest = ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key();
        ed25519_key(honest.as_bytes()).unwrap();
        let mixed = honest.to_edwards() + EIGHT_TORSION[1];
        let err = ed25519_key(mixed.compress().as_bytes()).unwrap_err();
        assert!(err.contains("small-order component"), "{err}");
    }

    #[test]
    fn a_non_canonical_encoding_is_refused() {
        // y = 1 encoded as p + 1: a second name for the identity, refused for the encoding
        // before its order is even considered.
        let mut bytes = [0xff; 32];
        bytes[0] = 0xee;
        bytes[31] = 0x7f;
        let err = ed25519_key(&bytes).unwrap_err();
        assert!(err.contains("canonically"), "{err}");
    }

    /// An ECDSA refusal says which: bytes that are no signature at all, or a well-formed
    /// signature that is not this key's over this message (the message names which).
    #[test]
    fn an_ecdsa_refusal_tells_malformed_from_mismatched() {
        use crate::{Algorithm, PrivateKey, Signer as _};
        let key = PrivateKey::generate(Algorithm::EcdsaP256);
        let other = PrivateKey::generate(Algorithm::EcdsaP256);
        let sec1 = key.public_key().raw_bytes();
        let signature = key.sign(b"m").unwrap();
        assert_eq!(verify_p256(sec1, b"m", &signature), Ok(()));
        assert_eq!(verify_p256(sec1, b"n", &signature), Err(Refusal::Mismatch));
        let by_other = other.sign(b"m").unwrap();
        assert_eq!(verify_p256(sec1, b"m", &by_other), Err(Refusal::Mismatch));
        assert_eq!(verify_p256(sec1, b"m", &[0; 64]), Err(Refusal::Encoding));
        assert_eq!(
            verify_p256(sec1, b"m", b"not a signature"),
            Err(Refusal::Encoding)
        );
    }
}
