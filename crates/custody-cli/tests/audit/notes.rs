//! What a verifier notes rather than fails: entries of kinds this custody does not know
//! (proved like any other, a changed byte still caught) and entries whose time went back.

use std::path::Path;

use serde_json::Value;

use super::bundle::{Bundle, log_key};
use super::common::*;
use super::{caught, export, fixture, python_verify, tampered, tampered_from, verify};

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
