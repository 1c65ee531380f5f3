//! The auditor's kit as an auditor uses it: a bundle exported from the demo verifies
//! offline with nothing but the binary and the log key; every tampering is caught with the
//! culprit named, by `custody audit verify` and by an independent Python verifier written
//! from docs/audit-bundle.md alone (same verdict every time); confidential rationales are
//! redacted provably; and a receipt proves a certification to whoever receives a release.
//!
//! Beside the tests here (a bundle verified whole or scoped, a changed byte, confidential
//! rationales, unusable input), the parts: [`forgery`] (entries, envelopes and checkpoints
//! forged), [`reports`] (the raw reports), [`notes`] (what is noted, not failed),
//! [`claims`] (the exporter's unverified claims), [`truncation`] (a bundle cut short) and
//! [`receipt`] (receipts), and [`bench`] (`custody bench audit` on small bundles).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

#[path = "audit/bench.rs"]
mod bench;
#[path = "audit/bundle.rs"]
mod bundle;
#[path = "audit/claims.rs"]
mod claims;
mod common;
#[path = "audit/forgery.rs"]
mod forgery;
#[path = "audit/notes.rs"]
mod notes;
#[path = "audit/receipt.rs"]
mod receipt;
#[path = "audit/reports.rs"]
mod reports;
#[path = "audit/truncation.rs"]
mod truncation;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bundle::{Bundle, event};
use common::*;
use serde_json::Value;

/// The demo, plus a confidential approval waiting on a second one, shared by the tests.
struct Fixture {
    data: PathBuf,
    dir: PathBuf,
    /// The whole ledger, exported by an auditor.
    all: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("audit-{}", unique_name()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("data");
        expect_code(&run(custody().args(["demo", "--data-dir"]).arg(&data)), 0);
        // shop@1.1.0 again into production: the operator (an approver in the demo)
        // approves, confidentially; it waits for a second.
        let out = run(custody()
            .args([
                "promote",
                "shop@1.1.0",
                "--to",
                "production",
                "--json",
                "--data-dir",
            ])
            .arg(&data)
            .env("CUSTODY_TOKEN", token(&data, "rita", &[])));
        let promotion: Value = serde_json::from_slice(&out.stdout).unwrap();
        let id = promotion["promotion"]["id"].as_str().unwrap();
        let out = run(custody()
            .args([
                "approve",
                id,
                "--rationale",
                "the auditors asked for the fraud fix, quietly",
            ])
            .args(["--risk", "high", "--confidential", "--data-dir"])
            .arg(&data)
            .env_remove("CUSTODY_TOKEN"));
        assert!(stdout(&out).contains("pending"), "{}", stderr(&out));
        let all = dir.join("all.bundle");
        export(&data, &all, "audrey", &[]);
        Fixture { data, dir, all }
    })
}

fn export(data: &Path, out: &Path, who: &str, scope: &[&str]) {
    let exported = run(custody()
        .args(["audit", "export", "--out"])
        .arg(out)
        .args(scope)
        .arg("--data-dir")
        .arg(data)
        .env("CUSTODY_TOKEN", token(data, who, &[])));
    expect_code(&exported, 0);
}

fn log_pub() -> PathBuf {
    fixture().data.join("keys/log.pub")
}

/// `custody audit verify --json` on a bundle: (exit code, report or null, stderr).
fn verify(bundle: &Path) -> (i32, Value, String) {
    let out = run(custody()
        .args(["audit", "verify", "--json", "--log-key"])
        .arg(log_pub())
        .arg(bundle));
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), report, stderr(&out))
}

/// The Python verifier's exit code and output on a bundle.
fn python_verify(bundle: &Path) -> (i32, Value) {
    let out = run(python_script("audit_verify.py")
        .arg(bundle)
        .arg(log_pub())
        .arg("--json"));
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(
        out.status.code().unwrap() != 2 || report.is_null(),
        "{}",
        stderr(&out)
    );
    (out.status.code().unwrap(), report)
}

