//! The rotation checked offline, from the old public key and a checkpoint kept before it:
//! an auditor's bundle (by custody and by the independent Python verifier; refused without
//! its hand-over, or with the hand-over's new-key signature removed or a stranger's), a
//! receipt written after the rotation, and the independent log follower.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::bundle::Bundle;
use super::common::*;
use super::log;

/// What the rotation left for the offline checks.
pub(crate) struct Rotated<'a> {
    pub(crate) temp: &'a tempfile::TempDir,
    pub(crate) data: PathBuf,
    /// The log's origin.
    pub(crate) origin: String,
    /// What a monitor kept from before the rotation: a checkpoint and the old public key.
    pub(crate) kept: PathBuf,
    pub(crate) old_pub: PathBuf,
    /// The log's size at the hand-over, the hand-over checkpoint, and what
    /// `key rotate log --json` said.
    pub(crate) at: u64,
    pub(crate) handover_note: String,
    pub(crate) rotated: Value,
    /// A stranger's key pair: (private, public).
    pub(crate) foreign: PathBuf,
    pub(crate) foreign_pub: PathBuf,
}

/// Checks the rotation offline; returns the hand-over checkpoint stripped of the old key's
/// signature, which the independent follower refused.
pub(crate) fn checked_offline(rotation: Rotated<'_>) -> String {
    let Rotated {
        temp,
        data,
        origin,
        kept,
        old_pub,
        at,
        handover_note,
        rotated,
        foreign,
        foreign_pub,
    } = rotation;
    // An auditor's bundle carries the hand-over: it verifies offline from the old key with
    // the checkpoint kept before, and from the new key; not from a stranger's.
    let bundle = temp.path().join("all.bundle");
    let out = run(custody()
        .args(["audit", "export", "--out"])
        .arg(&bundle)
        .arg("--data-dir")
        .arg(&data)
        .env("CUSTODY_TOKEN", token(&data, "audrey", &[])));
    expect_code(&out, 0);
    let audit = |bundle: &Path, key: &Path| {
        let out = run(custody()
            .args(["audit", "verify", "--json", "--log-key"])
            .arg(key)
            .arg(bundle)
            .arg("--checkpoint")
            .arg(&kept));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code(), report)
    };
    for key in [old_pub.clone(), data.join("keys/log.pub")] {
        let (code, report) = audit(&bundle, &key);
        assert_eq!(code, Some(0), "{report:#}");
        assert_eq!(report["failures"], Value::Array(vec![]), "{report:#}");
        let notes = report["notes"].to_string();
        assert!(
            notes.contains(&format!("handed over at {at} entries")),
            "{notes}"
        );
    }
    let (code, report) = audit(&bundle, &foreign_pub);
    assert_eq!(code, Some(1), "{report:#}");
    // Without the hand-over's event and proof, the old key follows nowhere: the
    // checkpoints after it fail, and so does the one it ends with for the new key.
    let bare = temp.path().join("bare.bundle");
    without_handovers(&bundle, &bare);
    for key in [old_pub.clone(), data.join("keys/log.pub")] {
        let (code, report) = audit(&bare, &key);
        assert_eq!(code, Some(1), "{report:#}");
        let failures = report["failures"].to_string();
        assert!(failures.contains("does not verify"), "{failures}");
    }

    // The independent bundle verifier follows the hand-over too, from either key, and
    // refuses the bundle without it, or with the hand-over's new-key signature removed
    // or made by a stranger.
    let python_audit = |bundle: &Path, key: &Path| {
        let out = run(python_script("audit_verify.py")
            .arg(bundle)
            .arg(key)
            .arg("--json")
            .arg("--checkpoint")
            .arg(&kept));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code(), report, stderr(&out))
    };
    for key in [old_pub.clone(), data.join("keys/log.pub")] {
        let (code, report, err) = python_audit(&bundle, &key);
        assert_eq!(code, Some(0), "{report:#} {err}");
        assert_eq!(report["handovers"], serde_json::json!([at]), "{report:#}");
    }
    assert_eq!(python_audit(&bundle, &foreign_pub).0, Some(1));
    assert_eq!(python_audit(&bare, &old_pub).0, Some(1));
    let retired_key = Path::new(rotated["retired_key"].as_str().unwrap());
    let lines: Vec<&str> = handover_note.lines().collect();
    let forgeries = [
        // The new key's signature (the last line) removed.
        (
            "unsigned",
            format!("{}\n", lines[..lines.len() - 1].join("\n")),
        ),
        ("stranger", resign(&handover_note, &[retired_key, &foreign])),
    ];
    for (name, note) in forgeries {
        let forged = temp.path().join(format!("{name}.bundle"));
        rewrite_checkpoints(&bundle, &forged, |line| {
            if line.get("handover").is_some() {
                assert_eq!(line["note"], handover_note.as_str());
                line["note"] = note.clone().into();
            }
        });
        for key in [old_pub.clone(), data.join("keys/log.pub")] {
            let (code, report, err) = python_audit(&forged, &key);
            assert_eq!(code, Some(1), "{name}: {report:#} {err}");
            assert!(
                report["failures"].to_string().contains("hand-over"),
                "{name}: {report:#}"
            );
        }
    }

    // A receipt written after the rotation (its checkpoint signed by the new key alone)
    // verifies from the new key, and from the old key by following the hand-over it
    // carries; not from a stranger's, nor from the old key once the hand-over is taken
    // out or its new key's signature is replaced by a stranger's.
    let receipt = receipt_after_rotation(&data, temp.path());
    let verify_receipt = |file: &Path, key: &Path| {
        let out = run(custody()
            .args(["audit", "verify-receipt", "--json", "--log-key"])
            .arg(key)
            .arg(file));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code(), report, stderr(&out))
    };
    for key in [old_pub.clone(), data.join("keys/log.pub")] {
        let (code, report, err) = verify_receipt(&receipt, &key);
        assert_eq!(code, Some(0), "{}: {report:#} {err}", key.display());
    }
    let (code, report, _) = verify_receipt(&receipt, &old_pub);
    assert!(
        report["checked"]
            .to_string()
            .contains(&format!("hand-over at {at} entries")),
        "{report:#}"
    );
    let (code_stranger, _, _) = verify_receipt(&receipt, &foreign_pub);
    assert_eq!((code, code_stranger), (Some(0), Some(1)));
    let mut value: Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    let handovers = value["handovers"].as_array().unwrap().clone();
    assert_eq!(handovers.len(), 1, "{value:#}");
    let bare = temp.path().join("bare-receipt.json");
    value.as_object_mut().unwrap().remove("handovers");
    std::fs::write(&bare, value.to_string()).unwrap();
    let (code, report, _) = verify_receipt(&bare, &old_pub);
    assert_eq!(code, Some(1), "{report:#}");
    let (code, report, _) = verify_receipt(&bare, &data.join("keys/log.pub"));
    assert_eq!(code, Some(0), "{report:#}");
    // The hand-over checkpoint signed by the old key and a stranger, not the new key.
    let note = handovers[0]["checkpoint"].as_str().unwrap();
    let old_key = Path::new(rotated["retired_key"].as_str().unwrap());
    let forged = resign(note, &[old_key, &foreign]);
    value["handovers"] = handovers.clone().into();
    value["handovers"][0]["checkpoint"] = forged.into();
    let tampered = temp.path().join("tampered-receipt.json");
    std::fs::write(&tampered, value.to_string()).unwrap();
    let (code, report, _) = verify_receipt(&tampered, &old_pub);
    assert_eq!(code, Some(1), "{report:#}");
    assert!(
        report["failures"]
            .to_string()
            .contains("not signed by the new log key"),
        "{report:#}"
    );

    // The independent verifier, from the old public key alone.
    let files = temp.path();
    std::fs::write(files.join("handover"), &handover_note).unwrap();
    let index = (at - 1).to_string();
    let out = log(
        &data,
        &["entries", "--start", &index, "--end", &at.to_string()],
    );
    expect_code(&out, 0);
    std::fs::write(files.join("leaf"), out.stdout).unwrap();
    let out = log(
        &data,
        &[
            "proof",
            "inclusion",
            "--index",
            &index,
            "--size",
            &at.to_string(),
            "--json",
        ],
    );
    expect_code(&out, 0);
    std::fs::write(files.join("proof"), out.stdout).unwrap();
    let out = log(&data, &["checkpoint"]);
    std::fs::write(files.join("newest"), out.stdout).unwrap();
    let follow = |handover: &str| {
        run(python_script("follow_log_key.py")
            .arg(&origin)
            .arg(&old_pub)
            .arg(files.join(handover))
            .arg(files.join("leaf"))
            .arg(files.join("proof"))
            .arg(files.join("newest")))
    };
    let out = follow("handover");
    expect_code(&out, 0);
    assert!(stdout(&out).starts_with("ok: followed the hand-over"));
    // Without the old key's signature the independent verifier refuses it too.
    let lines: Vec<&str> = handover_note.lines().collect();
    let stripped = format!(
        "{}\n",
        [&lines[..lines.len() - 2], &lines[lines.len() - 1..]]
            .concat()
            .join("\n")
    );
    std::fs::write(files.join("stripped"), &stripped).unwrap();
    let out = follow("stripped");
    expect_code(&out, REFUSED);
    stripped
}

