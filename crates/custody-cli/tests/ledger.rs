//! The durable ledger through the `custody` binary: `custody init`, `custody log …`, crash
//! safety under SIGKILL, two processes on one PostgreSQL log, and an independent
//! recomputation of the ledger in Python.
//!
//! The part [`durability`] kills writers with SIGKILL and runs two processes on one log.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;
#[path = "ledger/durability.rs"]
mod durability;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// A new data directory made by `custody init` with `extra` arguments.
fn initialised(extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    init(&dir, extra);
    (temp, dir)
}

fn init(dir: &Path, extra: &[&str]) {
    let out = run(custody().args(["init", "--data-dir"]).arg(dir).args(extra));
    expect_code(&out, 0);
}

fn append_events(dir: &Path, events: u64) {
    let out = run(custody()
        .args(["bench", "append", "--writers", "8", "--events"])
        .arg(events.to_string())
        .arg("--data-dir")
        .arg(dir));
    expect_code(&out, 0);
}

fn log(dir: &Path, args: &[&str]) -> std::process::Output {
    run(custody().arg("log").args(args).arg("--data-dir").arg(dir))
}

fn json_of(out: &std::process::Output) -> Value {
    expect_code(out, 0);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn init_creates_the_instance_and_never_overwrites_it() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let out = run(custody()
        .args([
            "init",
            "--json",
            "--origin",
            "example.com/custody/log",
            "--data-dir",
        ])
        .arg(&dir));
    let created = json_of(&out);
    assert_eq!(created["origin"], "example.com/custody/log");
    assert!(
        created["log_verifier_key"]
            .as_str()
            .unwrap()
            .starts_with("example.com/custody/log+")
    );
    let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.join("keys/log.key")), 0o600);
    assert_eq!(mode(dir.join("keys")), 0o700);
    for f in [
        "config.toml",
        "custody.db",
        "keys/log.pub",
        "policy/custody.toml",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let cp = json_of(&log(&dir, &["checkpoint", "--json"]));
    // The one entry: the starter policy, applied as the first policy version.
    assert_eq!(cp["size"], 1);
    let first = log(&dir, &["entries", "--json"]);
    let first: Value = serde_json::from_str(stdout(&first).lines().next().unwrap()).unwrap();
    assert_eq!(first["event"]["type"], "policy.applied");

    let key_before = fs::read(dir.join("keys/log.key")).unwrap();
    let again = run(custody().args(["init", "--data-dir"]).arg(&dir));
    expect_code(&again, 2);
    assert!(
        stderr(&again).contains("refusing to overwrite"),
        "{}",
        stderr(&again)
    );
    assert!(stderr(&again).contains("hint:"));
    assert_eq!(fs::read(dir.join("keys/log.key")).unwrap(), key_before);
}

