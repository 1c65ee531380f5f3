//! Truncation: a whole-ledger bundle cut back to an earlier checkpoint (entries,
//! checkpoints and proofs dropped consistently) proves everything it holds, so it
//! verifies alone, and the report says that truncation was not checked. Against what the
//! auditor kept (a checkpoint, a minimum size) it fails naming the check, as does a
//! checkpoint of a forked log; a scoped bundle needs a consistency proof from the kept
//! checkpoint, which the report asks for and `--prove-from` adds.

use std::path::{Path, PathBuf};

use custody_ledger::MemoryTree;
use serde_json::Value;

use super::bundle::{Bundle, event, log_key, sign};
use super::common::*;
use super::{export, fixture, log_pub, tampered, tampered_from};

/// `custody audit verify --json` with extra arguments: (exit code, report).
fn verify_with(bundle: &Path, extra: &[&std::ffi::OsStr]) -> (i32, Value) {
    let out = run(custody()
        .args(["audit", "verify", "--json", "--log-key"])
        .arg(log_pub())
        .args(extra)
        .arg(bundle));
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("no report: {}", stderr(&out)));
    (out.status.code().unwrap(), report)
}

/// The Python verifier's exit code with extra arguments.
fn python_with(bundle: &Path, extra: &[&std::ffi::OsStr]) -> i32 {
    let out = run(python_script("audit_verify.py")
        .arg(bundle)
        .arg(log_pub())
        .args(extra)
        .arg("--json"));
    assert_ne!(out.status.code(), Some(2), "{}", stderr(&out));
    out.status.code().unwrap()
}

#[track_caller]
fn failed_check(report: &Value, check: &str, says: &str) {
    let failures = report["failures"].as_array().unwrap();
    assert!(
        failures
            .iter()
            .any(|f| f["check"] == check && f["detail"].as_str().unwrap().contains(says)),
        "no {check} failure saying {says:?} in {failures:#?}"
    );
}

