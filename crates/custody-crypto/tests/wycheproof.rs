//! Project Wycheproof (C2SP/wycheproof, `testvectors_v1/`): every Ed25519 and ECDSA P-256 /
//! SHA-256 vector, DER and IEEE P1363 (raw `r‖s`), run through custody's own key loading and
//! verification. A "valid" vector must verify and an "invalid" one must not; the files hold no
//! "acceptable" vectors, and one would fail this test until someone decides it.
//!
//! custody verifies an ECDSA signature in its low-S form (see `strict.rs`), as Wycheproof
//! expects: a correct high-S signature is valid. For those the test also checks that the low-S
//! twin `(r, n − s)` verifies, and counts them apart.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use custody_crypto::{PublicKey, Verifier as _};
use p256::elliptic_curve::scalar::IsHigh as _;
use serde_json::Value;

fn vectors(name: &str) -> Value {
    let path = format!("{}/testdata/wycheproof/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hex_field(test: &Value, field: &str) -> Vec<u8> {
    hex::decode(test[field].as_str().unwrap()).unwrap()
}

/// What happened to a file's vectors.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    valid_verified: usize,
    invalid_refused: usize,
    /// Valid and high-S: verified, and so is the low-S twin.
    high_s_verified: usize,
    /// Vectors whose key custody refused when loading it (all must be invalid).
    key_refused: usize,
}

impl Tally {
    fn total(&self) -> usize {
        self.valid_verified + self.invalid_refused + self.high_s_verified + self.key_refused
    }
}

/// The low-S twin of a high-S signature, in the same encoding.
fn low_s_twin(sig: &p256::ecdsa::Signature, der: bool) -> Vec<u8> {
    let low = sig.normalize_s().unwrap();
    if der {
        low.to_der().as_bytes().to_vec()
    } else {
        low.to_bytes().to_vec()
    }
}

fn run(file: &str, ecdsa_der: Option<bool>) -> Tally {
    let doc = vectors(file);
    let mut tally = Tally::default();
    for group in doc["testGroups"].as_array().unwrap() {
        let key = PublicKey::from_spki_der(&hex_field(group, "publicKeyDer"));
        for test in group["tests"].as_array().unwrap() {
            let id = &test["tcId"];
            let result = test["result"].as_str().unwrap();
            let (msg, sig) = (hex_field(test, "msg"), hex_field(test, "sig"));
            assert!(
                result == "valid" || result == "invalid",
                "{file} #{id}: result {result:?} needs a decision"
            );
            let key = match &key {
                Ok(k) => k,
                Err(e) => {
                    assert_eq!(result, "invalid", "{file} #{id}: key refused ({e})");
                    tally.key_refused += 1;
                    continue;
                }
            };
            let verdict = key.verify(&msg, &sig);
            if result == "invalid" {
                assert!(
                    verdict.is_err(),
                    "{file} #{id} ({}) verified",
                    test["comment"]
                );
                tally.invalid_refused += 1;
                continue;
            }
            let high_s = ecdsa_der.and_then(|der| {
                let parsed = if der {
                    p256::ecdsa::Signature::from_der(&sig)
                } else {
                    p256::ecdsa::Signature::from_slice(&sig)
                };
                let parsed = parsed.unwrap();
                bool::from(parsed.s().is_high()).then(|| low_s_twin(&parsed, der))
            });
            match high_s {
                Some(twin) => {
                    verdict.unwrap_or_else(|e| panic!("{file} #{id}: high-S: {e}"));
                    key.verify(&msg, &twin)
                        .unwrap_or_else(|e| panic!("{file} #{id}: low-S twin: {e}"));
                    tally.high_s_verified += 1;
                }
                None => {
                    verdict.unwrap_or_else(|e| panic!("{file} #{id} ({}): {e}", test["comment"]));
                    tally.valid_verified += 1;
                }
            }
        }
    }
    assert_eq!(
        tally.total() as u64,
        doc["numberOfTests"].as_u64().unwrap(),
        "{file}: every vector ran"
    );
    eprintln!("{file}: {tally:?}");
    tally
}

#[test]
fn ed25519() {
    let t = run("ed25519_test.json", None);
    assert_eq!(
        (t.valid_verified, t.invalid_refused, t.key_refused),
        (88, 63, 0)
    );
}

#[test]
fn ecdsa_p256_sha256_der() {
    let t = run("ecdsa_secp256r1_sha256_test.json", Some(true));
    assert_eq!((t.valid_verified, t.high_s_verified), (103, 71));
    assert_eq!(t.invalid_refused, 310);
}

#[test]
fn ecdsa_p256_sha256_p1363() {
    let t = run("ecdsa_secp256r1_sha256_p1363_test.json", Some(false));
    assert_eq!((t.valid_verified, t.high_s_verified), (103, 70));
    assert_eq!(t.invalid_refused, 89);
}