#[test]
fn a_data_dir_whose_key_or_database_does_not_match_refuses_to_start() {
    let (temp, dir) = initialised(&[]);
    append_events(&dir, 10);

    // The keys of another instance: both the writer and the reader refuse.
    let other = temp.path().join("other");
    init(&other, &[]);
    for f in ["keys/log.key", "keys/log.pub"] {
        fs::remove_file(dir.join(f)).unwrap();
        fs::copy(other.join(f), dir.join(f)).unwrap();
    }
    let write = run(custody()
        .args(["bench", "append", "--events", "1", "--data-dir"])
        .arg(&dir));
    expect_code(&write, 2);
    assert!(
        stderr(&write).contains("log key does not match"),
        "{}",
        stderr(&write)
    );
    assert!(stderr(&write).contains("hint:"));
    let read = log(&dir, &["checkpoint"]);
    expect_code(&read, 2);
    assert!(
        stderr(&read).contains("log key does not match"),
        "{}",
        stderr(&read)
    );

    // A missing log key, a missing database: refused with what to do, nothing created.
    fs::remove_file(dir.join("keys/log.key")).unwrap();
    let out = run(custody()
        .args(["bench", "append", "--events", "1", "--data-dir"])
        .arg(&dir));
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("log key") && stderr(&out).contains("missing"),
        "{}",
        stderr(&out)
    );
    fs::remove_file(other.join("custody.db")).unwrap();
    let out = log(&other, &["checkpoint"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("custody init"), "{}", stderr(&out));
    assert!(
        !other.join("custody.db").exists(),
        "opening re-created the ledger"
    );
    let out = log(&temp.path().join("nowhere"), &["checkpoint"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("not a custody data directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn python_recomputes_every_leaf_and_the_signed_root() {
    let (temp, dir) = initialised(&[]);
    append_events(&dir, 333);
    let entries = log(&dir, &["entries"]);
    expect_code(&entries, 0);
    let checkpoint = log(&dir, &["checkpoint"]);
    expect_code(&checkpoint, 0);
    let (entries_file, note_file) = (temp.path().join("entries"), temp.path().join("note"));
    fs::write(&entries_file, &entries.stdout).unwrap();
    fs::write(&note_file, &checkpoint.stdout).unwrap();
    let pub_key = dir.join("keys/log.pub");

    let out = run(python_script("ledger_recompute.py")
        .arg(&entries_file)
        .arg(&note_file)
        .arg(&pub_key));
    let recomputed = json_of(&out);
    let ours = json_of(&log(&dir, &["checkpoint", "--json"]));
    assert_eq!(recomputed["entries"], 334); // the starter policy and 333 events
    assert_eq!(recomputed["root"], ours["root"]);

    // The independent check is not vacuous: one changed byte, one dropped entry, or a
    // forged signature, and it fails.
    let text = String::from_utf8(entries.stdout.clone()).unwrap();
    let tampered = text.replacen("\"seq\":3,", "\"seq\":4,", 1);
    assert_ne!(tampered, text);
    let dropped: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    for bad in [tampered, dropped] {
        fs::write(&entries_file, bad).unwrap();
        let out = run(python_script("ledger_recompute.py")
            .arg(&entries_file)
            .arg(&note_file)
            .arg(&pub_key));
        expect_code(&out, REFUSED);
    }
    fs::write(&entries_file, &entries.stdout).unwrap();
    let note = String::from_utf8(checkpoint.stdout).unwrap();
    let sig_start = note.rfind(' ').unwrap() + 10;
    let mut forged = note.into_bytes();
    forged[sig_start] = if forged[sig_start] == b'A' {
        b'B'
    } else {
        b'A'
    };
    fs::write(&note_file, forged).unwrap();
    let out = run(python_script("ledger_recompute.py")
        .arg(&entries_file)
        .arg(&note_file)
        .arg(&pub_key));
    expect_code(&out, REFUSED);
}

#[test]
fn proofs_printed_by_the_cli_verify_offline() {
    let (_temp, dir) = initialised(&[]);
    append_events(&dir, 100);
    let hex32 = |v: &Value| -> Vec<u8> { hex_decode(v.as_str().unwrap()) };
    let hashes = |v: &Value| -> Vec<Vec<u8>> { v.as_array().unwrap().iter().map(hex32).collect() };

    let p = json_of(&log(
        &dir,
        &[
            "proof",
            "inclusion",
            "--index",
            "37",
            "--size",
            "90",
            "--json",
        ],
    ));
    let entry = json_of(&log(
        &dir,
        &["entries", "--start", "37", "--end", "38", "--json"],
    ));
    assert_eq!(p["leaf_hash"], entry["leaf_hash"]);
    custody_ledger::verify_inclusion(
        &hex32(&p["leaf_hash"]),
        37,
        90,
        &hashes(&p["hashes"]),
        &hex32(&p["root"]),
    )
    .unwrap();
    // The text form is the same hashes, one per line.
    let text = log(
        &dir,
        &["proof", "inclusion", "--index", "37", "--size", "90"],
    );
    let lines: Vec<Value> = stdout(&text)
        .lines()
        .map(|l| Value::from(l.to_owned()))
        .collect();
    assert_eq!(Value::from(lines), p["hashes"]);

    let c = json_of(&log(
        &dir,
        &["proof", "consistency", "--from", "45", "--json"],
    ));
    assert_eq!(c["to"], 101); // the starter policy and 100 events
    custody_ledger::verify_consistency(
        45,
        100,
        &hashes(&c["hashes"]),
        &hex32(&c["from_root"]),
        &hex32(&c["to_root"]),
    )
    .unwrap();
    let head = json_of(&log(&dir, &["checkpoint", "--json"]));
    assert_eq!(c["to_root"], head["root"]);

    for (args, needle) in [
        (
            &["proof", "inclusion", "--index", "90", "--size", "90"][..],
            "index 90",
        ),
        (
            &["proof", "inclusion", "--index", "1", "--size", "102"][..],
            "beyond",
        ),
        (
            &["proof", "consistency", "--from", "0", "--to", "5"][..],
            "",
        ),
        (&["entries", "--start", "5", "--end", "200"][..], "beyond"),
        (
            &["proof", "consistency", "--from", "500"][..],
            "--from 500 is beyond the log's size",
        ),
    ] {
        let out = log(&dir, args);
        expect_code(&out, 2);
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    let check = json_of(&log(&dir, &["check", "--json"]));
    assert_eq!(
        (check["ok"].as_bool(), check["entries"].as_u64()),
        (Some(true), Some(101))
    );
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A data directory written by custody before events, requests and roles were typed
/// (tests/testdata/ledger-0.1.tar.gz: the demo, a second builder, disagreeing builds,
/// tokens, drift, rollbacks and a refused one, a break-glass with a confidential review
/// after the fact, alerts delivered and not; its policy uses a role, `sre`, from before
/// roles were a closed set) still opens, checks, serves its history, replays every
/// decision to its recorded outcome, and answers the deploy gate; a policy about to be put
/// in force is held to today's rules.
#[test]
fn a_ledger_written_by_the_previous_release_opens_checks_and_replays() {
    let temp = tempfile::tempdir().unwrap();
    let out = run(std::process::Command::new("tar")
        .arg("xzf")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/ledger-0.1.tar.gz"))
        .arg("-C")
        .arg(temp.path()));
    expect_code(&out, 0);
    let dir = temp.path().join("d");
    let checked = log(&dir, &["check"]);
    expect_saying(&checked, "147 entries recomputed");

    let history = run(custody()
        .args(["history", "--json", "--limit", "0", "--data-dir"])
        .arg(&dir));
    let history = json_of(&history);
    let events = history.as_array().unwrap();
    assert_eq!(events.len(), 147);
    let decisions: BTreeSet<String> = events
        .iter()
        .filter(|e| e["event"]["type"] == "decision.recorded")
        .map(|e| e["event"]["decision"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(decisions.len(), 21);
    let mut broke_glass = 0;
    for id in &decisions {
        let replay = run(custody()
            .args(["decision", "replay", "--json", id, "--data-dir"])
            .arg(&dir));
        let replay = json_of(&replay);
        assert_eq!(replay["same"], true, "{id}: {replay}");
        broke_glass += usize::from(
            replay["recorded"]["gates"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["gate"] == "break-glass" && g["status"] == "pass"),
        );
    }
    assert_eq!(
        broke_glass, 1,
        "the old policy's `sre` role still broke glass on replay"
    );

    // What production runs now passes the deploy gate under the old policy in force.
    let certified = events
        .iter()
        .rev()
        .find(|e| e.event_is("environment.certified") && e["event"]["environment"] == "production")
        .unwrap();
    let digest = certified["event"]["artifacts"][0].as_str().unwrap();
    let gate = run(custody()
        .args(["verify", "--env", "production", digest, "--data-dir"])
        .arg(&dir));
    expect_code(&gate, 0);

    // Putting that same policy in force again is held to today's closed set of roles.
    let policy = temp.path().join("policy");
    fs::create_dir_all(policy.join("keys")).unwrap();
    let applied = events
        .iter()
        .rev()
        .find(|e| e.event_is("policy.applied"))
        .unwrap();
    for (name, text) in applied["event"]["files"].as_object().unwrap() {
        fs::write(policy.join(name), text.as_str().unwrap()).unwrap();
    }
    let check = run(custody().args(["policy", "check"]).arg(&policy));
    expect_code(&check, 1);
    assert!(
        stderr(&check).contains("unknown role \"sre\""),
        "{}",
        stderr(&check)
    );
}

trait EventIs {
    fn event_is(&self, kind: &str) -> bool;
}

impl EventIs for Value {
    fn event_is(&self, kind: &str) -> bool {
        self["event"]["type"] == kind
    }
}
