//! DSSE v1.0.2 envelopes: the signature wrapper for every document custody signs.
//!
//! The signature covers `PAE(payloadType, payload)`, the pre-authentication encoding that
//! binds the type to the bytes with lengths in bytes, so neither can be swapped. Verifying
//! yields a [`VerifiedPayload`]: the only way to reach payload bytes from an envelope that
//! a caller may act on. Code that needs the payload takes a `VerifiedPayload`, never the
//! envelope, so the payload is never re-parsed from unverified input.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::key::{Algorithm, KeyId, PublicKey};
use crate::signer::{Signer, Verifier};

/// The most signatures an envelope may carry; more is refused before any is checked, so an
/// attacker cannot make a verifier do unbounded work.
pub const MAX_SIGNATURES: usize = 64;

/// Standard and URL-safe base64, padded or not: producers in the wild emit all four.
const STANDARD_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const URL_SAFE_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn decode_base64(what: &str, text: &str) -> Result<Vec<u8>, Error> {
    STANDARD_ANY_PAD
        .decode(text)
        .or_else(|_| URL_SAFE_ANY_PAD.decode(text))
        .map_err(|e| Error::Envelope(format!("{what} is not base64 (standard or URL-safe): {e}")))
}

/// A DSSE envelope as it travels: JSON with base64 fields. Nothing in it is trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The payload, base64.
    pub payload: String,
    /// What the payload is (e.g. `application/vnd.in-toto+json`).
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// One or more signatures over `PAE(payloadType, payload)`.
    pub signatures: Vec<Signature>,
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// A hint naming the key; never a reason to trust it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyid: Option<String>,
    /// The signature, base64.
    pub sig: String,
}

/// What to put in a new signature's `keyid` hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyIdHint {
    /// custody's key id (hex SHA-256 of the SPKI DER).
    KeyId,
    /// The key id `securesystemslib` computes, so Python verifiers match the key.
    Securesystemslib,
    /// No hint.
    Omit,
}

/// The DSSE pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII decimal bytes.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Parses envelope JSON, checking its shape (not its signatures).
    pub fn from_json(bytes: &[u8]) -> Result<Self, Error> {
        let env: Envelope = serde_json::from_slice(bytes)
            .map_err(|e| Error::Envelope(format!("not DSSE envelope JSON: {e}")))?;
        env.check_signature_count()?;
        Ok(env)
    }

    /// At least one signature, and at most [`MAX_SIGNATURES`].
    fn check_signature_count(&self) -> Result<(), Error> {
        if self.signatures.is_empty() {
            return Err(Error::Envelope("envelope has no signatures".into()));
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(Error::Envelope(format!(
                "envelope has {} signatures; at most {MAX_SIGNATURES} are accepted",
                self.signatures.len()
            )));
        }
        Ok(())
    }

    /// Checks the shape of an envelope that arrived another way than [`Envelope::from_json`]
    /// (inside a request): signatures present and not too many, the payload and every
    /// signature base64. A well-formed envelope may still verify with no trusted key; a
    /// malformed one is bad input, whoever signed it.
    pub fn check_form(&self) -> Result<(), Error> {
        self.check_signature_count()?;
        decode_base64("payload", &self.payload)?;
        for (i, s) in self.signatures.iter().enumerate() {
            decode_base64(&format!("signature {i}"), &s.sig)?;
        }
        Ok(())
    }

    /// The payload, decoded (standard or URL-safe base64, as [`verify`] reads it) but not
    /// verified: to learn what to verify it against, or to show what was verified when it
    /// was recorded.
    pub fn unverified_payload(&self) -> Result<Vec<u8>, Error> {
        decode_base64("payload", &self.payload)
    }

    /// The envelope as compact JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Adds a signature by `signer` over this envelope's payload.
    pub fn add_signature(&mut self, signer: &dyn Signer, hint: KeyIdHint) -> Result<(), Error> {
        let payload = self.unverified_payload()?;
        let sig = signer.sign(&pae(&self.payload_type, &payload))?;
        self.signatures.push(Signature {
            keyid: match hint {
                KeyIdHint::KeyId => Some(signer.key_id().to_string()),
                KeyIdHint::Securesystemslib => Some(signer.public_key().securesystemslib_keyid()),
                KeyIdHint::Omit => None,
            },
            sig: STANDARD.encode(sig),
        });
        Ok(())
    }
}

