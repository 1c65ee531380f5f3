//! Forgeries of the log's history: entries removed, swapped or their leaves exchanged, an
//! approval missing from a scoped bundle's lineage, envelopes re-signed by keys no policy
//! put in force (even under checkpoints a forger re-signed with the log key), and a
//! checkpoint of a forked log.

use std::path::PathBuf;

use serde_json::Value;

use super::bundle::{self, Bundle, envelope_digest, event, log_key, resign, with_event};
use super::{caught, export, fixture, python_verify, tampered, tampered_from, verify};

/// The entries a report's entry-order failures name, in its order.
fn entry_order_failures(report: &Value) -> Vec<u64> {
    report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "entry-order")
        .map(|f| f["entry"].as_u64().unwrap())
        .collect()
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

    // Two entries removed far apart, and the last: each gap is named, not only the first.
    let path = tampered("removed-three", |b| {
        let entries = b.entries();
        let (m, n, _) = &entries[entries.len() - 1];
        b.set_line(m, *n, None);
        let (m, n, _) = &entries[9];
        b.set_line(m, *n, None);
        let (m, n, _) = &entries[3];
        b.set_line(m, *n, None);
    });
    let (_, report, _) = verify(&path);
    let gaps = entry_order_failures(&report);
    let last = Bundle::read(&fixture().all).entries().len() as u64 - 1;
    assert_eq!(gaps, [3, 9, last], "{report:#}");
    let (_, py) = python_verify(&path);
    assert_eq!(
        entry_order_failures(&py),
        gaps,
        "the Python verifier names other gaps: {py:#}"
    );

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
    let (path, at) = forged_event(
        "resigned-provenance",
        |e| e["type"] == "artifact.registered",
        |e| e["provenance"] = resign(&e["provenance"]),
    );
    caught(&path, at, "provenance");
    // custody's statement of what it read in a report, re-signed by another key.
    let (path, at) = forged_event(
        "resigned-evidence",
        |e| e["type"] == "evidence.attached",
        |e| e["statement"] = resign(&e["statement"]),
    );
    caught(&path, at, "evidence");
    // What the leaf says custody read, changed (a failing test run recorded as passing,
    // or the other way): the attestor signed the reading, not the forger.
    let (path, junit) = forged_event(
        "forged-reading",
        |e| e["type"] == "evidence.attached" && e["format"] == "junit",
        |e| {
            let failed = &mut e["report"]["summary"]["tests"]["failed"];
            *failed = (1 - failed.as_u64().unwrap().min(1)).into();
        },
    );
    caught(&path, junit, "evidence");
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
            junit.unwrap()
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
    let signed_approval =
        |e: &Value| e["type"] == "approval.recorded" && e["statement"].is_object();
    let (path, at) = forged_event("resigned-approval", signed_approval, |e| {
        e["statement"] = resign(&e["statement"]);
        e["statement_digest"] = Value::String(envelope_digest(&e["statement"]));
    });
    caught(&path, at, "approval");
    // Its statement removed altogether (its auth still says a personal key made it).
    let (path, at) = forged_event("stripped-approval", signed_approval, |e| {
        for field in ["statement", "statement_digest", "keys"] {
            e.as_object_mut().unwrap().remove(field);
        }
    });
    caught(&path, at, "approval");
    // The credential an entry claims, changed where the database keeps it (the token's
    // record): a token the operator made for rita passes as rita's own. The ledger's
    // token.created says otherwise.
    let (path, at) = forged_event(
        "forged-credential",
        |e| e["auth"]["method"] == "token",
        |e| {
            e["auth"]["created_by"] = e["actor"].clone();
            e["auth"]["personal"] = true.into();
        },
    );
    caught(&path, at, "credential");
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
    let (path, _) = forged_event(
        "resigned-manifest",
        |e| e["type"] == "release.created" && e["release"] == "shop@1.0.0",
        |e| {
            e["manifest"] = resign(&e["manifest"]);
            e["manifest_digest"] = Value::String(envelope_digest(&e["manifest"]));
        },
    );
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

/// The fixture's bundle with the event of the first entry `pick` picks changed by `change`,
/// under checkpoints a forger holding the log key signed anew: its path and that entry's
/// index.
fn forged_event(
    name: &str,
    pick: impl Fn(&Value) -> bool,
    change: impl FnOnce(&mut Value),
) -> (PathBuf, Option<u64>) {
    let key = log_key(&fixture().data);
    let (_, _, line) = Bundle::read(&fixture().all).find(&pick);
    let path = tampered(name, |b| {
        let (m, n, line) = b.find(&pick);
        let mut e = event(&line);
        change(&mut e);
        b.set_line(&m, n, Some(&with_event(&line, &e)));
        b.reseal(&key);
    });
    (path, line["index"].as_u64())
}

