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
        stdout(&out).contains("was certified in production")
            && !stdout(&out).contains("CUSTODY_BREAK_GLASS"),
        "{}",
        stdout(&out)
    );
    let attestor = f.data.join("keys/attestor.pub");
    expect_code(
        &verify_receipt(&receipt, &["--attestor-key".as_ref(), attestor.as_os_str()]),
        0,
    );
    // A receipt without the attestor's key checks with the key pinned, and says what
    // to do without it.
    let mut bare: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    bare.as_object_mut().unwrap().remove("attestor");
    let bare_file = f.dir.join("receipt-without-attestor.json");
    std::fs::write(&bare_file, serde_json::to_vec(&bare).unwrap()).unwrap();
    expect_code(
        &verify_receipt(
            &bare_file,
            &["--attestor-key".as_ref(), attestor.as_os_str()],
        ),
        0,
    );
    expect_refusal(
        &verify_receipt(&bare_file, &[]),
        1,
        "the receipt carries no attestor key: give the one you trust with --attestor-key",
    );
    // Another attestor key, a changed byte, another log's key: each refused with why.
    let (_, other) = generate_key(&f.dir, "not-the-attestor", "ed25519");
    let out = verify_receipt(&receipt, &["--attestor-key".as_ref(), other.as_os_str()]);
    expect_refusal(
        &out,
        1,
        "no attestor key given (--attestor-key) has the key id",
    );
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

/// `custody audit receipt DIGEST --env production` on `data`, with extra arguments.
fn receipt_of(data: &Path, digest: &str, extra: &[&str]) -> std::process::Output {
    run(custody()
        .args(["audit", "receipt", digest, "--env", "production"])
        .args(extra)
        .arg("--data-dir")
        .arg(data))
}

/// `custody audit verify-receipt` of `file` with the log key of `data`.
fn verify_receipt_of(data: &Path, file: &Path, extra: &[&str]) -> std::process::Output {
    run(custody()
        .args(["audit", "verify-receipt", "--log-key"])
        .arg(data.join("keys/log.pub"))
        .args(extra)
        .arg(file))
}

