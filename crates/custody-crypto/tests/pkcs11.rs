//! The PKCS#11 signer against a real SoftHSM2 token: keys made on the token sign like file
//! keys (verifiable with the public key alone, low-S DER for P-256), DSSE envelopes the token
//! signs verify in Python's securesystemslib, the private key is sensitive and never
//! extractable, and every way of naming the wrong thing fails with an error that says which.
//!
//! Each case runs in its own child process with its own token directory: see
//! `softhsm/mod.rs` for why (SoftHSM2 reads `SOFTHSM2_CONF` from the process environment).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod softhsm;

use std::path::PathBuf;
use std::process::Command;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use custody_crypto::dsse::{self, KeyIdHint};
use custody_crypto::pkcs11::{self, PinSource, Pkcs11Config, Pkcs11Signer};
use custody_crypto::{Algorithm, Error, KeyId, PublicKey, Signer, Verifier as _};
use libtest_mimic::{Arguments, Failed, Trial};
use p256::elliptic_curve::scalar::IsHigh as _;

type Case = fn();

const CASES: &[(&str, Case)] = &[
    ("p256_token_key_signs_like_a_file_key", p256_signs),
    ("ed25519_token_key_signs_like_a_file_key", ed25519_signs),
    (
        "generated_private_keys_are_sensitive_and_never_extractable",
        keys_stay_inside,
    ),
    (
        "a_uri_opens_the_same_key_with_the_pin_from_file_or_env",
        uri_opens_key,
    ),
    (
        "token_signed_envelopes_verify_in_securesystemslib",
        securesystemslib_verifies,
    ),
    (
        "wrong_pin_token_key_or_module_each_say_which",
        wrong_things_are_named,
    ),
    ("other_curves_and_ambiguous_labels_are_refused", refusals),
    ("one_signer_signs_from_many_threads", threads),
];

fn main() {
    if let Ok(case) = std::env::var(softhsm::CHILD_CASE) {
        // The child: run the one case; a panic exits non-zero with its message on stderr.
        let (_, run) = CASES.iter().find(|(name, _)| *name == case).unwrap();
        run();
        return;
    }
    let args = Arguments::from_args();
    let trials = CASES
        .iter()
        .map(|&(name, _)| {
            Trial::test(name, move || {
                let out = softhsm::rerun_in_child(name);
                if out.status.success() {
                    Ok(())
                } else {
                    Err(Failed::from(format!(
                        "child {}\n--- stdout\n{}--- stderr\n{}",
                        out.status,
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    )))
                }
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// Signs 64 messages and checks each with a public key read back from PEM, nothing else.
fn signs_like_a_file_key(algorithm: Algorithm) -> Pkcs11Signer {
    let config = softhsm::init_token("custody", "release-signer");
    let signer = pkcs11::generate_key_pair(&config, algorithm).unwrap();
    let public = PublicKey::from_pem(&signer.public_key().to_pem()).unwrap();
    assert_eq!(public.algorithm(), algorithm);
    assert_eq!(signer.key_id(), KeyId::of_spki_der(public.spki_der()));
    // Debugged, a token key says what and where it is, and never its PIN.
    let shown = format!("{signer:?}");
    assert_eq!(
        shown,
        format!(
            "Pkcs11Signer({algorithm} {} on token \"custody\", key \"release-signer\")",
            signer.key_id()
        )
    );
    assert!(!shown.contains(softhsm::USER_PIN), "{shown}");
    for i in 0..64u32 {
        let message = format!("payload {i}");
        let sig = signer.sign(message.as_bytes()).unwrap();
        public.verify(message.as_bytes(), &sig).unwrap();
        assert!(public.verify(b"another payload", &sig).is_err());
        if algorithm == Algorithm::EcdsaP256 {
            // DER, like the file signer, and low-S.
            let parsed = p256::ecdsa::Signature::from_der(&sig).unwrap();
            assert!(
                !bool::from(parsed.s().is_high()),
                "token signature {i} is high-S"
            );
        } else {
            assert_eq!(sig.len(), 64);
        }
    }
    // A signature by another key of the same algorithm does not pass for this one.
    let stranger = custody_crypto::PrivateKey::generate(algorithm);
    assert!(public.verify(b"m", &stranger.sign(b"m").unwrap()).is_err());
    signer
}

fn p256_signs() {
    signs_like_a_file_key(Algorithm::EcdsaP256);
}

fn ed25519_signs() {
    let signer = signs_like_a_file_key(Algorithm::Ed25519);
    // Ed25519 is deterministic on a token as in a file.
    assert_eq!(signer.sign(b"same").unwrap(), signer.sign(b"same").unwrap());
}

fn keys_stay_inside() {
    for (label, algorithm) in [("p", Algorithm::EcdsaP256), ("e", Algorithm::Ed25519)] {
        let config = softhsm::init_token(&format!("t-{label}"), label);
        pkcs11::generate_key_pair(&config, algorithm).unwrap();
        let ctx = softhsm::context();
        let slot = ctx
            .get_slots_with_initialized_token()
            .unwrap()
            .into_iter()
            .find(|s| ctx.get_token_info(*s).unwrap().label() == config.token_label)
            .unwrap();
        let session = ctx.open_ro_session(slot).unwrap();
        match session.login(
            UserType::User,
            Some(&AuthPin::from(softhsm::USER_PIN.to_owned())),
        ) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::UserAlreadyLoggedIn,
                _,
            )) => {}
            Err(e) => panic!("login: {e}"),
        }
        let [key] = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .unwrap()[..]
        else {
            panic!("one private key");
        };
        let attrs = session
            .get_attributes(
                key,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                    AttributeType::Token,
                ],
            )
            .unwrap();
        for want in [
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::AlwaysSensitive(true),
            Attribute::NeverExtractable(true),
            Attribute::Token(true),
        ] {
            assert!(attrs.contains(&want), "{label}: {want:?} not in {attrs:?}");
        }
        // The token refuses to reveal the private value.
        let info = session
            .get_attribute_info(key, &[AttributeType::Value])
            .unwrap();
        assert!(
            matches!(info[..], [AttributeInfo::Sensitive]),
            "{label}: CKA_VALUE is {info:?}"
        );
    }
}

fn uri_opens_key() {
    let config = softhsm::init_token("ci token", "builder key");
    let made = pkcs11::generate_key_pair(&config, Algorithm::EcdsaP256).unwrap();
    let dir = softhsm::child_dir();
    let module = config.module_path.display().to_string();
    for pin_source in [
        format!("file:{}", dir.join("pin.txt").display()),
        format!("env:{}", softhsm::PIN_VAR),
    ] {
        let uri = format!(
            "pkcs11:token=ci%20token;object=builder%20key;type=private\
             ?module-path={module}&pin-source={pin_source}"
        );
        let opened = Pkcs11Signer::open(&Pkcs11Config::from_uri(&uri).unwrap()).unwrap();
        assert_eq!(opened.key_id(), made.key_id(), "{uri}");
        let sig = opened.sign(b"hello").unwrap();
        made.public_key().verify(b"hello", &sig).unwrap();
    }
}

/// The venv's Python (`CUSTODY_TEST_PYTHON`, else the workspace `.venv`).
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CUSTODY_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "this test needs Python's securesystemslib: run scripts/test.sh (it creates .venv), \
         or set CUSTODY_TEST_PYTHON"
    );
    venv
}