/// Asserts that both verifiers fail the bundle, custody naming `entry` (if given) and
/// `check`, and the Python verifier failing too.
#[track_caller]
fn caught(bundle: &Path, entry: Option<u64>, check: &str) {
    let (code, report, err) = verify(bundle);
    assert_eq!(
        code, 1,
        "custody passed a tampered bundle: {report:#}\n{err}"
    );
    let failures = report["failures"].as_array().unwrap();
    assert!(
        failures
            .iter()
            .any(|f| f["check"] == check && (entry.is_none() || f["entry"].as_u64() == entry)),
        "no {check} failure at {entry:?} in {failures:#?}"
    );
    assert!(err.contains("FAILED"), "{err}");
    let (py, py_report) = python_verify(bundle);
    assert_eq!(py, 1, "the Python verifier disagrees: {py_report:#}");
}

/// Changes the first hex digit of a hash held as a JSON string (another hash, same shape).
fn flip_first_digit(hash: &mut Value) {
    let h = hash.as_str().unwrap();
    *hash = Value::String(format!(
        "{}{}",
        if h.starts_with('0') { "1" } else { "0" },
        &h[1..]
    ));
}

fn tampered(name: &str, change: impl FnOnce(&mut Bundle)) -> PathBuf {
    tampered_from(&fixture().all, name, change)
}

fn tampered_from(from: &Path, name: &str, change: impl FnOnce(&mut Bundle)) -> PathBuf {
    let mut b = Bundle::read(from);
    change(&mut b);
    let path = fixture().dir.join(format!("{name}.bundle"));
    b.write(&path);
    path
}

#[test]
fn a_demo_bundle_verifies_offline_with_only_the_binary_and_the_log_key() {
    let f = fixture();
    // A machine with the binary, the log's public key and the bundle: nothing else.
    let alone = tempfile::tempdir().unwrap();
    let binary = alone.path().join("custody");
    std::fs::copy(env!("CARGO_BIN_EXE_custody"), &binary).unwrap();
    std::fs::copy(log_pub(), alone.path().join("log.pub")).unwrap();
    std::fs::copy(&f.all, alone.path().join("evidence.bundle")).unwrap();
    let out = run(std::process::Command::new(&binary)
        .current_dir(alone.path())
        .env_clear()
        .args([
            "audit",
            "verify",
            "evidence.bundle",
            "--log-key",
            "log.pub",
            "--html",
            "report.html",
        ]));
    expect_code(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("ok: every check passed"), "{text}");
    assert!(text.contains("production runs shop@1.0.0"), "{text}");
    // The demo's rollback of production is named in the text too, as in JSON and HTML.
    assert!(
        text.contains("rollback: entry")
            && text.contains("rolled production back from shop@1.2.0 to shop@1.0.0"),
        "{text}"
    );

    let (code, r, _) = verify(&f.all);
    assert_eq!(code, 0);
    let c = &r["checked"];
    let size = r["anchor"].as_u64().unwrap();
    assert_eq!(c["entries"].as_u64(), Some(size), "{r:#}");
    assert!(r["complete"].as_bool().unwrap());
    for (what, at_least) in [
        ("checkpoints", 2),
        ("consistency_proofs", 1),
        ("roots_recomputed", 2),
        ("policies", 1),
        ("provenance", 9),
        ("manifests", 3),
        ("vsas", 10),
        ("evidence_statements", 9),
        ("approvals_signed", 5),
        ("decisions_replayed", 10),
        ("facts_rederived", 5),
        ("rationales_checked", 1),
        ("certifications", 8),
    ] {
        assert!(c[what].as_u64().unwrap() >= at_least, "{what}: {c:#}");
    }
    // The story: production runs 1.0.0 again after 1.2.0's failed rollout.
    let envs = &r["story"]["environments"];
    assert!(
        envs.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "production" && e["release"] == "shop@1.0.0"),
        "{envs:#}"
    );
    assert_eq!(r["story"]["rollbacks"][0]["to"], "shop@1.0.0");
    // The regulator's page says the same, without script.
    let html = std::fs::read_to_string(alone.path().join("report.html")).unwrap();
    for needle in [
        "Every check passed",
        "production",
        "shop@1.0.0",
        "tests and scans are clean",
        "rolled back",
    ] {
        assert!(html.contains(needle), "{needle} not in the report");
    }
    assert!(!html.contains("<script"));
    // The independent verifier agrees.
    let (py, report) = python_verify(&f.all);
    assert_eq!(py, 0, "{report:#}");
}

