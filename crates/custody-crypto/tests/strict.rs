//! The strict verification rules, from the outside: weak Ed25519 keys are refused wherever a
//! key is built, malleated signatures (non-reduced S, small-order or mixed-order R, high-S
//! ECDSA) never verify, what custody signs is low-S, and `dsse::verify_many` says exactly what
//! `dsse::verify` says on every one of those edge cases.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity as _;
use custody_crypto::dsse::{self, Envelope, KeyIdHint};
use custody_crypto::{Algorithm, PrivateKey, PublicKey, Signer as _, Verifier as _};
use p256::elliptic_curve::scalar::IsHigh as _;
use sha2::{Digest as _, Sha512};

/// SPKI DER of an Ed25519 key: the fixed RFC 8410 prefix, then the 32 key bytes.
fn ed25519_spki(key: &[u8; 32]) -> Vec<u8> {
    let mut der = hex::decode("302a300506032b6570032100").unwrap();
    der.extend_from_slice(key);
    der
}

fn pem(der: &[u8]) -> String {
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

#[test]
fn small_order_ed25519_keys_are_refused_by_every_constructor() {
    for t in EIGHT_TORSION {
        let bytes = t.compress().to_bytes();
        let der = ed25519_spki(&bytes);
        for err in [
            PublicKey::ed25519_from_bytes(&bytes).unwrap_err(),
            PublicKey::from_spki_der(&der).unwrap_err(),
            PublicKey::from_pem(&pem(&der)).unwrap_err(),
            custody_crypto::note::NoteVerifier::from_text(&format!(
                "log+00000000+{}",
                STANDARD.encode([&[0x01][..], &bytes].concat())
            ))
            .unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(text.contains("small-order (weak) key"), "{text}");
        }
    }
}

#[test]
fn the_weak_key_forgery_does_not_work() {
    // The forgery the review found: with the identity as public key, the signature R =
    // identity, S = 0 satisfies the cofactorless equation for every message. The key is
    // refused when read, and a strict verifier refuses such an R even for a good key.
    let identity = EdwardsPoint::default().compress().to_bytes();
    assert!(PublicKey::ed25519_from_bytes(&identity).is_err());
    let mut forged = [0u8; 64];
    forged[..32].copy_from_slice(&identity);
    let good = PrivateKey::generate(Algorithm::Ed25519);
    let err = good
        .public_key()
        .verify(b"any payload", &forged)
        .unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}

/// An Ed25519 key whose scalar the test knows, so it can sign the edge cases an honest signer
/// never produces.
struct RawEd25519 {
    a: Scalar,
    public: [u8; 32],
}

impl RawEd25519 {
    fn new(seed: u8) -> Self {
        let a = Scalar::from_bytes_mod_order([seed; 32]);
        let public = EdwardsPoint::mul_base(&a).compress().to_bytes();
        RawEd25519 { a, public }
    }

    fn k(&self, r: &[u8; 32], message: &[u8]) -> Scalar {
        let h = Sha512::new()
            .chain_update(r)
            .chain_update(self.public)
            .chain_update(message)
            .finalize();
        Scalar::from_bytes_mod_order_wide(&h.into())
    }

    /// A signature with R = [r]B + `torsion`: valid by the cofactored equation (what a batch
    /// checks, up to chance) but not by the cofactorless one strict verification uses, unless
    /// `torsion` is the identity.
    fn sign_with_torsion(&self, message: &[u8], nonce: u8, torsion: EdwardsPoint) -> [u8; 64] {
        let r = Scalar::from_bytes_mod_order_wide(&Sha512::digest([nonce]).into());
        let big_r = (EdwardsPoint::mul_base(&r) + torsion).compress().to_bytes();
        let s = r + self.k(&big_r, message) * self.a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&big_r);
        sig[32..].copy_from_slice(s.as_bytes());
        sig
    }

    /// R = a small-order point, S = k·a: passes the cofactored equation for any message.
    fn sign_with_small_order_r(&self, message: &[u8], torsion: EdwardsPoint) -> [u8; 64] {
        let big_r = torsion.compress().to_bytes();
        let s = self.k(&big_r, message) * self.a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&big_r);
        sig[32..].copy_from_slice(s.as_bytes());
        sig
    }
}

/// Adds the group order L to the little-endian S half: the same S mod L, a second encoding.
fn add_group_order_to_s(sig: &mut [u8; 64]) {
    let l =
        hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010").unwrap();
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(sig[32 + i]) + u16::from(l[i]) + carry;
        sig[32 + i] = (v & 0xff) as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0);
}

