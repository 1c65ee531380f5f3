//! Untrusted input never panics: every parser returns an error for arbitrary bytes,
//! including near-misses built from valid documents.

#![allow(clippy::unwrap_used, reason = "test code")]

use custody_crypto::dsse::{self, Envelope, KeyIdHint};
use custody_crypto::note::{self, NoteSigner, NoteVerifier};
use custody_crypto::statement::Statement;
use custody_crypto::{Algorithm, PrivateKey, PublicKey, Signer as _};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsers_survive_arbitrary_text(text in ".{0,400}") {
        let _ = Envelope::from_json(text.as_bytes());
        let _ = Statement::from_json(text.as_bytes());
        let _ = PublicKey::from_pem(&text);
        let _ = PrivateKey::from_pkcs8_pem(&text);
        let _ = NoteVerifier::from_text(&text);
        let _ = NoteSigner::from_go_private_key(&text);
        let _ = note::open(&text, &[]);
        let _ = custody_crypto::Pkcs11Config::from_uri(&text);
        let _ = custody_crypto::Pkcs11Config::from_uri(&format!("pkcs11:{text}"));
    }

    #[test]
    fn mutated_documents_are_rejected_or_still_valid_never_panic(
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let key = PrivateKey::generate(Algorithm::Ed25519);
        let env = dsse::sign(&key, "t", b"{\"a\":1}", KeyIdHint::KeyId).unwrap().to_json();
        let mut bytes = env.into_bytes();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        if let Ok(e) = Envelope::from_json(&bytes) {
            let _ = dsse::verify(&e, &[key.public_key()], 1);
        }

        let signer = NoteSigner::new("log", Box::new(PrivateKey::generate(Algorithm::Ed25519))).unwrap();
        let mut n = note::sign("origin\n1\nAAAA\n", &[&signer]).unwrap().into_bytes();
        let i = pos.index(n.len());
        n[i] = byte;
        if let Ok(text) = String::from_utf8(n) {
            let _ = note::open(&text, &[signer.verifier().clone()]);
        }
    }
}
