//! The auditor's kit as an auditor uses it: a bundle exported from the demo verifies
//! offline with nothing but the binary and the log key; every tampering is caught with the
//! culprit named, by `custody audit verify` and by an independent Python verifier written
//! from docs/audit-bundle.md alone (same verdict every time); confidential rationales are
//! redacted provably; and a receipt proves a certification to whoever receives a release.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

#[path = "audit/bundle.rs"]
mod bundle;
#[path = "audit/claims.rs"]
mod claims;
mod common;
#[path = "audit/receipt.rs"]
mod receipt;
#[path = "audit/truncation.rs"]
mod truncation;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bundle::{Bundle, envelope_digest, event, log_key, resign, with_event};
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

/// The members holding raw reports: (name, bytes).
fn raw_reports(b: &Bundle) -> Vec<(String, Vec<u8>)> {
    b.members
        .iter()
        .filter(|(n, _)| n.starts_with("reports/sha256/"))
        .cloned()
        .collect()
}

/// Sets `end.json`'s count of reports to what the bundle holds, as a careful forger would.
fn recount_reports(b: &mut Bundle) {
    let n = raw_reports(b).len();
    let mut end: Value = serde_json::from_slice(b.member("end.json")).unwrap();
    end["reports"] = n.into();
    *b.member("end.json") = serde_json::to_vec(&end).unwrap();
}

