//! Receipts: one certification proved with the log key alone, refused when altered or
//! checked with another key.

use std::path::Path;

use serde_json::Value;

use super::common::*;
use super::{fixture, log_pub, verify};

#[test]
fn a_receipt_proves_a_certification_with_the_log_key_alone() {
    let f = fixture();
    let (_, r, _) = verify(&f.all);
    let prod = r["story"]["certifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["environment"] == "production" && c["release"] == "shop@1.0.0")
        .unwrap()
        .clone();
    let digest = prod["artifacts"][0]["digest"].as_str().unwrap();
    let receipt = f.dir.join("receipt.json");
    let out = run(custody()
        .args(["audit", "receipt", digest, "--env", "production", "--out"])
        .arg(&receipt)
        .arg("--data-dir")
        .arg(&f.data));
    expect_code(&out, 0);
    let verify_receipt = |file: &Path, extra: &[&std::ffi::OsStr]| {
        run(custody()
            .args(["audit", "verify-receipt", "--log-key"])
            .arg(log_pub())
            .args(extra)
            .arg(file))
    };
    let out = verify_receipt(&receipt, &[]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("was certified in production"),
        "{}",
        stdout(&out)
    );
    let attestor = f.data.join("keys/attestor.pub");
    expect_code(
        &verify_receipt(&receipt, &["--attestor-key".as_ref(), attestor.as_os_str()]),
        0,
    );
    // Another attestor key, a changed byte, another log's key: each refused with why.
    let (_, other) = generate_key(&f.dir, "not-the-attestor", "ed25519");
    let out = verify_receipt(&receipt, &["--attestor-key".as_ref(), other.as_os_str()]);
    expect_refusal(&out, 1, "attestor key");
    let mut r: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    r["certification"]["leaf"] = Value::String(
        r["certification"]["leaf"]
            .as_str()
            .unwrap()
            .replacen("production", "productioN", 1),
    );
    let forged = f.dir.join("receipt-forged.json");
    std::fs::write(&forged, serde_json::to_vec(&r).unwrap()).unwrap();
    expect_refusal(
        &verify_receipt(&forged, &[]),
        1,
        "not proved in the signed tree",
    );
    // Another digest than the decision's: refused, and no line claims the VSA is about it.
    let mut r: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    let other = format!("sha256:{}", "b".repeat(64));
    r["digest"] = Value::String(other.clone());
    std::fs::write(&forged, serde_json::to_vec(&r).unwrap()).unwrap();
    let out = verify_receipt(&forged, &[]);
    expect_refusal(
        &out,
        1,
        "the receipt was altered or assembled from other entries",
    );
    assert!(
        stdout(&out)
            .lines()
            .all(|l| !l.contains("ok:") || !l.contains(&other)),
        "{}",
        stdout(&out)
    );
    // Under another log's key nothing is proved, and what the leaves say is marked so.
    let (_, stranger) = generate_key(&f.dir, "another-log", "ed25519");
    let out = run(custody()
        .args(["audit", "verify-receipt", "--log-key"])
        .arg(&stranger)
        .arg(&receipt));
    expect_refusal(&out, 1, "does not verify with the log key");
    let text = stdout(&out);
    assert!(
        text.lines()
            .filter(|l| l.contains("ok:"))
            .all(|l| l.contains("not proved in the log")),
        "{text}"
    );
    std::fs::write(&forged, b"{}").unwrap();
    expect_code(&verify_receipt(&forged, &[]), 2);
    // A digest never certified in production has no receipt.
    let unknown = r["digest"].as_str().unwrap().replace('a', "b");
    let out = run(custody()
        .args([
            "audit",
            "receipt",
            &unknown,
            "--env",
            "production",
            "--data-dir",
        ])
        .arg(&f.data));
    expect_code(&out, 2);
}