/// Signs `payload` as `payload_type` into a new envelope with one signature.
pub fn sign(
    signer: &dyn Signer,
    payload_type: &str,
    payload: &[u8],
    hint: KeyIdHint,
) -> Result<Envelope, Error> {
    let mut env = Envelope {
        payload: STANDARD.encode(payload),
        payload_type: payload_type.to_owned(),
        signatures: Vec::new(),
    };
    env.add_signature(signer, hint)?;
    Ok(env)
}

/// A payload whose envelope carried valid signatures from at least the threshold of
/// distinct trusted keys. Only [`verify`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPayload {
    payload_type: String,
    payload: Vec<u8>,
    key_ids: Vec<KeyId>,
    signers: Vec<SignedBy>,
}

/// A trusted key whose signature on the envelope verified: what a record of the verification
/// (the ledger) should keep, the key id together with the algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignedBy {
    /// The key's id (hex SHA-256 of its SPKI DER).
    pub key_id: KeyId,
    /// The key's algorithm, which is the signature's algorithm.
    pub algorithm: Algorithm,
}

impl VerifiedPayload {
    /// The payload type that was signed.
    pub fn payload_type(&self) -> &str {
        &self.payload_type
    }

    /// The payload bytes that were signed.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The distinct trusted keys whose signatures verified, sorted.
    pub fn key_ids(&self) -> &[KeyId] {
        &self.key_ids
    }

    /// The distinct trusted keys whose signatures verified, with their algorithms, sorted by
    /// key id (the same order as [`VerifiedPayload::key_ids`]). A key that signed twice is
    /// listed once.
    pub fn signers(&self) -> &[SignedBy] {
        &self.signers
    }

    /// Takes the payload bytes.
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }
}

/// Verifies `envelope` against the `trusted` keys, demanding valid signatures from at
/// least `threshold` *distinct* trusted keys.
///
/// - Every signature is checked strictly ([`crate::strict`]): Ed25519 as `verify_strict`,
///   ECDSA P-256 low-S only, so a malleated copy of a valid signature never counts.
/// - A signature that fails to decode or verify is skipped, not fatal: another one may
///   still meet the threshold.
/// - The `keyid` hint only orders the search; every trusted key is tried, and a key id in
///   the envelope never adds trust.
/// - Two signatures by the same key count once, as do duplicate entries in `trusted`.
pub fn verify<V: Verifier>(
    envelope: &Envelope,
    trusted: &[V],
    threshold: usize,
) -> Result<VerifiedPayload, Error> {
    if threshold == 0 {
        return Err(Error::Envelope(
            "threshold must be at least 1: a zero threshold would accept unsigned payloads".into(),
        ));
    }
    if envelope.signatures.len() > MAX_SIGNATURES {
        return Err(Error::Envelope(format!(
            "envelope has {} signatures; at most {MAX_SIGNATURES} are accepted",
            envelope.signatures.len()
        )));
    }
    let payload = decode_base64("payload", &envelope.payload)?;
    let message = pae(&envelope.payload_type, &payload);
    let mut verified: BTreeMap<KeyId, Algorithm> = BTreeMap::new();
    for signature in &envelope.signatures {
        let Ok(sig) = decode_base64("signature", &signature.sig) else {
            continue;
        };
        // Try the hinted key first, then every other trusted key not yet counted.
        let hinted: Option<KeyId> = signature.keyid.as_deref().and_then(|h| h.parse().ok());
        let mut order: Vec<&V> = trusted.iter().collect();
        if hinted.is_some() {
            order.sort_by_key(|k| Some(k.key_id()) != hinted);
        }
        for key in order {
            let id = key.key_id();
            if verified.contains_key(&id) {
                continue;
            }
            if key.verify(&message, &sig).is_ok() {
                verified.insert(id, key.algorithm());
                break;
            }
        }
    }
    if verified.len() < threshold {
        return Err(Error::BelowThreshold {
            verified: verified.len(),
            threshold,
        });
    }
    Ok(VerifiedPayload {
        payload_type: envelope.payload_type.clone(),
        payload,
        key_ids: verified.keys().copied().collect(),
        signers: verified
            .into_iter()
            .map(|(key_id, algorithm)| SignedBy { key_id, algorithm })
            .collect(),
    })
}

