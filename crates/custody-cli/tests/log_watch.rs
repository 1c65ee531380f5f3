//! `custody log watch` against real servers: it follows a growing log, and fails loudly on
//! a fork and on a shrinking log made from copies of one store (each signed by the real log
//! key), on a wrong key, and on a witness quorum not met; witness cosignatures (made by an
//! independent Python witness from the C2SP spec) are accepted, verified, shown and make a
//! checkpoint final.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::path::Path;

use common::*;

fn watch(server: &Server, log_pub: &Path, state: &Path, extra: &[&str]) -> std::process::Output {
    run(custody()
        .args(["log", "watch", "--server", &server.base, "--log-key"])
        .arg(log_pub)
        .arg("--state")
        .arg(state)
        .args(extra))
}

/// Appends one event to a data directory (a token for `who`), as its operator.
fn append(data: &Path, who: &str) {
    token(data, who, &[]);
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn watch_follows_growth_and_catches_a_shrinking_and_a_forked_log() {
    let temp = tempfile::tempdir().unwrap();
    let (data, copy) = (temp.path().join("data"), temp.path().join("copy"));
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    append(&data, "alice");
    copy_dir(&data, &copy); // the same log, stopped at this size
    let log_pub = data.join("keys/log.pub");
    let state = temp.path().join("watch.json");

    let server = Server::start(&data);
    let first = watch(&server, &log_pub, &state, &[]);
    expect_code(&first, 0);
    assert!(
        stdout(&first).contains("trust on first use"),
        "{}",
        stdout(&first)
    );
    append(&data, "bob");
    let grown = watch(&server, &log_pub, &state, &[]);
    expect_code(&grown, 0);
    assert!(
        stdout(&grown).contains("consistent with the last run's"),
        "{}",
        stdout(&grown)
    );
    let kept = std::fs::read_to_string(&state).unwrap();
    // The wrong key: a bad signature is a failure, and the state is left as it was.
    let other = tempfile::tempdir().unwrap();
    let (_, wrong) = generate_key(other.path(), "wrong", "ed25519");
    expect_refusal(
        &watch(&server, &wrong, &state, &[]),
        1,
        "does not verify with the log key",
    );
    server.stop();

    // The copy is behind: served, the log shrank.
    let behind = Server::start(&copy);
    expect_refusal(&watch(&behind, &log_pub, &state, &[]), 1, "the log shrank");
    // A monitor reading JSON is told on stdout too.
    let out = watch(&behind, &log_pub, &state, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["ok"], false, "{said}");
    assert!(
        said["failure"].as_str().unwrap().contains("the log shrank"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        kept,
        "a failed run changed the state"
    );
    // The copy grows another way to the same size: a second root for that size.
    append(&copy, "mallory");
    expect_refusal(&watch(&behind, &log_pub, &state, &[]), 1, "the log forked");
    // And past it: no consistency proof from what was seen.
    append(&copy, "mallory");
    expect_refusal(&watch(&behind, &log_pub, &state, &[]), 1, "not consistent");
    behind.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_cosignatures_are_verified_shown_and_make_a_checkpoint_final() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    let (w_key, w_pub) = generate_key(temp.path(), "witness", "ed25519");
    let pem = std::fs::read_to_string(&w_pub).unwrap();
    let vkey = custody_crypto::cosignature::CosignatureVerifier::new(
        "witness.example/w1",
        &custody_crypto::PublicKey::from_pem(&pem).unwrap(),
    )
    .unwrap()
    .to_text();
    let config = data.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "[log]\n",
        &format!("[log]\nwitnesses = [\"{vkey}\"]\nwitness_quorum = 1\n"),
        1,
    );
    std::fs::write(&config, text).unwrap();
    let server = Server::start(&data);
    let b = &server.base;
    let http = http();

    // Nothing is final before the witness cosigns.
    let r = http
        .get(format!("{b}/api/v1/log/checkpoint?final=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let note = http
        .get(format!("{b}/api/v1/log/checkpoint"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // An independent witness (Python, from the C2SP spec) cosigns it.
    let note_file = temp.path().join("checkpoint.note");
    std::fs::write(&note_file, &note).unwrap();
    let out = run(python_script("witness_cosign.py")
        .arg(&w_key)
        .arg("witness.example/w1")
        .arg("1700000000")
        .arg(&note_file));
    expect_code(&out, 0);
    let cosigned = stdout(&out);
    // A tampered cosignature is refused, and nothing is kept.
    let bad = cosigned.replacen("witness.example/w1 ", "witness.example/w1 AAAA", 1);
    let r = http
        .post(format!("{b}/api/v1/log/cosignature"))
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "{}", r.text().await.unwrap());
    let r = http
        .post(format!("{b}/api/v1/log/cosignature"))
        .body(cosigned.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["final"], true, "{body}");
    let fin = http
        .get(format!("{b}/api/v1/log/checkpoint?final=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(fin.status().as_u16(), 200);
    assert_eq!(fin.text().await.unwrap(), cosigned);

    let log_pub = data.join("keys/log.pub");
    let state = temp.path().join("watch.json");
    let spec = format!("witness.example/w1={}", w_pub.display());
    let out = watch(
        &server,
        &log_pub,
        &state,
        &["--witness-key", &spec, "--witness-quorum", "1"],
    );
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("cosigned by witness.example/w1 (at 1700000000)"),
        "{}",
        stdout(&out)
    );
    // Another witness key under that name: its line does not verify, loudly.
    let (_, impostor) = generate_key(temp.path(), "impostor", "ed25519");
    let spec = format!("witness.example/w1={}", impostor.display());
    let out = watch(
        &server,
        &log_pub,
        &state,
        &["--witness-key", &spec, "--witness-quorum", "1"],
    );
    expect_refusal(&out, 1, "witness cosignatures required");
    server.stop();
}