const SSLIB_VERIFY: &str = r#"
import json, sys
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
with open(sys.argv[1]) as f:
    envelope = Envelope.from_dict(json.load(f))
keys = []
for path in sys.argv[2:]:
    with open(path, "rb") as f:
        keys.append(SSlibKey.from_crypto(load_pem_public_key(f.read())))
try:
    accepted = envelope.verify(keys, len(keys))
except Exception as e:
    print(f"securesystemslib: {e}", file=sys.stderr)
    sys.exit(1)
print(" ".join(sorted(accepted)))
"#;

fn securesystemslib_verifies() {
    let config = softhsm::init_token("custody", "p256");
    let p256 = pkcs11::generate_key_pair(&config, Algorithm::EcdsaP256).unwrap();
    let ed = pkcs11::generate_key_pair(
        &Pkcs11Config {
            key_label: "ed25519".into(),
            ..config
        },
        Algorithm::Ed25519,
    )
    .unwrap();
    let dir = softhsm::child_dir();
    let payload = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
    let mut envelope = dsse::sign(
        &p256,
        "application/vnd.in-toto+json",
        payload,
        KeyIdHint::Securesystemslib,
    )
    .unwrap();
    envelope
        .add_signature(&ed, KeyIdHint::Securesystemslib)
        .unwrap();
    let mut keys = Vec::new();
    for (name, signer) in [("p256", &p256), ("ed", &ed)] {
        let path = dir.join(format!("{name}.pub"));
        std::fs::write(&path, signer.public_key().to_pem()).unwrap();
        keys.push(path);
    }
    let run = |envelope: &dsse::Envelope| {
        let path = dir.join("envelope.json");
        std::fs::write(&path, envelope.to_json()).unwrap();
        Command::new(python())
            .arg("-c")
            .arg(SSLIB_VERIFY)
            .arg(&path)
            .args(&keys)
            .output()
            .unwrap()
    };
    let out = run(&envelope);
    assert!(
        out.status.success(),
        "securesystemslib refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let accepted = String::from_utf8(out.stdout).unwrap();
    for signer in [&p256 as &dyn Signer, &ed] {
        assert!(accepted.contains(&signer.public_key().securesystemslib_keyid()));
    }
    // custody agrees, and a tampered payload fails in both.
    let trusted = [p256.public_key().clone(), ed.public_key().clone()];
    dsse::verify(&envelope, &trusted, 2).unwrap();
    envelope.payload = dsse::sign(&p256, "t", b"other", KeyIdHint::Omit)
        .unwrap()
        .payload;
    assert!(!run(&envelope).status.success());
    assert!(dsse::verify(&envelope, &trusted, 1).is_err());
}

fn expect_error(config: &Pkcs11Config, want: &[&str]) {
    let err = Pkcs11Signer::open(config).unwrap_err();
    assert!(matches!(err, Error::Token(_)), "{err:?}");
    let text = err.to_string();
    for w in want {
        assert!(text.contains(w), "{text:?} lacks {w:?}");
    }
}

fn wrong_things_are_named() {
    let config = softhsm::init_token("custody", "release-signer");
    pkcs11::generate_key_pair(&config, Algorithm::EcdsaP256).unwrap();
    let dir = softhsm::child_dir();

    let wrong_pin = dir.join("wrong-pin.txt");
    std::fs::write(&wrong_pin, "0000\n").unwrap();
    expect_error(
        &Pkcs11Config {
            pin: PinSource::File(wrong_pin.clone()),
            ..config.clone()
        },
        &["wrong PIN", "\"custody\"", "wrong-pin.txt"],
    );
    expect_error(
        &Pkcs11Config {
            token_label: "custodee".into(),
            ..config.clone()
        },
        &[
            "no token labelled \"custodee\"",
            "tokens present: \"custody\"",
        ],
    );
    expect_error(
        &Pkcs11Config {
            key_label: "release-signr".into(),
            ..config.clone()
        },
        &["no private key labelled \"release-signr\"", "\"custody\""],
    );
    expect_error(
        &Pkcs11Config {
            module_path: dir.join("no-such-module.so"),
            ..config.clone()
        },
        &["PKCS#11 module", "no-such-module.so", "does not exist"],
    );
    let not_a_module = dir.join("pin.txt");
    expect_error(
        &Pkcs11Config {
            module_path: not_a_module,
            ..config.clone()
        },
        &["could not be loaded"],
    );
    expect_error(
        &Pkcs11Config {
            pin: PinSource::Env("CUSTODY_TEST_PKCS11_UNSET_VARIABLE".into()),
            ..config.clone()
        },
        &["CUSTODY_TEST_PKCS11_UNSET_VARIABLE"],
    );
    // After all that, the right configuration still works.
    Pkcs11Signer::open(&config).unwrap();
}

fn refusals() {
    let config = softhsm::init_token("custody", "k");
    pkcs11::generate_key_pair(&config, Algorithm::Ed25519).unwrap();
    let err = pkcs11::generate_key_pair(&config, Algorithm::Ed25519).unwrap_err();
    assert!(
        err.to_string().contains("already has a key labelled \"k\""),
        "{err}"
    );

    // Keys made with other tools: a P-384, a secp256k1 and an Ed448 key, and a second key
    // labelled "k".
    let ctx = softhsm::context();
    let slot = ctx.get_slots_with_initialized_token().unwrap()[0];
    let session = ctx.open_rw_session(slot).unwrap();
    match session.login(
        UserType::User,
        Some(&AuthPin::from(softhsm::USER_PIN.to_owned())),
    ) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
        }
        Err(e) => panic!("login: {e}"),
    }
    let (ec, edwards) = (Mechanism::EccKeyPairGen, Mechanism::EccEdwardsKeyPairGen);
    let curves: [(&str, &Mechanism, &[u8]); 4] = [
        ("p384", &ec, &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]),
        ("k256", &ec, &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a]),
        ("ed448", &edwards, &[0x06, 0x03, 0x2b, 0x65, 0x71]),
        (
            "k",
            &ec,
            &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
        ),
    ];
    for (label, mechanism, params) in curves {
        let label = Attribute::Label(label.as_bytes().to_vec());
        session
            .generate_key_pair(
                mechanism,
                &[
                    Attribute::Token(true),
                    Attribute::EcParams(params.to_vec()),
                    label.clone(),
                ],
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Sign(true),
                    label,
                ],
            )
            .unwrap();
    }
    // Each is refused by its type and curve (never taken for a P-256 or an Ed25519 key
    // whose point then fails to read).
    for (label, params) in [
        ("p384", "06052b81040022"),
        ("k256", "06052b8104000a"),
        ("ed448", "06032b6571"),
    ] {
        expect_error(
            &Pkcs11Config {
                key_label: label.into(),
                ..config.clone()
            },
            &[
                &format!("key \"{label}\""),
                &format!("with parameters {params}"),
                "custody signs with ECDSA P-256 or Ed25519 keys",
            ],
        );
    }
    expect_error(&config, &["2 private keys labelled \"k\"", "add id="]);
}

fn threads() {
    let config = softhsm::init_token("custody", "shared");
    let signer = pkcs11::generate_key_pair(&config, Algorithm::EcdsaP256).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let signer = &signer;
            scope.spawn(move || {
                for i in 0..50 {
                    let message = format!("thread {t} message {i}");
                    let sig = signer.sign(message.as_bytes()).unwrap();
                    signer
                        .public_key()
                        .verify(message.as_bytes(), &sig)
                        .unwrap();
                }
            });
        }
    });
}