#[test]
fn scoped_bundles_prove_each_entry_and_carry_the_lineage() {
    let f = fixture();
    for (name, scope) in [
        ("release", vec!["--release", "shop@1.2.0"]),
        ("env", vec!["--env", "production"]),
        (
            "time",
            vec![
                "--since",
                "2000-01-01T00:00:00Z",
                "--until",
                "2100-01-01T00:00:00Z",
            ],
        ),
    ] {
        let path = f.dir.join(format!("scope-{name}.bundle"));
        export(&f.data, &path, "audrey", &scope);
        let (code, r, err) = verify(&path);
        assert_eq!(code, 0, "{name}: {r:#} {err}");
        assert!(!r["complete"].as_bool().unwrap());
        let c = &r["checked"];
        assert_eq!(c["inclusion_proofs"], c["entries"], "{name}: {c:#}");
        assert!(c["certifications"].as_u64().unwrap() >= 1, "{name}: {c:#}");
        assert!(
            c["policies"].as_u64().unwrap() >= 1,
            "{name}: the key history travels"
        );
        assert_eq!(python_verify(&path).0, 0, "{name}");
        // A decision's reading of a report outside the scope is not confirmed, said once,
        // as absent: never as altered.
        let unconfirmed: Vec<&str> = r["notes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n.as_str())
            .filter(|n| n.contains("is not confirmed"))
            .collect();
        assert_eq!(
            unconfirmed.len() as u64,
            c["facts_unconfirmed"].as_u64().unwrap(),
            "{name}: {unconfirmed:#?}"
        );
        for n in &unconfirmed {
            assert!(n.contains("which is not in the bundle"), "{name}: {n}");
        }
        let mut once = unconfirmed.clone();
        once.sort();
        once.dedup();
        assert_eq!(once.len(), unconfirmed.len(), "{name}: {unconfirmed:#?}");
    }
    // A scoped bundle does not know what runs where, and does not claim to: build runs
    // shop@1.2.0, but the latest certification in a bundle of shop@1.0.0 is 1.0.0's.
    let html = f.dir.join("scope-release.html");
    let out = run(custody()
        .args(["audit", "verify", "--log-key"])
        .arg(log_pub())
        .arg(f.dir.join("scope-release.bundle"))
        .arg("--html")
        .arg(&html));
    expect_code(&out, 0);
    let text = stdout(&out);
    assert!(!text.contains(" runs "), "{text}");
    assert!(
        text.contains("the latest certification in this bundle (a part of the ledger"),
        "{text}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.contains("What runs where"));
    assert!(page.contains("a later certification may lie outside it"));
    // Nor does it claim a negative about the rest of the ledger.
    if !page.contains("Exceptions in force") || page.contains("No gate was overridden") {
        assert!(
            page.contains("exceptions outside it are not shown"),
            "a partial bundle's report claims no exception anywhere"
        );
    }
    // An unknown release is refused, and writes nothing.
    let out = run(custody()
        .args([
            "audit",
            "export",
            "--token",
            &token(&f.data, "audrey", &[]),
            "--release",
            "shop@9.9.9",
            "--out",
        ])
        .arg(f.dir.join("none.bundle"))
        .arg("--data-dir")
        .arg(&f.data));
    expect_refusal(&out, 2, "no release shop@9.9.9");
    assert!(!f.dir.join("none.bundle").exists());
}

#[test]
fn one_changed_byte_anywhere_is_caught_and_named() {
    // In an entry's leaf (a release's creator), in an envelope inside one (a provenance
    // signature), in a checkpoint, in a consistency proof.
    let (_, _, line) = Bundle::read(&fixture().all).find(|e| e["type"] == "release.created");
    let index = line["index"].as_u64();
    let path = tampered("leaf", |b| {
        let (m, n, mut line) = b.find(|e| e["type"] == "release.created");
        line["leaf"] = Value::String(line["leaf"].as_str().unwrap().replacen("rita", "ritb", 1));
        b.set_line(&m, n, Some(&line));
    });
    caught(&path, index, "leaf-hash");

    let (_, _, line) = Bundle::read(&fixture().all).find(|e| e["type"] == "artifact.registered");
    let path = tampered("envelope", |b| {
        let (m, n, mut line) = b.find(|e| e["type"] == "artifact.registered");
        let leaf = line["leaf"].as_str().unwrap();
        let at = leaf.find("\"sig\":\"").unwrap() + 8;
        let mut bytes = leaf.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        line["leaf"] = Value::String(String::from_utf8(bytes).unwrap());
        b.set_line(&m, n, Some(&line));
    });
    caught(&path, line["index"].as_u64(), "leaf-hash");

    let path = tampered("checkpoint", |b| {
        let mut cps = b.lines("checkpoints.jsonl");
        let note = cps[0]["note"].as_str().unwrap().to_owned();
        let lines: Vec<&str> = note.split('\n').collect();
        let root = lines[2];
        let flipped = if root.starts_with('A') {
            root.replacen('A', "B", 1)
        } else {
            format!("A{}", &root[1..])
        };
        cps[0]["note"] = Value::String(note.replacen(root, &flipped, 1));
        b.set_lines("checkpoints.jsonl", &cps);
    });
    caught(&path, None, "checkpoint-signature");

    let path = tampered("consistency", |b| {
        let mut proofs = b.lines("consistency.jsonl");
        let p = proofs
            .iter_mut()
            .find(|p| !p["hashes"].as_array().unwrap().is_empty())
            .unwrap();
        flip_first_digit(&mut p["hashes"][0]);
        b.set_lines("consistency.jsonl", &proofs);
    });
    caught(&path, None, "consistency");

    // An entry line that cannot be read at all: a format failure, and the entries missing
    // from there on are said to be perhaps that line's (not a second, unexplained cause).
    let path = tampered("unreadable", |b| {
        let (m, n, _) = b.find(|e| e["type"] == "release.created");
        b.set_line(&m, n, Some(&Value::String("not an entry".into())));
    });
    caught(&path, None, "format");
    let (_, report, _) = verify(&path);
    let failures = report["failures"].as_array().unwrap();
    assert!(
        failures.iter().any(|f| f["check"] == "entry-order"
            && f["detail"].as_str().unwrap().contains(
                "(1 entry line could not be read, reported as a format failure: it may be one of them)"
            )),
        "{failures:#?}"
    );

    // An entry line made blank: not skipped as if nothing were there, but an unreadable
    // line where an entry was.
    let path = tampered("blank", |b| {
        let (m, n, _) = b.find(|e| e["type"] == "release.created");
        let bytes = b.member(&m);
        let mut lines: Vec<&[u8]> = bytes.split(|c| *c == b'\n').collect();
        lines[n] = b"";
        *bytes = lines.join(&b'\n');
    });
    caught(&path, None, "format");
    let (_, report, _) = verify(&path);
    assert!(
        report["failures"].to_string().contains("line"),
        "{report:#}"
    );

    // An inclusion proof of a scoped bundle.
    let scoped = fixture().dir.join("scope-proof.bundle");
    export(
        &fixture().data,
        &scoped,
        "audrey",
        &["--release", "shop@1.0.0"],
    );
    let (_, _, line) = Bundle::read(&scoped).find(|e| e["type"] == "promotion.requested");
    let path = tampered_from(&scoped, "inclusion", |b| {
        let (m, n, mut line) = b.find(|e| e["type"] == "promotion.requested");
        let h = line["proof"]["hashes"][0].as_str().unwrap().to_owned();
        line["proof"]["hashes"][0] = Value::String(format!(
            "{}{}",
            if h.starts_with('f') { "e" } else { "f" },
            &h[1..]
        ));
        b.set_line(&m, n, Some(&line));
    });
    caught(&path, line["index"].as_u64(), "inclusion");

    // The anchor's signature of a scoped bundle: nothing is proved, said once (not once
    // per entry, which would bury the cause).
    let path = tampered_from(&scoped, "anchor-signature", |b| {
        let mut cps = b.lines("checkpoints.jsonl");
        let last = cps.last_mut().unwrap();
        let note = last["note"].as_str().unwrap();
        let at = note.rfind(' ').unwrap() + 12;
        let mut bytes = note.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        last["note"] = Value::String(String::from_utf8(bytes).unwrap());
        b.set_lines("checkpoints.jsonl", &cps);
    });
    caught(&path, None, "checkpoint-signature");
    let (_, report, _) = verify(&path);
    let failures = report["failures"].as_array().unwrap();
    assert!(
        failures.iter().all(|f| f["check"] != "inclusion"),
        "{failures:#?}"
    );
    assert!(
        failures.iter().any(|f| f["detail"]
            .as_str()
            .unwrap()
            .contains("nothing in the bundle is proved")),
        "{failures:#?}"
    );
}

#[test]
fn confidential_rationales_travel_only_to_auditors_and_are_checked_against_the_ledger() {
    let f = fixture();
    let secret = "the auditors asked for the fraud fix, quietly";
    let viewer = f.dir.join("viewer.bundle");
    export(&f.data, &viewer, "vic", &[]);
    let bytes = std::fs::read(&viewer).unwrap();
    assert!(
        !String::from_utf8_lossy(&bytes).contains(secret),
        "the viewer's bundle holds the rationale"
    );
    let (code, r, _) = verify(&viewer);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["checked"]["rationales_withheld"], 1);
    assert_eq!(r["unverified"]["confidential"], "withheld");
    assert_eq!(python_verify(&viewer).0, 0);
    // The auditor's carries it, checked against the commitment in the proven leaf.
    assert!(String::from_utf8_lossy(&std::fs::read(&f.all).unwrap()).contains(secret));
    let (_, _, line) = Bundle::read(&f.all)
        .find(|e| e["type"] == "approval.recorded" && e["confidential"] == true);
    let path = tampered("rationale", |b| {
        let (m, n, mut line) =
            b.find(|e| e["type"] == "approval.recorded" && e["confidential"] == true);
        line["rationale"] = Value::String("nothing to see here".into());
        b.set_line(&m, n, Some(&line));
    });
    caught(&path, line["index"].as_u64(), "rationale");
    // Someone who may not read history may not export it.
    let out = run(custody()
        .args(["audit", "export", "--out"])
        .arg(f.dir.join("ci.bundle"))
        .arg("--data-dir")
        .arg(&f.data)
        .env("CUSTODY_TOKEN", token(&f.data, "ci-bot", &[])));
    expect_refusal(&out, 1, "may not export");
}

#[test]
fn unusable_input_is_exit_2_not_a_verdict() {
    let f = fixture();
    let junk = f.dir.join("junk.bundle");
    std::fs::write(&junk, b"this is not a tar archive, it is a sentence").unwrap();
    let (code, _, err) = verify(&junk);
    assert_eq!(code, 2, "{err}");
    let wrong = tampered("wrong-format", |b| {
        let m = b.member("bundle.json");
        *m = String::from_utf8(m.clone())
            .unwrap()
            .replace("bundle/v1", "bundle/v9")
            .into_bytes();
    });
    let (code, _, err) = verify(&wrong);
    assert_eq!(code, 2);
    assert!(err.contains("bundle/v9"), "{err}");
    assert_eq!(python_verify(&wrong).0, 2);
    // A bundle of another log: its checkpoints do not verify with this key.
    let other = tempfile::tempdir().unwrap();
    expect_code(
        &run(custody()
            .args(["init", "--data-dir"])
            .arg(other.path().join("d"))),
        0,
    );
    let out = run(custody()
        .args(["audit", "verify", "--log-key"])
        .arg(other.path().join("d/keys/log.pub"))
        .arg(&f.all));
    // The report (stdout) names each failure; stderr only counts them, not twice.
    expect_refusal(&out, 1, "(each is listed above)");
    assert!(stdout(&out).contains("FAILED") && stdout(&out).contains("checkpoint-signature"));
    assert!(
        !stderr(&out).contains("checkpoint-signature"),
        "{}",
        stderr(&out)
    );
}