/// A decision taken on a misstatement of its evidence: a server holding the log key records
/// facts that say a report reads otherwise than it does (here, that it is about another
/// subject), with the decision's input digest to match and the checkpoints re-signed. Its
/// replay still passes; the report in the bundle, read again under the decision's rules,
/// says otherwise. (The Python verifier reads no report, so it cannot see this one.)
#[test]
fn a_decision_whose_facts_misstate_a_report_is_caught() {
    let (path, decision, _) = forged_facts("misstated-facts", reads_a_report, |facts| {
        let report = first_report(facts).unwrap();
        report["subject"] = Value::String("a suite this report is not about".into());
    });
    let (code, r, _) = verify(&path);
    assert_eq!(code, 1, "{r:#}");
    let failures = r["failures"].as_array().unwrap();
    assert!(
        failures.iter().any(|f| f["check"] == "decision"
            && f["entry"].as_u64() == decision
            && f["detail"]
                .as_str()
                .unwrap()
                .contains("misstatement of its evidence")),
        "{failures:#?}"
    );
    // Nothing else gives it away: the facts digest to the input, the gates replay.
    assert!(
        failures.iter().all(|f| f["check"] == "decision"),
        "{failures:#?}"
    );
    // The good bundle's decisions read their reports as the reports say.
    let (code, good, _) = verify(&fixture().all);
    assert_eq!(code, 0, "{good:#}");
    assert!(good["checked"]["facts_rederived"].as_u64().unwrap() >= 1);
    assert_eq!(good["checked"]["facts_unconfirmed"], 0, "{good:#}");
}

/// The facts of a certifying decision must hold each piece of evidence as the ledger
/// attached it: a piece read as another report or in another format than its entry
/// attached (where the re-reading would find nothing to compare), and a piece recorded
/// before the promotion was asked for left out, are caught at the certification.
#[test]
fn facts_that_swap_or_leave_out_evidence_are_caught() {
    let lineage_failure = |path: &std::path::Path, at: Option<u64>, says: &str| {
        let (code, r, _) = verify(path);
        assert_eq!(code, 1, "{r:#}");
        let failures = r["failures"].as_array().unwrap();
        assert!(
            failures.iter().any(|f| f["check"] == "lineage"
                && f["entry"].as_u64() == at
                && f["detail"].as_str().unwrap().contains(says)),
            "no lineage failure saying {says:?} at {at:?}: {failures:#?}"
        );
    };
    let (path, _, certified) = forged_facts("facts-other-format", reads_a_report, |facts| {
        first_report(facts).unwrap()["format"] = Value::String("grype".into());
    });
    lineage_failure(&path, certified, "names report");
    let (path, _, certified) = forged_facts("facts-other-report", reads_a_report, |facts| {
        first_report(facts).unwrap()["digest"] =
            Value::String(format!("sha256:{}", "0".repeat(64)));
    });
    lineage_failure(&path, certified, "names report");
    // A piece stamped over a minute before the facts were gathered (one just before may
    // have raced the request, and is not required).
    let settled = |facts: &Value, piece: &Value| {
        facts["now"].as_i64().unwrap() - piece["at"].as_i64().unwrap() >= 60
    };
    let has_settled = |facts: &Value| {
        facts["release"]["artifacts"][0]["evidence"]
            .as_array()
            .is_some_and(|e| e.iter().any(|piece| settled(facts, piece)))
    };
    let (path, _, certified) = forged_facts("facts-leave-out", has_settled, |facts| {
        let copy = facts.clone();
        let pieces = facts["release"]["artifacts"][0]["evidence"]
            .as_array_mut()
            .unwrap();
        let n = pieces.iter().position(|p| settled(&copy, p)).unwrap();
        pieces.remove(n);
    });
    lineage_failure(&path, certified, "leave out");
}

/// The fixture's bundle with the facts of the decision behind the first certification
/// whose facts `pick` picks changed by `change`, the decision's input digest made to match
/// and the checkpoints re-signed (a server holding the log key): its path, the decision's
/// index and the certification's.
fn forged_facts(
    name: &str,
    pick: impl Fn(&Value) -> bool,
    change: impl FnOnce(&mut Value),
) -> (PathBuf, Option<u64>, Option<u64>) {
    let key = log_key(&fixture().data);
    let mut at = (None, None);
    let path = tampered(name, |b| {
        let entries = b.entries();
        let (m, n, mut line, certified) = entries
            .iter()
            .filter(|(_, _, l)| event(l)["type"] == "environment.certified")
            .find_map(|(_, _, cert)| {
                let id = event(cert)["decision"].clone();
                let (m, n, line) = entries.iter().find(|(_, _, l)| {
                    let e = event(l);
                    e["type"] == "decision.recorded" && e["decision"] == id
                })?;
                pick(&line["facts"]).then(|| (m.clone(), *n, line.clone(), cert["index"].as_u64()))
            })
            .expect("a certification whose decision's facts read a report");
        at = (line["index"].as_u64(), certified);
        change(&mut line["facts"]);
        let facts = custody_model::CanonicalJson::from_value(&line["facts"]).unwrap();
        let mut e = event(&line);
        use sha2::Digest as _;
        e["input"] = Value::String(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(facts.as_bytes()))
        ));
        b.set_line(&m, n, Some(&with_event(&line, &e)));
        b.reseal(&key);
    });
    (path, at.0, at.1)
}

/// Whether a decision's facts say they read a report.
fn reads_a_report(facts: &Value) -> bool {
    first_report(&mut facts.clone()).is_some()
}

/// The first report a decision's facts say they read.
fn first_report(facts: &mut Value) -> Option<&mut Value> {
    facts["release"]["artifacts"]
        .as_array_mut()?
        .iter_mut()
        .flat_map(|a| a["evidence"].as_array_mut().into_iter().flatten())
        .map(|e| &mut e["report"])
        .find(|r| r.is_object())
}