fn envelope_with(payload: &[u8], sig: &[u8]) -> Envelope {
    Envelope {
        payload: STANDARD.encode(payload),
        payload_type: "t".into(),
        signatures: vec![dsse::Signature {
            keyid: None,
            sig: STANDARD.encode(sig),
        }],
    }
}

#[test]
fn malleated_ed25519_signatures_are_refused_and_verify_many_agrees() {
    let signer = RawEd25519::new(9);
    let public = PublicKey::ed25519_from_bytes(&signer.public).unwrap();
    let trusted = [public.clone()];
    let pae = |p: &[u8]| dsse::pae("t", p);

    let mut envelopes = Vec::new();
    let mut expect_ok = Vec::new();
    for i in 0..16u8 {
        let payload = [b'p', i];
        let honest = signer.sign_with_torsion(&pae(&payload), i, EdwardsPoint::default());
        public.verify(&pae(&payload), &honest).unwrap();
        envelopes.push(envelope_with(&payload, &honest));
        expect_ok.push(true);

        // The same S plus L: verifies nowhere.
        let mut high = honest;
        add_group_order_to_s(&mut high);
        let err = public.verify(&pae(&payload), &high).unwrap_err();
        assert!(err.to_string().contains("not reduced"), "{err}");
        envelopes.push(envelope_with(&payload, &high));
        expect_ok.push(false);

        // R with a small-order component, made by the key's holder: the cofactored equation
        // holds, so a batch could accept it; strict verification must not.
        let torsion = EIGHT_TORSION[1 + usize::from(i) % 7];
        let mixed = signer.sign_with_torsion(&pae(&payload), i, torsion);
        let r = curve25519_dalek::edwards::CompressedEdwardsY(mixed[..32].try_into().unwrap())
            .decompress()
            .unwrap();
        let s = Scalar::from_canonical_bytes(mixed[32..].try_into().unwrap()).unwrap();
        let k = signer.k(&mixed[..32].try_into().unwrap(), &pae(&payload));
        let a = EdwardsPoint::mul_base(&signer.a);
        let residue = ED25519_BASEPOINT_POINT * s - a * k - r;
        assert!(residue.mul_by_cofactor().is_identity(), "a real edge case");
        assert!(public.verify(&pae(&payload), &mixed).is_err());
        envelopes.push(envelope_with(&payload, &mixed));
        expect_ok.push(false);

        // A small-order R.
        let small = signer.sign_with_small_order_r(&pae(&payload), torsion);
        assert!(public.verify(&pae(&payload), &small).is_err());
        envelopes.push(envelope_with(&payload, &small));
        expect_ok.push(false);
    }

    let many = dsse::verify_many(&envelopes, &trusted, 1);
    for ((env, got), ok) in envelopes.iter().zip(&many).zip(&expect_ok) {
        let single = dsse::verify(env, &trusted, 1);
        assert_eq!(got.is_ok(), *ok, "verify_many on {env:?}");
        assert_eq!(single.is_ok(), *ok, "verify on {env:?}");
        if let (Ok(a), Ok(b)) = (got, &single) {
            assert_eq!(a, b);
        }
    }
}

#[test]
fn the_mixed_order_r_gap_is_real_for_a_batch_equation() {
    // Why verify_many no longer batches: ed25519-dalek's batch equation accepts a
    // mixed-order-R signature that strict verification refuses, for some messages.
    let signer = RawEd25519::new(5);
    let key = ed25519_dalek::VerifyingKey::from_bytes(&signer.public).unwrap();
    let public = PublicKey::ed25519_from_bytes(&signer.public).unwrap();
    let accepted_by_batch = (0..64u8).find(|&i| {
        let msg = [i];
        let sig = signer.sign_with_torsion(&msg, i, EIGHT_TORSION[4]);
        let batch_ok = ed25519_dalek::verify_batch(
            &[&msg[..]],
            &[ed25519_dalek::Signature::from_bytes(&sig)],
            &[key],
        )
        .is_ok();
        assert!(public.verify(&msg, &sig).is_err());
        batch_ok
    });
    assert!(accepted_by_batch.is_some());
}

#[test]
fn high_s_ecdsa_twins_verify_as_their_low_s_form_in_both_encodings() {
    let key = PrivateKey::generate(Algorithm::EcdsaP256);
    for i in 0..32u32 {
        let message = i.to_be_bytes();
        let der = key.sign(&message).unwrap();
        let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
        // What we sign is low-S, and verifies as DER and as r‖s.
        assert!(
            !bool::from(sig.s().is_high()),
            "custody signed a high-S signature"
        );
        key.public_key().verify(&message, &der).unwrap();
        key.public_key().verify(&message, &sig.to_bytes()).unwrap();

        let (r, s) = sig.split_scalars();
        let twin = p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        for bytes in [twin.to_der().as_bytes().to_vec(), twin.to_bytes().to_vec()] {
            key.public_key().verify(&message, &bytes).unwrap();
            // …and the twin of another message is still refused.
            let other = (i + 1000).to_be_bytes();
            assert!(key.public_key().verify(&other, &bytes).is_err());
        }
    }
}

