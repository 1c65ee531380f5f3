//! Published test vectors: the DSSE specification's ECDSA example and Go's golden signed
//! note. Both must be reproduced byte for byte, not merely verified.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use custody_crypto::dsse::{self, Envelope, KeyIdHint};
use custody_crypto::note::{self, NoteSigner, NoteVerifier};
use custody_crypto::{PrivateKey, PublicKey, Signer as _};
use serde_json::Value;

fn testdata(name: &str) -> Value {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Big-endian 32 bytes of a decimal integer (the vector gives the key in decimal).
fn decimal_to_be32(decimal: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for digit in decimal.bytes() {
        let mut carry = u32::from(digit - b'0');
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0, "value exceeds 256 bits");
    }
    out
}

#[test]
fn dsse_spec_vector_verifies_and_is_reproduced() {
    let v = testdata("dsse-spec-vector.json");
    let d = decimal_to_be32(v["ecdsa_p256_private_d"].as_str().unwrap());
    let key = PrivateKey::p256_from_scalar(&d).unwrap();

    // The public key in the vector is the one derived from d.
    let mut point = vec![0x04];
    point.extend(decimal_to_be32(v["ecdsa_p256_public_x"].as_str().unwrap()));
    point.extend(decimal_to_be32(v["ecdsa_p256_public_y"].as_str().unwrap()));
    let public = PublicKey::p256_from_sec1(&point).unwrap();
    assert_eq!(key.public_key(), &public);

    // PAE as the spec prints it.
    let env: Envelope = serde_json::from_value(v["envelope"].clone()).unwrap();
    let payload = STANDARD.decode(&env.payload).unwrap();
    assert_eq!(
        dsse::pae(&env.payload_type, &payload),
        v["pae"].as_str().unwrap().as_bytes()
    );

    // The spec's envelope (raw r‖s signature, no keyid) verifies with the public key.
    let verified = dsse::verify(&env, &[&public], 1).unwrap();
    assert_eq!(verified.payload(), b"hello world");

    // Signing is deterministic (RFC 6979): our DER signature is the spec's r‖s re-encoded.
    let ours = dsse::sign(&key, &env.payload_type, &payload, KeyIdHint::Omit).unwrap();
    let der = STANDARD.decode(&ours.signatures[0].sig).unwrap();
    let raw = p256::ecdsa::Signature::from_der(&der).unwrap().to_bytes();
    assert_eq!(STANDARD.encode(raw), env.signatures[0].sig);
    assert_eq!(ours.payload, env.payload);

    // A wrong key does not verify the spec envelope.
    let other = PrivateKey::generate(custody_crypto::Algorithm::EcdsaP256);
    assert!(dsse::verify(&env, &[other.public_key()], 1).is_err());
}

#[test]
fn go_golden_signed_note_is_reproduced() {
    let v = testdata("go-sumdb-golden.json");
    let signer = NoteSigner::from_go_private_key(v["skey"].as_str().unwrap()).unwrap();
    assert_eq!(signer.verifier().to_text(), v["vkey"].as_str().unwrap());

    let signed = note::sign(v["text"].as_str().unwrap(), &[&signer]).unwrap();
    assert_eq!(signed, v["note"].as_str().unwrap());

    let verifier = NoteVerifier::from_text(v["vkey"].as_str().unwrap()).unwrap();
    assert_eq!(verifier.name(), "PeterNeumann");
    assert_eq!(verifier.key_hash(), 0xc74f_20a3);
    assert_eq!(
        format!("{verifier:?}"),
        format!("NoteVerifier({})", v["vkey"].as_str().unwrap())
    );
    assert_eq!(
        format!("{signer:?}"),
        format!("NoteSigner({})", v["vkey"].as_str().unwrap())
    );
    let opened = note::open(&signed, std::slice::from_ref(&verifier)).unwrap();
    assert_eq!(opened.text(), v["text"].as_str().unwrap());

    // A flipped bit anywhere in the text is caught.
    let tampered = signed.replacen("cryptography", "cryptographY", 1);
    assert!(note::open(&tampered, &[verifier]).is_err());
}