/// Verifies many envelopes against the same trusted keys: exactly what [`verify`] says for
/// each, in order.
///
/// This used to check Ed25519 signatures with a randomised batch equation. Batch
/// verification cannot agree with strict single verification on every input: a signature
/// whose R carries a small-order component fails the single (cofactorless) equation but
/// passes a batch about half the time, and telling such an R apart costs one scalar
/// multiplication per signature, as much as verifying it alone (measured: batch 44 µs,
/// subgroup check 62–72 µs, `verify_strict` 70 µs per signature). A trusted key's holder
/// could use the gap to make one envelope verify for one verifier and not another, so
/// agreement wins: each signature is verified on its own, and callers spread envelopes
/// across cores instead (the CLI's `dsse verify --jsonl` does).
pub fn verify_many(
    envelopes: &[Envelope],
    trusted: &[PublicKey],
    threshold: usize,
) -> Vec<Result<VerifiedPayload, Error>> {
    envelopes
        .iter()
        .map(|envelope| verify(envelope, trusted, threshold))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PrivateKey;

    #[test]
    fn pae_matches_the_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        // Lengths are bytes, not characters.
        assert_eq!(pae("é", b""), "DSSEv1 2 é 0 ".as_bytes());
    }

    fn keys(n: usize) -> Vec<PrivateKey> {
        (0..n)
            .map(|i| {
                PrivateKey::generate(if i % 2 == 0 {
                    Algorithm::Ed25519
                } else {
                    Algorithm::EcdsaP256
                })
            })
            .collect()
    }

    fn publics(keys: &[PrivateKey]) -> Vec<PublicKey> {
        keys.iter().map(|k| k.public_key().clone()).collect()
    }

    #[test]
    fn threshold_counts_distinct_trusted_keys() {
        let ks = keys(3);
        let mut env = sign(&ks[0], "t", b"p", KeyIdHint::KeyId).unwrap();
        // The same key signing twice still counts once.
        env.add_signature(&ks[0], KeyIdHint::KeyId).unwrap();
        let trusted = publics(&ks);
        assert!(matches!(
            verify(&env, &trusted, 2),
            Err(Error::BelowThreshold {
                verified: 1,
                threshold: 2
            })
        ));
        // Listing a trusted key twice does not double it either.
        let doubled = vec![trusted[0].clone(), trusted[0].clone()];
        assert!(verify(&env, &doubled, 2).is_err());
        env.add_signature(&ks[1], KeyIdHint::Omit).unwrap();
        let ok = verify(&env, &trusted, 2).unwrap();
        assert_eq!(ok.key_ids().len(), 2);
        assert!(verify(&env, &trusted, 3).is_err());
    }

    #[test]
    fn a_bad_signature_is_skipped_not_fatal() {
        let ks = keys(2);
        let mut env = sign(&ks[0], "t", b"p", KeyIdHint::KeyId).unwrap();
        env.signatures.insert(
            0,
            Signature {
                keyid: None,
                sig: "!!not base64!!".into(),
            },
        );
        env.signatures.insert(
            0,
            Signature {
                keyid: None,
                sig: STANDARD.encode([7u8; 64]),
            },
        );
        let v = verify(&env, &publics(&ks), 1).unwrap();
        assert_eq!(v.key_ids(), [ks[0].key_id()]);
    }

    #[test]
    fn keyid_is_only_a_hint() {
        let ks = keys(2);
        let mut env = sign(&ks[0], "t", b"p", KeyIdHint::KeyId).unwrap();
        // A lying hint pointing at another trusted key does not stop verification…
        env.signatures[0].keyid = Some(ks[1].key_id().to_string());
        assert_eq!(
            verify(&env, &publics(&ks), 1).unwrap().key_ids(),
            [ks[0].key_id()]
        );
        // …and a hint naming a trusted key does not make an untrusted signature count.
        let stranger = PrivateKey::generate(Algorithm::Ed25519);
        let mut forged = sign(&stranger, "t", b"p", KeyIdHint::Omit).unwrap();
        forged.signatures[0].keyid = Some(ks[0].key_id().to_string());
        assert!(verify(&forged, &publics(&ks), 1).is_err());
    }

    #[test]
    fn tampering_with_type_payload_or_signature_fails() {
        let ks = keys(2);
        for key in &ks {
            let env = sign(key, "application/x", b"payload", KeyIdHint::KeyId).unwrap();
            let trusted = [key.public_key().clone()];
            verify(&env, &trusted, 1).unwrap();

            let mut t = env.clone();
            t.payload_type = "application/y".into();
            assert!(verify(&t, &trusted, 1).is_err());

            let mut t = env.clone();
            t.payload = STANDARD.encode(b"payloaD");
            assert!(verify(&t, &trusted, 1).is_err());

            let mut t = env.clone();
            let mut sig = STANDARD.decode(&t.signatures[0].sig).unwrap();
            let last = sig.len() - 1;
            sig[last] ^= 1;
            t.signatures[0].sig = STANDARD.encode(sig);
            assert!(verify(&t, &trusted, 1).is_err());
        }
    }

    #[test]
    fn url_safe_unpadded_base64_is_accepted() {
        let key = PrivateKey::generate(Algorithm::Ed25519);
        let mut env = sign(&key, "t", &[0xfb, 0xff, 0xfe, 0x00], KeyIdHint::KeyId).unwrap();
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        env.payload = url.encode(STANDARD.decode(&env.payload).unwrap());
        env.signatures[0].sig = url.encode(STANDARD.decode(&env.signatures[0].sig).unwrap());
        assert!(env.payload.contains('_') || env.payload.contains('-'));
        let v = verify(&env, &[key.public_key().clone()], 1).unwrap();
        assert_eq!(v.payload(), [0xfb, 0xff, 0xfe, 0x00]);
    }

    #[test]
    fn malformed_envelopes_are_rejected_with_a_reason() {
        let cases: [(&[u8], &str); 4] = [
            (b"{", "not DSSE envelope JSON"),
            (
                br#"{"payload":"","payloadType":"t","signatures":[]}"#,
                "no signatures",
            ),
            (
                br#"{"payloadType":"t","signatures":[{"sig":""}]}"#,
                "missing field `payload`",
            ),
            (br#"[1,2]"#, "not DSSE envelope JSON"),
        ];
        for (input, want) in cases {
            let err = Envelope::from_json(input).unwrap_err().to_string();
            assert!(err.contains(want), "{err} lacks {want}");
        }
        let many = Envelope {
            payload: String::new(),
            payload_type: "t".into(),
            signatures: vec![
                Signature {
                    keyid: None,
                    sig: String::new()
                };
                MAX_SIGNATURES + 1
            ],
        };
        let err = Envelope::from_json(many.to_json().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
        let key = PrivateKey::generate(Algorithm::Ed25519);
        assert!(verify(&many, &[key.public_key().clone()], 1).is_err());
        assert!(
            verify(
                &sign(&key, "t", b"", KeyIdHint::Omit).unwrap(),
                &[key.public_key().clone()],
                0
            )
            .is_err()
        );
    }

    #[test]
    fn verify_many_agrees_with_verify_on_every_kind_of_envelope() {
        let ed = [
            PrivateKey::generate(Algorithm::Ed25519),
            PrivateKey::generate(Algorithm::Ed25519),
        ];
        let ec = PrivateKey::generate(Algorithm::EcdsaP256);
        let stranger = PrivateKey::generate(Algorithm::Ed25519);
        let hints = [
            KeyIdHint::KeyId,
            KeyIdHint::Securesystemslib,
            KeyIdHint::Omit,
        ];
        let mut envs = Vec::new();
        for i in 0..300usize {
            let payload = format!("payload {i}");
            let signer: &PrivateKey = match i % 7 {
                0 => &ec,
                1 => &stranger,
                n => &ed[n % 2],
            };
            let mut env = sign(signer, "t", payload.as_bytes(), hints[i % 3]).unwrap();
            match i % 11 {
                // A second signature: sometimes another trusted key, sometimes the same one.
                0 => env
                    .add_signature(&ed[(i + 1) % 2], KeyIdHint::KeyId)
                    .unwrap(),
                1 => env.add_signature(signer, KeyIdHint::KeyId).unwrap(),
                // Tampering inside a batch forces the one-by-one fallback.
                2 => env.payload = STANDARD.encode(b"tampered"),
                3 => env.signatures[0].sig = "%%%".into(),
                4 => env.signatures[0].keyid = Some(stranger.key_id().to_string()),
                _ => {}
            }
            envs.push(env);
        }
        for trusted in [
            vec![ed[0].public_key().clone()],
            vec![
                ed[0].public_key().clone(),
                ed[1].public_key().clone(),
                ec.public_key().clone(),
            ],
        ] {
            for threshold in 1..=trusted.len().min(2) {
                let many = verify_many(&envs, &trusted, threshold);
                let mut verified = 0;
                for (env, got) in envs.iter().zip(&many) {
                    let want = verify(env, &trusted, threshold);
                    match (got, &want) {
                        (Ok(a), Ok(b)) => {
                            assert_eq!(a, b);
                            verified += 1;
                        }
                        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                        _ => panic!("verify_many {got:?} but verify {want:?} for {env:?}"),
                    }
                }
                assert!(verified > 0, "the mix must contain envelopes that verify");
            }
        }
    }

    /// At most [`MAX_SIGNATURES`] signatures, that many included: the bound holds in
    /// parsing and in `verify` alike, even when one of the extra signatures is valid.
    #[test]
    fn the_signature_bound_is_inclusive() {
        let key = PrivateKey::generate(Algorithm::Ed25519);
        let trusted = [key.public_key().clone()];
        let good = sign(&key, "t", b"p", KeyIdHint::Omit).unwrap();
        let mut at = good.clone();
        at.signatures
            .resize(MAX_SIGNATURES, good.signatures[0].clone());
        assert!(Envelope::from_json(at.to_json().as_bytes()).is_ok());
        let verified = verify(&at, &trusted, 1).unwrap();
        assert_eq!(verified.payload_type(), "t");
        assert_eq!(verified.into_payload(), b"p");
        let mut over = at.clone();
        over.signatures.push(good.signatures[0].clone());
        let e = verify(&over, &trusted, 1).unwrap_err();
        assert!(e.to_string().contains("at most 64"), "{e}");
        let e = Envelope::from_json(over.to_json().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("at most 64"), "{e}");
    }

    /// A key that counts the signatures it is asked to check.
    struct Counting<'a>(&'a PublicKey, &'a std::sync::atomic::AtomicUsize);

    impl Verifier for Counting<'_> {
        fn key_id(&self) -> KeyId {
            self.0.key_id()
        }
        fn algorithm(&self) -> Algorithm {
            self.0.algorithm()
        }
        fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Verifier::verify(self.0, message, signature)
        }
    }

    /// The key id hint orders the search: the hinted key is tried first, so a signature by
    /// the last of many trusted keys costs one check, not one per key.
    #[test]
    fn the_hinted_key_is_tried_first() {
        let ks = keys(4);
        let trusted = publics(&ks);
        for (hint, checks) in [(KeyIdHint::KeyId, 1), (KeyIdHint::Omit, 4)] {
            let env = sign(&ks[3], "t", b"p", hint).unwrap();
            let count = std::sync::atomic::AtomicUsize::new(0);
            let counting: Vec<Counting<'_>> = trusted.iter().map(|k| Counting(k, &count)).collect();
            verify(&env, &counting, 1).unwrap();
            assert_eq!(count.into_inner(), checks);
        }
    }
}
