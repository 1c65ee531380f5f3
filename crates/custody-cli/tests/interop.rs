//! Interoperability with independent implementations: envelopes custody signs verify in
//! `securesystemslib`, envelopes it signs verify in custody, tampering fails in both, and
//! statements custody builds pass the `in-toto-attestation` bindings.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::fs;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use serde_json::Value;

const ALGORITHMS: [&str; 2] = ["ed25519", "ecdsa-p256"];
const STATEMENT_TYPE: &str = "application/vnd.in-toto+json";

fn sign(dir: &Path, keys: &[&Path], payload: &Path, keyid: &str) -> std::path::PathBuf {
    let mut cmd = custody();
    cmd.args([
        "dsse",
        "sign",
        "--payload-type",
        STATEMENT_TYPE,
        "--keyid",
        keyid,
    ]);
    for k in keys {
        cmd.arg("--key").arg(k);
    }
    let out = run(cmd.arg(payload));
    expect_code(&out, 0);
    let path = dir.join(format!("env-{}.json", unique_suffix()));
    fs::write(&path, out.stdout).unwrap();
    path
}

fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

fn sslib_verify(envelope: &Path, threshold: usize, keys: &[&Path]) -> std::process::Output {
    let mut cmd = python_script("sslib_verify.py");
    cmd.arg(envelope).arg(threshold.to_string());
    for k in keys {
        cmd.arg(k);
    }
    run(&mut cmd)
}

fn custody_verify(envelope: &Path, threshold: usize, keys: &[&Path]) -> std::process::Output {
    let mut cmd = custody();
    cmd.args(["dsse", "verify", "--threshold", &threshold.to_string()]);
    for k in keys {
        cmd.arg("--key").arg(k);
    }
    run(cmd.arg(envelope))
}

/// Writes three tampered copies of an envelope: payload, payloadType and signature each
/// with one byte flipped.
fn tampered_copies(dir: &Path, envelope: &Path) -> Vec<(String, std::path::PathBuf)> {
    let env: Value = serde_json::from_slice(&fs::read(envelope).unwrap()).unwrap();
    let mut out = Vec::new();
    let flip_b64 = |s: &str| {
        let mut bytes = STANDARD.decode(s).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x01;
        STANDARD.encode(bytes)
    };
    let mut e = env.clone();
    e["payload"] = Value::String(flip_b64(env["payload"].as_str().unwrap()));
    out.push(("payload".to_owned(), e));
    let mut e = env.clone();
    e["payloadType"] = Value::String(STATEMENT_TYPE.replace("json", "jsoN"));
    out.push(("payloadType".to_owned(), e));
    let mut e = env.clone();
    e["signatures"][0]["sig"] =
        Value::String(flip_b64(env["signatures"][0]["sig"].as_str().unwrap()));
    out.push(("signature".to_owned(), e));
    out.into_iter()
        .map(|(what, e)| {
            let p = dir.join(format!("tampered-{what}-{}.json", unique_suffix()));
            fs::write(&p, serde_json::to_vec(&e).unwrap()).unwrap();
            (what, p)
        })
        .collect()
}

/// Flips a byte in the payload, the payloadType and the signature of `envelope` in turn;
/// custody and securesystemslib must each refuse every copy (custody exits 1, the reference
/// [`REFUSED`]).
fn assert_both_reject_tampering(dir: &Path, envelope: &Path, public: &Path, alg: &str) {
    for (what, bad) in tampered_copies(dir, envelope) {
        for (verifier, out, refused) in [
            ("custody", custody_verify(&bad, 1, &[public]), 1),
            (
                "securesystemslib",
                sslib_verify(&bad, 1, &[public]),
                REFUSED,
            ),
        ] {
            assert_eq!(
                out.status.code(),
                Some(refused),
                "{alg}: {verifier} accepted tampered {what}"
            );
        }
    }
}

fn statement_file(dir: &Path) -> std::path::PathBuf {
    let predicate = dir.join("predicate.json");
    fs::write(
        &predicate,
        r#"{"buildDefinition":{"buildType":"https://example.com/build/v1","externalParameters":{"ref":"main"}},"runDetails":{"builder":{"id":"https://ci.example.com"},"metadata":{"startedOn":"2026-11-27T15:51:34Z"}}}"#,
    )
    .unwrap();
    let out = run(custody()
        .args([
            "statement",
            "create",
            "--predicate-type",
            "https://slsa.dev/provenance/v1",
        ])
        .args(["--subject", &format!("app.tar=sha256:{}", "ab".repeat(32))])
        .args([
            "--subject",
            &format!("app.sbom.json=sha512:{}", "cd".repeat(64)),
        ])
        .arg("--predicate")
        .arg(&predicate));
    expect_code(&out, 0);
    let path = dir.join("statement.json");
    fs::write(&path, out.stdout).unwrap();
    path
}