#[test]
fn verified_payloads_name_key_and_algorithm_per_signer() {
    let ed = PrivateKey::generate(Algorithm::Ed25519);
    let ec = PrivateKey::generate(Algorithm::EcdsaP256);
    let mut env = dsse::sign(&ed, "t", b"p", KeyIdHint::KeyId).unwrap();
    env.add_signature(&ec, KeyIdHint::Omit).unwrap();
    env.add_signature(&ed, KeyIdHint::Omit).unwrap();
    let trusted = [ed.public_key().clone(), ec.public_key().clone()];
    let v = dsse::verify(&env, &trusted, 2).unwrap();
    let mut want = vec![
        dsse::SignedBy {
            key_id: ed.key_id(),
            algorithm: Algorithm::Ed25519,
        },
        dsse::SignedBy {
            key_id: ec.key_id(),
            algorithm: Algorithm::EcdsaP256,
        },
    ];
    want.sort_by_key(|s| s.key_id);
    assert_eq!(v.signers(), want);
    let ids: Vec<_> = want.iter().map(|s| s.key_id).collect();
    assert_eq!(v.key_ids(), ids);
}

#[test]
fn other_curves_are_refused_as_before() {
    // Public keys OpenSSL wrote for P-384 and secp256k1: custody verifies neither.
    let p384 = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE6akeiLXLd2ZFMb5D8KuZvlQMNS2XsniB
jRVGrQrfnw0jvjjrKwYvyzXFH2mIgOogT5XOGedk0WbuhesFGbH2PJDPzjc46Xez
SYa8LPvvBeqZpVZKdrNmx+s4YRmHwId2
-----END PUBLIC KEY-----
";
    let k256 = "-----BEGIN PUBLIC KEY-----
MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEBDV86sOuh8OHU3tXXfCOwZ0HkeYDGgCR
1Q3sEmHVEtAflZIooGNyMmHtc1RRx2ARyRKJImZFIdQKITFsoRq3Zg==
-----END PUBLIC KEY-----
";
    for pem in [p384, k256] {
        let err = PublicKey::from_pem(pem).unwrap_err().to_string();
        assert!(
            err.contains("not a valid Ed25519 or ECDSA P-256 key"),
            "{err}"
        );
    }
}

#[test]
fn ed25519_verification_agrees_with_verify_strict_on_every_edge_case() {
    // custody's Ed25519 check is computed by another library than ed25519-dalek's
    // `verify_strict` (src/strict.rs says why they agree): held to it here, signature by
    // signature, on honest signatures and on each kind of malleated one.
    let message = b"the payload both verifiers are shown";
    // y = 1 + p, a second (non-canonical) name for the identity.
    let mut identity_plus_p = [0xffu8; 32];
    identity_plus_p[0] = 0xee;
    identity_plus_p[31] = 0x7f;
    let mut seen = [0usize; 2];
    for seed in 1..=4u8 {
        let signer = RawEd25519::new(seed);
        let ours = PublicKey::ed25519_from_bytes(&signer.public).unwrap();
        let dalek = ed25519_dalek::VerifyingKey::from_bytes(&signer.public).unwrap();
        let mut cases: Vec<[u8; 64]> = Vec::new();
        for (i, torsion) in EIGHT_TORSION.into_iter().enumerate() {
            let sig = signer.sign_with_torsion(message, seed.wrapping_mul(8) + i as u8, torsion);
            let mut other_message = sig;
            other_message[40] ^= 1;
            let mut s_plus_l = sig;
            add_group_order_to_s(&mut s_plus_l);
            cases.extend([
                sig,
                other_message,
                s_plus_l,
                signer.sign_with_small_order_r(message, torsion),
            ]);
        }
        let mut non_canonical = signer.sign_with_small_order_r(message, EdwardsPoint::default());
        non_canonical[..32].copy_from_slice(&identity_plus_p);
        cases.push(non_canonical);
        for sig in cases {
            let expected = dalek
                .verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig))
                .is_ok();
            assert_eq!(
                ours.verify(message, &sig).is_ok(),
                expected,
                "seed {seed}, signature {}",
                hex::encode(sig)
            );
            seen[usize::from(expected)] += 1;
        }
    }
    // Both verdicts occur (the honest signatures, with the identity as torsion, verify).
    assert!(seen[0] > 0 && seen[1] >= 4, "{seen:?}");
}