/// The leaf hashes of a complete bundle, in order.
fn leaf_hashes(b: &Bundle) -> Vec<[u8; 32]> {
    b.entries()
        .iter()
        .map(|(_, _, l)| {
            hex::decode(l["leaf_hash"].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect()
}

/// A checkpoint note of `size` entries signed by the log key, over `hashes` (the first
/// flipped for a fork), written to a file.
fn kept(name: &str, hashes: &[[u8; 32]], size: u64, forked: bool) -> PathBuf {
    let key = log_key(&fixture().data);
    let mut tree = MemoryTree::new();
    for (i, h) in hashes.iter().take(size as usize).enumerate() {
        let mut h = *h;
        if forked && i == 0 {
            h[0] ^= 1;
        }
        tree.append(h);
    }
    let origin = key.verifier().name().to_owned();
    let path = fixture().dir.join(format!("{name}.checkpoint"));
    std::fs::write(&path, sign(&key, &origin, size, tree.root(size).unwrap())).unwrap();
    path
}

/// The whole-ledger bundle cut back to its checkpoint before the anchor, consistently.
fn truncated() -> (PathBuf, u64) {
    let mut cut = 0;
    let path = tampered("truncated", |b| {
        let checkpoints = b.lines("checkpoints.jsonl");
        cut = checkpoints[checkpoints.len() - 2]["size"].as_u64().unwrap();
        let keep: Vec<Value> = checkpoints
            .into_iter()
            .filter(|c| c["size"].as_u64().unwrap() <= cut)
            .collect();
        b.set_lines("checkpoints.jsonl", &keep);
        let proofs: Vec<Value> = b
            .lines("consistency.jsonl")
            .into_iter()
            .filter(|p| p["to"].as_u64().unwrap() <= cut)
            .collect();
        b.set_lines("consistency.jsonl", &proofs);
        for (member, n, line) in b.entries().into_iter().rev() {
            if line["index"].as_u64().unwrap() >= cut {
                b.set_line(&member, n, None);
            }
        }
        // And the raw reports only the removed entries named.
        let named: Vec<String> = b
            .entries()
            .iter()
            .map(|(_, _, line)| event(line))
            .filter(|e| e["type"] == "evidence.attached" && e.get("report").is_some())
            .map(|e| {
                e["evidence"]
                    .as_str()
                    .unwrap()
                    .replace("sha256:", "reports/sha256/")
            })
            .collect();
        b.members.retain(|(name, bytes)| {
            !(name.starts_with("entries/") && bytes.is_empty()
                || name.starts_with("reports/") && !named.contains(name))
        });
        let count = |prefix: &str| {
            b.members
                .iter()
                .filter(|(n, _)| n.starts_with(prefix))
                .count()
        };
        let (files, reports) = (count("entries/"), count("reports/"));
        *b.member("end.json") = serde_json::to_vec(
            &serde_json::json!({"entries": cut, "files": files, "reports": reports}),
        )
        .unwrap();
        let mut manifest: Value = serde_json::from_slice(b.member("bundle.json")).unwrap();
        manifest["anchor"] = cut.into();
        *b.member("bundle.json") = serde_json::to_vec(&manifest).unwrap();
    });
    (path, cut)
}

#[test]
fn a_whole_ledger_bundle_cut_back_verifies_alone_but_not_against_what_the_auditor_kept() {
    let f = fixture();
    let all = Bundle::read(&f.all);
    let anchor_note = all.lines("checkpoints.jsonl").last().unwrap()["note"]
        .as_str()
        .unwrap()
        .to_owned();
    let anchor = all.lines("checkpoints.jsonl").last().unwrap()["size"]
        .as_u64()
        .unwrap();
    let kept_anchor = f.dir.join("anchor.checkpoint");
    std::fs::write(&kept_anchor, &anchor_note).unwrap();
    // As `custody log watch` keeps it.
    let watch_state = f.dir.join("anchor.watch");
    std::fs::write(
        &watch_state,
        serde_json::json!({"origin": "o", "size": anchor, "root": "", "note": anchor_note})
            .to_string(),
    )
    .unwrap();

    let (cut_bundle, cut) = truncated();
    assert!(cut < anchor);
    // Alone it verifies (nothing in it is false), and the report says what was not checked.
    let (code, r) = verify_with(&cut_bundle, &[]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["truncation"]["checked"], false);
    assert!(
        r["truncation"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("NOT checked"),
        "{r:#}"
    );
    let out = run(custody()
        .args(["audit", "verify", "--log-key"])
        .arg(log_pub())
        .arg(&cut_bundle));
    assert!(
        stdout(&out).contains("truncation: NOT checked")
            && stdout(&out).contains("--checkpoint FILE"),
        "{}",
        stdout(&out)
    );
    assert_eq!(python_with(&cut_bundle, &[]), 0);

    // Against the later checkpoint the auditor kept, either form, and a minimum size.
    for kept in [&kept_anchor, &watch_state] {
        let args = ["--checkpoint".as_ref(), kept.as_os_str()];
        let (code, r) = verify_with(&cut_bundle, &args);
        assert_eq!(code, 1, "{r:#}");
        failed_check(&r, "pinned-checkpoint", "were cut off");
        assert_eq!(python_with(&cut_bundle, &args), 1);
    }
    let min = anchor.to_string();
    let args = ["--min-size".as_ref(), min.as_ref()];
    let (code, r) = verify_with(&cut_bundle, &args);
    assert_eq!(code, 1, "{r:#}");
    failed_check(&r, "min-size", "fewer than");
    assert_eq!(python_with(&cut_bundle, &args), 1);

    // The whole bundle passes both, and says what it checked.
    let args = [
        "--checkpoint".as_ref(),
        kept_anchor.as_os_str(),
        "--min-size".as_ref(),
        min.as_ref(),
    ];
    let (code, r) = verify_with(&f.all, &args);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["truncation"]["checked"], true);
    assert_eq!(r["truncation"]["checkpoint"], anchor);
    assert_eq!(python_with(&f.all, &args), 0);

    // An earlier checkpoint between two of the bundle's: its root recomputed from the
    // entries; a forked one of the same size fails.
    let sizes: Vec<u64> = all
        .lines("checkpoints.jsonl")
        .iter()
        .map(|c| c["size"].as_u64().unwrap())
        .collect();
    let between = (1..anchor)
        .find(|s| !sizes.contains(s))
        .expect("a size between checkpoints");
    let hashes = leaf_hashes(&all);
    let earlier = kept("earlier", &hashes, between, false);
    let args = ["--checkpoint".as_ref(), earlier.as_os_str()];
    let (code, r) = verify_with(&f.all, &args);
    assert_eq!(code, 0, "{r:#}");
    assert!(
        r["truncation"]["summary"]
            .as_str()
            .unwrap()
            .contains("recomputed from the entries"),
        "{r:#}"
    );
    assert_eq!(python_with(&f.all, &args), 0);
    for (name, size) in [
        ("forked-between", between),
        ("forked-at", sizes[sizes.len() / 2]),
    ] {
        let forked = kept(name, &hashes, size, true);
        let args = ["--checkpoint".as_ref(), forked.as_os_str()];
        let (code, r) = verify_with(&f.all, &args);
        assert_eq!(code, 1, "{name}: {r:#}");
        failed_check(&r, "pinned-checkpoint", "fork");
        assert_eq!(python_with(&f.all, &args), 1, "{name}");
    }
    // A checkpoint not signed by the log key is no anchor for anything.
    let unsigned = f.dir.join("unsigned.checkpoint");
    std::fs::write(&unsigned, anchor_note.replacen('\n', "\n1", 1)).unwrap();
    let (code, r) = verify_with(&f.all, &["--checkpoint".as_ref(), unsigned.as_os_str()]);
    assert_eq!(code, 1, "{r:#}");
    failed_check(&r, "pinned-checkpoint", "does not verify with the log key");
}

#[test]
fn a_scoped_bundle_needs_a_consistency_proof_from_the_kept_checkpoint() {
    let f = fixture();
    let all = Bundle::read(&f.all);
    let hashes = leaf_hashes(&all);
    let scoped = f.dir.join("scope-pinned.bundle");
    export(&f.data, &scoped, "audrey", &["--release", "shop@1.0.0"]);
    let sizes: Vec<u64> = Bundle::read(&scoped)
        .lines("checkpoints.jsonl")
        .iter()
        .map(|c| c["size"].as_u64().unwrap())
        .collect();
    // A size the whole-ledger bundle holds the leaves of (tests add tokens to the ledger
    // in the meantime, so the scoped bundle's anchor may be larger).
    let anchor = (*sizes.last().unwrap()).min(hashes.len() as u64);
    let size = (1..anchor).rev().find(|s| !sizes.contains(s)).unwrap();
    let kept_one = kept("scoped-kept", &hashes, size, false);
    let args = ["--checkpoint".as_ref(), kept_one.as_os_str()];
    let (code, r) = verify_with(&scoped, &args);
    assert_eq!(code, 1, "{r:#}");
    failed_check(&r, "pinned-checkpoint", &format!("--prove-from {size}"));
    assert_eq!(python_with(&scoped, &args), 1);

    // Exported with the proof, it verifies; a forked checkpoint of that size does not,
    // nor a proof altered in the bundle.
    let proved = f.dir.join("scope-proved.bundle");
    let from = size.to_string();
    export(
        &f.data,
        &proved,
        "audrey",
        &["--release", "shop@1.0.0", "--prove-from", &from],
    );
    let (code, r) = verify_with(&proved, &args);
    assert_eq!(code, 0, "{r:#}");
    assert!(
        r["truncation"]["summary"]
            .as_str()
            .unwrap()
            .contains("a consistency proof"),
        "{r:#}"
    );
    assert_eq!(python_with(&proved, &args), 0);
    let forked = kept("scoped-forked", &hashes, size, true);
    let forked_args = ["--checkpoint".as_ref(), forked.as_os_str()];
    let (code, r) = verify_with(&proved, &forked_args);
    assert_eq!(code, 1, "{r:#}");
    failed_check(&r, "pinned-checkpoint", "fork");
    assert_eq!(python_with(&proved, &forked_args), 1);
    let altered = tampered_from(&proved, "scope-proof-altered", |b| {
        let mut proofs = b.lines("consistency.jsonl");
        let p = proofs
            .iter_mut()
            .find(|p| p["from"].as_u64() == Some(size))
            .unwrap();
        super::flip_first_digit(&mut p["hashes"][0]);
        b.set_lines("consistency.jsonl", &proofs);
    });
    let (code, r) = verify_with(&altered, &args);
    assert_eq!(code, 1, "{r:#}");
    failed_check(&r, "pinned-checkpoint", "not consistent");
    assert_eq!(python_with(&altered, &args), 1);
}