#[test]
fn custody_envelopes_verify_in_securesystemslib_and_tampering_fails_in_both() {
    let dir = tempfile::tempdir().unwrap();
    let payload = statement_file(dir.path());
    for alg in ALGORITHMS {
        let (key, public) = generate_key(dir.path(), &format!("signer-{alg}"), alg);
        let env = sign(dir.path(), &[&key], &payload, "securesystemslib");
        expect_code(&sslib_verify(&env, 1, &[&public]), 0);
        expect_code(&custody_verify(&env, 1, &[&public]), 0);

        // A different trusted key: both refuse.
        let (_, other) = generate_key(dir.path(), &format!("other-{alg}"), alg);
        expect_code(&sslib_verify(&env, 1, &[&other]), REFUSED);
        expect_code(&custody_verify(&env, 1, &[&other]), 1);

        assert_both_reject_tampering(dir.path(), &env, &public, alg);
    }
}

/// Whether the one ECDSA signature of an envelope is low-S (`s ≤ n/2`), read from its DER.
fn signature_is_low_s(envelope: &[u8]) -> bool {
    use p256::elliptic_curve::scalar::IsHigh as _;
    let env: Value = serde_json::from_slice(envelope).unwrap();
    let sig = STANDARD
        .decode(env["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    let sig = p256::ecdsa::Signature::from_der(&sig).unwrap();
    !bool::from(sig.s().is_high())
}

#[test]
fn securesystemslib_envelopes_verify_in_custody() {
    let dir = tempfile::tempdir().unwrap();
    let payload = statement_file(dir.path());
    for alg in ALGORITHMS {
        let (key, public) = generate_key(dir.path(), &format!("py-{alg}"), alg);
        let env = dir.path().join(format!("py-{alg}.json"));
        if alg == "ecdsa-p256" {
            // OpenSSL (under securesystemslib) emits high-S and low-S ECDSA signatures alike,
            // and custody verifies both (in their low-S form). Find one of each: the high-S one
            // must verify here too, the low-S one takes the checks below.
            let high = dir.path().join("py-high-s.json");
            let (mut found_low, mut found_high) = (false, false);
            for _ in 0..64 {
                let out = run(python_script("sslib_sign.py")
                    .arg(&key)
                    .arg(STATEMENT_TYPE)
                    .arg(&payload));
                expect_code(&out, 0);
                match signature_is_low_s(&out.stdout) {
                    true if !found_low => {
                        fs::write(&env, &out.stdout).unwrap();
                        found_low = true;
                    }
                    false if !found_high => {
                        fs::write(&high, &out.stdout).unwrap();
                        found_high = true;
                    }
                    _ => {}
                }
                if found_low && found_high {
                    break;
                }
            }
            assert!(
                found_low && found_high,
                "64 signatures were all one kind of S"
            );
            expect_code(&sslib_verify(&high, 1, &[&public]), 0);
            expect_code(&custody_verify(&high, 1, &[&public]), 0);
        } else {
            let out = run(python_script("sslib_sign.py")
                .arg(&key)
                .arg(STATEMENT_TYPE)
                .arg(&payload));
            expect_code(&out, 0);
            fs::write(&env, &out.stdout).unwrap();
        }

        let payload_out = dir.path().join(format!("payload-{alg}.json"));
        let ours = run(custody()
            .args(["dsse", "verify", "--key"])
            .arg(&public)
            .arg("--payload-out")
            .arg(&payload_out)
            .arg(&env));
        expect_code(&ours, 0);
        // The verified payload is handed on byte for byte.
        assert_eq!(fs::read(&payload_out).unwrap(), fs::read(&payload).unwrap());

        assert_both_reject_tampering(dir.path(), &env, &public, alg);
    }
}

#[test]
fn threshold_two_needs_two_distinct_signers_in_both() {
    let dir = tempfile::tempdir().unwrap();
    let payload = statement_file(dir.path());
    let (k1, p1) = generate_key(dir.path(), "t1", "ed25519");
    let (k2, p2) = generate_key(dir.path(), "t2", "ecdsa-p256");

    let one = sign(dir.path(), &[&k1], &payload, "securesystemslib");
    expect_code(&sslib_verify(&one, 2, &[&p1, &p2]), REFUSED);
    let out = custody_verify(&one, 2, &[&p1, &p2]);
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("only 1 of the required 2"),
        "{}",
        stderr(&out)
    );

    let two = sign(dir.path(), &[&k1, &k2], &payload, "securesystemslib");
    expect_code(&sslib_verify(&two, 2, &[&p1, &p2]), 0);
    expect_code(&custody_verify(&two, 2, &[&p1, &p2]), 0);
}

#[test]
fn statements_pass_in_toto_attestation_validate() {
    let dir = tempfile::tempdir().unwrap();
    let statement = statement_file(dir.path());
    expect_code(
        &run(python_script("statement_validate.py").arg(&statement)),
        0,
    );

    // The checker really checks: custody's own rejects and Python's reject the same
    // broken statement (an empty predicate).
    let mut v: Value = serde_json::from_slice(&fs::read(&statement).unwrap()).unwrap();
    v["predicate"] = serde_json::json!({});
    let broken = dir.path().join("broken.json");
    fs::write(&broken, serde_json::to_vec(&v).unwrap()).unwrap();
    expect_code(
        &run(python_script("statement_validate.py").arg(&broken)),
        REFUSED,
    );
    expect_code(&run(custody().args(["statement", "check"]).arg(&broken)), 1);
}