#[test]
fn a_receipt_says_what_it_proves_and_is_refused_for_a_certification_that_no_longer_stands() {
    // A demo of its own: this test breaks glass and rolls back.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    expect_code(&run(custody().args(["demo", "--data-dir"]).arg(&data)), 0);
    let bundle = dir.path().join("all.bundle");
    super::export(&data, &bundle, "audrey", &[]);
    let b = super::Bundle::read(&bundle);
    let artifacts = |release: &str| -> Vec<String> {
        let line = b
            .find(|e| e["type"] == "release.created" && e["release"] == release)
            .2;
        super::event(&line)["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_owned())
            .collect()
    };
    let old = artifacts("shop@1.0.0");
    let digest = artifacts("shop@1.2.0")
        .into_iter()
        .find(|d| !old.contains(d))
        .expect("an artifact new in 1.2.0");

    // The demo certified 1.2.0 in production, and rolled back to 1.0.0 when its rollout
    // failed: the certification no longer stands, and a receipt of it is refused.
    let out = receipt_of(&data, &digest, &[]);
    expect_refusal(&out, 2, "no longer stands");
    for says in ["rolled production back from shop@1.2.0", "--historical"] {
        assert!(stderr(&out).contains(says), "{says}: {}", stderr(&out));
    }
    // As a record of the past it is written, with a warning; it verifies, and says what
    // it cannot prove.
    let past = dir.path().join("past.json");
    let out = receipt_of(
        &data,
        &digest,
        &["--historical", "--out", past.to_str().unwrap()],
    );
    expect_code(&out, 0);
    assert!(
        stderr(&out).contains("NO LONGER STANDS"),
        "{}",
        stderr(&out)
    );
    let out = verify_receipt_of(&data, &past, &[]);
    expect_saying(&out, "not proved: that the certification still stands");
    // What runs there (1.0.0, brought back by the rollback) has a receipt, no warning.
    let out = receipt_of(
        &data,
        &old[0],
        &["--out", dir.path().join("now.json").to_str().unwrap()],
    );
    expect_code(&out, 0);
    assert!(
        stderr(&out).contains("a rollback at entry"),
        "{}",
        stderr(&out)
    );

    // Olga breaks glass: 1.2.0 into production past its gates. Its receipt is written,
    // and verify-receipt says it was an exception, not a clean pass.
    let reason = "checkout is down, 1.2.0 has the fix";
    let out = olga_breaks_glass(&data, "shop@1.2.0", reason, &[]);
    expect_code(&out, 0);
    let glass = dir.path().join("glass.json");
    let out = receipt_of(&data, &digest, &["--out", glass.to_str().unwrap()]);
    expect_code(&out, 0);
    assert!(stderr(&out).contains("BY BREAK-GLASS"), "{}", stderr(&out));
    let out = verify_receipt_of(&data, &glass, &[]);
    expect_code(&out, 0);
    let text = stdout(&out);
    let proved = text
        .lines()
        .find(|l| l.starts_with("proved:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        proved.contains("BY BREAK-GLASS")
            && proved.contains("not a clean pass")
            && proved.contains(reason),
        "{text}"
    );
    let out = verify_receipt_of(&data, &glass, &["--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["break_glass"], reason);
    // The signed VSA says so too: a consumer reading only the VSA sees the exception.
    assert!(
        report["checked"].as_array().unwrap().iter().any(|c| c
            .as_str()
            .unwrap()
            .contains("marked as a break-glass exception (CUSTODY_BREAK_GLASS)")),
        "{report:#}"
    );
    assert!(
        !report["overridden"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    let entry = report["entry"].as_u64().unwrap();
    assert!(
        report["proves"]
            .as_str()
            .unwrap()
            .contains(&format!("ledger index {entry}"))
    );
    // A deploy system that accepts only clean passes says so.
    expect_refusal(
        &verify_receipt_of(&data, &glass, &["--refuse-break-glass"]),
        1,
        "break-glass",
    );
    // …and its JSON says so too: no failure, but refused.
    let out = verify_receipt_of(&data, &glass, &["--refuse-break-glass", "--json"]);
    expect_code(&out, 1);
    let refused: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        refused["refused"].as_str().unwrap().contains("break-glass"),
        "{refused:#}"
    );

    // Rolled back by hand: that break-glass certification no longer stands either.
    let out = run(custody()
        .args([
            "rollback",
            "--env",
            "production",
            "--reason",
            "the fix broke payments",
        ])
        .arg("--data-dir")
        .arg(&data)
        .env("CUSTODY_TOKEN", token(&data, "argo", &[])));
    expect_code(&out, 0);
    let out = receipt_of(&data, &digest, &[]);
    expect_refusal(&out, 2, "no longer stands");
    for says in [
        "by break-glass",
        "rolled production back from shop@1.2.0",
        "the fix broke payments",
    ] {
        assert!(stderr(&out).contains(says), "{says}: {}", stderr(&out));
    }

    // Then 1.1.0 goes out by break-glass too. What replaced the 1.2.0 certification is
    // still the rollback, not the newest change: a historical receipt names both.
    let out = olga_breaks_glass(
        &data,
        "shop@1.1.0",
        "1.1.0 is the last build payments trust",
        &[],
    );
    expect_code(&out, 0);
    let out = receipt_of(
        &data,
        &digest,
        &["--historical", "--out", past.to_str().unwrap()],
    );
    expect_code(&out, 0);
    let said = stderr(&out);
    let (replaced, since) = said
        .split_once("NO LONGER STANDS (")
        .and_then(|(_, rest)| rest.split_once("; since then"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        replaced.contains("rolled production back from shop@1.2.0")
            && replaced.contains("the fix broke payments"),
        "{said}"
    );
    assert!(
        since.contains("certified shop@1.1.0 in production"),
        "{said}"
    );
}