/// Copies the audit bundle `from` to `to` with the `handover` of every line of its
/// checkpoints.jsonl removed.
fn without_handovers(from: &Path, to: &Path) {
    let mut stripped = 0;
    rewrite_checkpoints(from, to, |line| {
        stripped += usize::from(line.as_object_mut().unwrap().remove("handover").is_some());
    });
    assert_eq!(stripped, 1, "the bundle carries the one hand-over");
}

/// Copies the audit bundle `from` to `to` with `change` applied to every line of its
/// checkpoints.jsonl.
fn rewrite_checkpoints(from: &Path, to: &Path, change: impl FnMut(&mut Value)) {
    let mut bundle = Bundle::read(from);
    let mut lines = bundle.lines("checkpoints.jsonl");
    lines.iter_mut().for_each(change);
    bundle.set_lines("checkpoints.jsonl", &lines);
    bundle.write(to);
}

/// `custody audit receipt` (as audrey) of the first artifact certified, written to
/// `dir/receipt.json` (historical: whatever was certified since).
fn receipt_after_rotation(data: &Path, dir: &Path) -> PathBuf {
    let out = run(custody()
        .args(["log", "entries", "--data-dir"])
        .arg(data)
        .env_remove("CUSTODY_TOKEN"));
    expect_code(&out, 0);
    let certified = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["type"] == "environment.certified")
        .expect("the demo certifies a release");
    let receipt = dir.join("receipt.json");
    let out = run(custody()
        .args(["audit", "receipt", "--historical", "--data-dir"])
        .arg(data)
        .args(["--env", certified["environment"].as_str().unwrap()])
        .arg(certified["artifacts"][0].as_str().unwrap())
        .arg("--out")
        .arg(&receipt)
        .env("CUSTODY_TOKEN", token(data, "audrey", &[])));
    expect_code(&out, 0);
    receipt
}