#[test]
fn the_raw_reports_travel_byte_for_byte_and_a_changed_or_removed_one_is_caught() {
    use sha2::Digest as _;
    let f = fixture();
    let b = Bundle::read(&f.all);
    // Every report an evidence entry says custody read is in the bundle, named by the
    // SHA-256 of its bytes, and is exactly what the server serves as that report.
    let named: Vec<(u64, String)> = b
        .entries()
        .iter()
        .filter(|(_, _, line)| {
            let e = event(line);
            e["type"] == "evidence.attached" && e.get("report").is_some()
        })
        .map(|(_, _, line)| {
            let e = event(line);
            (
                line["index"].as_u64().unwrap(),
                e["evidence"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(named.len() >= 9, "{named:?}");
    let reports = raw_reports(&b);
    for (_, digest) in &named {
        let name = digest.replace("sha256:", "reports/sha256/");
        let (_, bytes) = reports.iter().find(|(n, _)| *n == name).unwrap();
        assert_eq!(
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes))),
            *digest
        );
        let served = run(custody()
            .args(["report", digest, "--data-dir"])
            .arg(&f.data));
        expect_code(&served, 0);
        assert_eq!(served.stdout, *bytes, "{digest}");
    }
    let (_, r, _) = verify(&f.all);
    assert_eq!(
        r["checked"]["reports"].as_u64(),
        Some(reports.len() as u64),
        "{r:#}"
    );

    // One changed byte in a report: named, with the first entry that names it.
    let (first_report, _) = &reports[0];
    let naming = named
        .iter()
        .find(|(_, d)| d.replace("sha256:", "reports/sha256/") == *first_report)
        .unwrap()
        .0;
    let path = tampered("report-byte", |b| {
        let bytes = b.member(first_report);
        let at = bytes.len() / 2;
        bytes[at] = if bytes[at] == b' ' { b'\t' } else { b' ' };
    });
    caught(&path, Some(naming), "report");
    let (_, r, _) = verify(&path);
    assert!(
        r["failures"].to_string().contains("the report was altered"),
        "{r:#}"
    );

    // One report's bytes put under another's name.
    let path = tampered("report-swapped", |b| {
        let other = raw_reports(b)[1].1.clone();
        *b.member(first_report) = other;
    });
    caught(&path, Some(naming), "report");

    // A removed report, the trailer recounted: the entry naming it says it is gone.
    let path = tampered("report-removed", |b| {
        b.members.retain(|(n, _)| n != first_report);
        recount_reports(b);
    });
    caught(&path, Some(naming), "report");
    let (_, r, _) = verify(&path);
    assert!(
        r["failures"].to_string().contains("is not in the bundle"),
        "{r:#}"
    );
    // A report nobody names, counted in: an export carries only named reports.
    let path = tampered("report-added", |b| {
        let end = b.members.len() - 1;
        let bytes = b"{\"SchemaVersion\": 2, \"Results\": []}".to_vec();
        let name = format!(
            "reports/sha256/{}",
            hex::encode(sha2::Sha256::digest(&bytes))
        );
        b.members.insert(end, (name, bytes));
        recount_reports(b);
    });
    caught(&path, None, "report");
    // A report under another name (and so out of order): its own entry is told it is
    // missing, and nothing blames the reports around it.
    let path = tampered("report-renamed", |b| {
        let at = b
            .members
            .iter()
            .position(|(n, _)| n == first_report)
            .unwrap();
        b.members[at].0 = format!("reports/sha256/{}", "f".repeat(64));
    });
    caught(&path, Some(naming), "report");
    let (_, r, _) = verify(&path);
    let failures = r["failures"].as_array().unwrap();
    assert!(failures.len() <= 3, "{failures:#?}");
    // Removed without recounting: the trailer says so too.
    let path = tampered("report-removed-uncounted", |b| {
        b.members.retain(|(n, _)| n != first_report);
    });
    caught(&path, None, "trailer");
}

#[test]
fn removed_swapped_and_forged_entries_are_caught() {
    // A removed entry.
    let path = tampered("removed", |b| {
        let (m, n, _) = b.find(|e| e["type"] == "evidence.attached");
        b.set_line(&m, n, None);
    });
    let (_, _, gone) = Bundle::read(&fixture().all).find(|e| e["type"] == "evidence.attached");
    caught(&path, gone["index"].as_u64(), "entry-order");

    // Two entries swapped (lines), and two leaves swapped under their indices.
    let path = tampered("swapped", |b| {
        let entries = b.entries();
        let (m, _, first) = &entries[5];
        let second = &entries[6].2;
        b.set_line(m, 5, Some(second));
        b.set_line(m, 6, Some(first));
    });
    caught(&path, Some(5), "entry-order");
    let path = tampered("swapped-leaves", |b| {
        let entries = b.entries();
        let (m, _, first) = &entries[5];
        let (mut a, mut c) = (first.clone(), entries[6].2.clone());
        std::mem::swap(&mut a["leaf"], &mut c["leaf"]);
        b.set_line(m, 5, Some(&a));
        b.set_line(m, 6, Some(&c));
    });
    caught(&path, Some(5), "leaf-hash");
    caught(&path, Some(6), "leaf-hash");

    // A removed approval in a scoped bundle: the certification's lineage is incomplete.
    let scoped = fixture().dir.join("scope-approval.bundle");
    export(
        &fixture().data,
        &scoped,
        "audrey",
        &["--release", "shop@1.0.0"],
    );
    let b = Bundle::read(&scoped);
    let cert = b
        .find(|e| e["type"] == "environment.certified" && e["environment"] == "production")
        .2;
    let path = tampered_from(&scoped, "no-approval", |b| {
        let (m, n, _) =
            b.find(|e| e["type"] == "approval.recorded" && e["environment"] == "production");
        b.set_line(&m, n, None);
    });
    caught(&path, cert["index"].as_u64(), "lineage");
}

#[test]
fn envelopes_signed_by_keys_not_in_force_are_caught_even_under_a_forged_log() {
    let f = fixture();
    let key = log_key(&f.data);
    // A provenance re-signed by a key no policy trusts, under checkpoints the forger
    // re-signed with the log key: the log checks pass, the key history does not.
    let (_, _, line) = Bundle::read(&f.all).find(|e| e["type"] == "artifact.registered");
    let path = tampered("resigned-provenance", |b| {
        let (m, n, line) = b.find(|e| e["type"] == "artifact.registered");
        let mut e = event(&line);
        e["provenance"] = resign(&e["provenance"]);
        b.set_line(&m, n, Some(&with_event(&line, &e)));
        b.reseal(&key);
    });
    caught(&path, line["index"].as_u64(), "provenance");
    // custody's statement of what it read in a report, re-signed by another key.
    let (_, _, line) = Bundle::read(&f.all).find(|e| e["type"] == "evidence.attached");
    let path = tampered("resigned-evidence", |b| {
        let (m, n, line) = b.find(|e| e["type"] == "evidence.attached");
        let mut e = event(&line);
        e["statement"] = resign(&e["statement"]);
        b.set_line(&m, n, Some(&with_event(&line, &e)));
        b.reseal(&key);
    });
    caught(&path, line["index"].as_u64(), "evidence");
    // What the leaf says custody read, changed (a failing test run recorded as passing,
    // or the other way): the attestor signed the reading, not the forger.
    let path = tampered("forged-reading", |b| {
        let (m, n, line) = b.find(|e| e["type"] == "evidence.attached" && e["format"] == "junit");
        let mut e = event(&line);
        let failed = &mut e["report"]["summary"]["tests"]["failed"];
        *failed = (1 - failed.as_u64().unwrap().min(1)).into();
        b.set_line(&m, n, Some(&with_event(&line, &e)));
        b.reseal(&key);
    });
    let (_, _, line) =
        Bundle::read(&f.all).find(|e| e["type"] == "evidence.attached" && e["format"] == "junit");
    caught(&path, line["index"].as_u64(), "evidence");
    // A ledger written before custody signed its readings: no evidence leaf carries a
    // statement, and one misstates its report. Nothing signed says otherwise, but the raw
    // report read again does, in a note.
    let unsigned = |e: &mut Value| {
        e.as_object_mut().unwrap().remove("statement");
        e.as_object_mut().unwrap().remove("keys");
    };
    let path = tampered("forged-unsigned-reading", |b| {
        for (m, n, line) in b.entries() {
            let mut e = event(&line);
            if e["type"] == "evidence.attached" {
                unsigned(&mut e);
                if e["format"] == "junit" {
                    e["report"]["summary"]["tests"]["failed"] = 7.into();
                }
                b.set_line(&m, n, Some(&with_event(&line, &e)));
            }
        }
        b.reseal(&key);
    });
    let (code, r, _) = verify(&path);
    assert_eq!(code, 0, "{r:#}");
    let notes = r["notes"].to_string();
    assert!(
        notes.contains(&format!(
            "entry {}: this custody reads its junit report",
            line["index"]
        )) && notes.contains("\\\"failed\\\":7"),
        "{notes}"
    );
    assert_eq!(python_verify(&path).0, 0);
    // Once custody signs its readings it signs every one: a later leaf's statement
    // removed, to misstate what its report says, is caught.
    let evidence: Vec<Value> = Bundle::read(&f.all)
        .entries()
        .into_iter()
        .map(|(_, _, line)| line)
        .filter(|line| event(line)["type"] == "evidence.attached")
        .collect();
    let later = evidence.last().unwrap()["index"].as_u64().unwrap();
    let path = tampered("statement-removed", |b| {
        let (m, n, line) = b
            .entries()
            .into_iter()
            .find(|(_, _, l)| l["index"].as_u64() == Some(later))
            .unwrap();
        let mut e = event(&line);
        unsigned(&mut e);
        b.set_line(&m, n, Some(&with_event(&line, &e)));
        b.reseal(&key);
    });
    caught(&path, Some(later), "evidence");
    // A signed approval re-signed by a key no policy enrolled (its digest kept consistent):
    // the approval was not that approver's.
    let (_, _, line) = Bundle::read(&f.all)
        .find(|e| e["type"] == "approval.recorded" && e["statement"].is_object());
    let path = tampered("resigned-approval", |b| {
        let (m, n, line) =
            b.find(|e| e["type"] == "approval.recorded" && e["statement"].is_object());
        let mut e = event(&line);
        e["statement"] = resign(&e["statement"]);
        e["statement_digest"] = Value::String(envelope_digest(&e["statement"]));
        b.set_line(&m, n, Some(&with_event(&line, &e)));
        b.reseal(&key);
    });
    caught(&path, line["index"].as_u64(), "approval");
    // Its statement removed altogether (its auth still says a personal key made it).
    let path = tampered("stripped-approval", |b| {
        let (m, n, line) =
            b.find(|e| e["type"] == "approval.recorded" && e["statement"].is_object());
        let mut e = event(&line);
        for field in ["statement", "statement_digest", "keys"] {
            e.as_object_mut().unwrap().remove(field);
        }
        b.set_line(&m, n, Some(&with_event(&line, &e)));
        b.reseal(&key);
    });
    caught(&path, line["index"].as_u64(), "approval");
    // The credential an entry claims, changed where the database keeps it (the token's
    // record): a token the operator made for rita passes as rita's own. The ledger's
    // token.created says otherwise.
    let (_, _, line) = Bundle::read(&f.all).find(|e| e["auth"]["method"] == "token");
    let path = tampered("forged-credential", |b| {
        let (m, n, line) = b.find(|e| e["auth"]["method"] == "token");
        let mut e = event(&line);
        e["auth"]["created_by"] = e["actor"].clone();
        e["auth"]["personal"] = true.into();
        b.set_line(&m, n, Some(&with_event(&line, &e)));
        b.reseal(&key);
    });
    caught(&path, line["index"].as_u64(), "credential");
    let (_, r, _) = verify(&path);
    assert!(
        r["failures"]
            .to_string()
            .contains("the token's record was altered"),
        "{r:#}"
    );
    // A release manifest re-signed (its digest kept consistent): the decision that
    // certified it named another key.
    let all = Bundle::read(&f.all);
    let cert = all
        .find(|e| e["type"] == "environment.certified" && e["release"] == "shop@1.0.0")
        .2;
    let path = tampered("resigned-manifest", |b| {
        let (m, n, line) =
            b.find(|e| e["type"] == "release.created" && e["release"] == "shop@1.0.0");
        let mut e = event(&line);
        e["manifest"] = resign(&e["manifest"]);
        e["manifest_digest"] = Value::String(envelope_digest(&e["manifest"]));
        b.set_line(&m, n, Some(&with_event(&line, &e)));
        b.reseal(&key);
    });
    caught(&path, cert["index"].as_u64(), "lineage");
    // Facts changed beside a decision.
    let (_, _, d) = all.find(|e| e["type"] == "decision.recorded");
    let path = tampered("facts", |b| {
        let (m, n, mut line) = b.find(|e| e["type"] == "decision.recorded");
        line["facts"]["requested_by"] = Value::String("mallory".into());
        b.set_line(&m, n, Some(&line));
    });
    caught(&path, d["index"].as_u64(), "decision");
}

#[test]
fn entries_of_kinds_this_custody_does_not_know_are_proved_and_noted_not_failed() {
    // A newer custody records kinds this one has no replay for (tenants and quotas, say):
    // the log holds them, signed like any entry; the verdict must not depend on knowing them.
    let f = fixture();
    let key = log_key(&f.data);
    let at = "2026-11-30T09:00:00Z";
    let path = tampered("newer-kinds", |b| {
        b.append_entry(&serde_json::json!({
            "type": "tenant.created", "at": at, "actor": "sec",
            "purpose": "release", "key": format!("sha256:{}", "c".repeat(64)),
        }));
        b.append_entry(&serde_json::json!({
            "type": "quota.changed", "at": at, "actor": "alice",
            "key": "k-1", "reason": "approve",
        }));
        b.reseal(&key);
    });
    let (code, r, err) = verify(&path);
    assert_eq!(code, 0, "{r:#} {err}");
    let notes = r["notes"].to_string();
    for kind in ["tenant.created", "quota.changed"] {
        assert!(notes.contains(kind), "{kind} not noted: {notes}");
    }
    assert_eq!(python_verify(&path).0, 0);
    // Not a blind spot: a changed byte in such an entry is still caught.
    let (_, _, line) = Bundle::read(&path).find(|e| e["type"] == "quota.changed");
    let changed = tampered_from(&path, "newer-kinds-changed", |b| {
        let (m, n, mut line) = b.find(|e| e["type"] == "quota.changed");
        let leaf = line["leaf"].as_str().unwrap().replace("approve", "reject");
        line["leaf"] = Value::String(leaf);
        b.set_line(&m, n, Some(&line));
    });
    caught(&changed, line["index"].as_u64(), "leaf-hash");
}

#[test]
fn a_checkpoint_from_a_forked_log_is_caught() {
    let f = fixture();
    let key = log_key(&f.data);
    let path = tampered("forked-checkpoint", |b| {
        let mut cps = b.lines("checkpoints.jsonl");
        let middle = cps.len() / 2;
        let size = cps[middle]["size"].as_u64().unwrap();
        // The same size, another history: the first leaf differs.
        let mut tree = custody_ledger::MemoryTree::new();
        for (i, (_, _, line)) in b.entries().iter().enumerate().take(size as usize) {
            let mut h: [u8; 32] = hex::decode(line["leaf_hash"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            if i == 0 {
                h[0] ^= 1;
            }
            tree.append(h);
        }
        let origin = key.verifier().name().to_owned();
        cps[middle]["note"] =
            Value::String(bundle::sign(&key, &origin, size, tree.root(size).unwrap()));
        b.set_lines("checkpoints.jsonl", &cps);
    });
    caught(&path, None, "consistency");
    caught(&path, None, "root");
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

#[test]
fn entries_whose_time_went_back_are_noted_not_failed() {
    // A ledger written as it happened says nothing of time; one entry backdated on the
    // data directory (CUSTODY_NOW, as a backfill would) is named, and still verifies.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    token(&data, "ci-bot", &[]);
    let bundle = dir.path().join("b.bundle");
    export(&data, &bundle, &operator(&data), &[]);
    let notes_of = |bundle: &Path| {
        let out = run(custody()
            .args(["audit", "verify", "--json", "--log-key"])
            .arg(data.join("keys/log.pub"))
            .arg(bundle));
        expect_code(&out, 0);
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        r["notes"].to_string()
    };
    assert!(
        !notes_of(&bundle).contains("stamped"),
        "{}",
        notes_of(&bundle)
    );
    let backdated = run(custody()
        .args(["token", "create", "--principal", "argo", "--data-dir"])
        .arg(&data)
        .env("CUSTODY_NOW", "2020-01-01T00:00:00Z")
        .env_remove("CUSTODY_TOKEN"));
    expect_code(&backdated, 0);
    export(&data, &bundle, &operator(&data), &[]);
    let notes = notes_of(&bundle);
    assert!(
        notes.contains("1 entries are stamped more than 5 minutes before an entry earlier")
            && notes.contains("at 2020-01-01T00:00:00Z"),
        "{notes}"
    );
}
