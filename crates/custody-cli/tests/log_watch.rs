//! `custody log watch` against real servers: it follows a growing log, and fails loudly on
//! a fork and on a shrinking log made from copies of one store (each signed by the real log
//! key), on a wrong key, and on a witness quorum not met; witness cosignatures (made by an
//! independent Python witness from the C2SP spec) are accepted, verified, shown and make a
//! checkpoint final. A monitor holding the old log key follows the operator's log-key
//! rotation (and records the key it trusts now); a proxy in front of the real server
//! forging the hand-over (signed by the new key alone, or by a stranger for the new key)
//! or the head (signed by a key no hand-over leads to) is refused, the state untouched.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::path::Path;

use common::*;

fn watch(server: &Server, log_pub: &Path, state: &Path, extra: &[&str]) -> std::process::Output {
    watch_at(&server.base, log_pub, state, extra)
}

fn watch_at(base: &str, log_pub: &Path, state: &Path, extra: &[&str]) -> std::process::Output {
    run(custody()
        .args(["log", "watch", "--server", base, "--log-key"])
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
    expect_saying(&first, "trust on first use");
    append(&data, "bob");
    let grown = watch(&server, &log_pub, &state, &[]);
    expect_saying(&grown, "consistent with the last run's");
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
    let final_checkpoint = || {
        http.get(format!("{b}/api/v1/log/checkpoint?final=true"))
            .send()
    };
    let cosign = |note: String| {
        http.post(format!("{b}/api/v1/log/cosignature"))
            .body(note)
            .send()
    };

    // Nothing is final before the witness cosigns.
    let r = final_checkpoint().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let note = text_of(http.get(format!("{b}/api/v1/log/checkpoint"))).await;
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
    let r = cosign(bad).await.unwrap();
    assert_eq!(r.status().as_u16(), 400, "{}", r.text().await.unwrap());
    let r = cosign(cosigned.clone()).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["final"], true, "{body}");
    let fin = final_checkpoint().await.unwrap();
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
    expect_saying(&out, "cosigned by witness.example/w1 (at 1700000000)");
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

/// A proxy in front of a real custody server that passes every GET through, but answers
/// the paths `forged` names (path and query) with its bodies instead: a server, or a
/// network in between, lying about the log.
async fn forging_proxy(backend: String, forged: Vec<(String, String)>) -> String {
    let forged = std::sync::Arc::new(forged);
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
            let (backend, forged) = (backend.clone(), forged.clone());
            async move {
                let path = uri.path_and_query().unwrap().as_str().to_owned();
                if let Some((_, body)) = forged.iter().find(|(p, _)| *p == path) {
                    return (axum::http::StatusCode::OK, body.clone());
                }
                let mut request = http().get(format!("{backend}{path}"));
                if let Some(auth) = headers.get(axum::http::header::AUTHORIZATION) {
                    request = request.header("authorization", auth.to_str().unwrap());
                }
                let response = request.send().await.unwrap();
                let status = axum::http::StatusCode::from_u16(response.status().as_u16()).unwrap();
                (status, response.text().await.unwrap())
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn key_id(public: &Path) -> String {
    let pem = std::fs::read_to_string(public).unwrap();
    custody_crypto::PublicKey::from_pem(&pem)
        .unwrap()
        .key_id()
        .to_string()
}

fn checkpoint_of(data: &Path) -> String {
    let out = run(custody()
        .args(["log", "checkpoint", "--data-dir"])
        .arg(data));
    expect_code(&out, 0);
    stdout(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_a_log_key_rotation_and_refuses_a_forged_hand_over() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    append(&data, "alice");
    let (old_pub, old_key) = (temp.path().join("old.pub"), temp.path().join("old.key"));
    std::fs::copy(data.join("keys/log.pub"), &old_pub).unwrap();
    std::fs::copy(data.join("keys/log.key"), &old_key).unwrap();
    let state = temp.path().join("watch.json");
    let server = Server::start(&data);
    expect_code(&watch(&server, &old_pub, &state, &[]), 0);
    assert!(server.stop().success());
    // A state file as written before log keys rotated: no key recorded in it.
    let before = std::fs::read_to_string(&state).unwrap();
    assert!(!before.contains("log_key"), "{before}");

    // The operator rotates the log key (server stopped), and the log grows on the new one.
    let out = run(custody()
        .args(["key", "rotate", "log", "--json", "--data-dir"])
        .arg(&data));
    expect_code(&out, 0);
    let rotated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let at = rotated["size"].as_u64().unwrap();
    let handover = rotated["handover_checkpoint"].as_str().unwrap().to_owned();
    append(&data, "bob");
    let (new_pub, new_key) = (data.join("keys/log.pub"), data.join("keys/log.key"));
    let (stranger_key, stranger_pub) = generate_key(temp.path(), "stranger", "ed25519");
    let head = checkpoint_of(&data);
    let server = Server::start(&data);

    // Forgeries, each refused (exit 1) with the state as it was: a head signed by a key
    // no hand-over leads to; the hand-over signed by the new key alone (no word from the
    // trusted key); the hand-over signed by the old key and a stranger (not the new key).
    let handover_path = format!("/api/v1/log/checkpoint?size={at}");
    let kept_size = serde_json::from_str::<serde_json::Value>(&before).unwrap()["size"]
        .as_u64()
        .unwrap();
    let cases = [
        (
            // A server that hides its hand-over: the head is not followed to.
            format!("/api/v1/log/handovers?from={}", kept_size - 1),
            "[]".to_owned(),
            "nor through a log-key hand-over",
        ),
        (
            "/api/v1/log/checkpoint".to_owned(),
            resign(&head, &[&stranger_key]),
            "nor through a log-key hand-over",
        ),
        (
            handover_path.clone(),
            resign(&handover, &[&new_key]),
            "not signed by the log key",
        ),
        (
            handover_path.clone(),
            resign(&handover, &[&old_key, &stranger_key]),
            "not signed by the new log key",
        ),
    ];
    for (path, body, why) in cases {
        let proxy = forging_proxy(server.base.clone(), vec![(path.clone(), body)]).await;
        let out = watch_at(&proxy, &old_pub, &state, &["--json"]);
        assert_eq!(out.status.code(), Some(1), "{path}: {}", stderr(&out));
        let said: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{path}: {e}: {}", stderr(&out)));
        assert_eq!(said["ok"], false, "{path}: {said}");
        assert!(
            said["failure"].as_str().unwrap().contains(why),
            "{path}: {said}"
        );
        assert_eq!(std::fs::read_to_string(&state).unwrap(), before, "{path}");
    }
    // Given a stranger's key, the checkpoint kept does not verify.
    let out = watch(&server, &stranger_pub, &state, &[]);
    expect_refusal(&out, 1, "does not verify with the log key");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), before);

    // The real hand-over is followed from the old key, and said: the server lists its
    // hand-overs publicly, so a monitor needs no credential.
    let (old_id, new_id) = (key_id(&old_pub), key_id(&new_pub));
    let out = watch(&server, &old_pub, &state, &[]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains(&format!(
            "followed the log-key hand-over from {old_id} to {new_id} at {at} entries"
        )),
        "{}",
        stdout(&out)
    );
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert!(
        kept["log_key"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}+", head.lines().next().unwrap())),
        "{kept}"
    );
    assert_eq!(kept["followed_from"].as_array().unwrap().len(), 1, "{kept}");
    assert!(server.stop().success());

    // The next run, given the same old key, needs no change (nor a token): the state
    // trusts the new key, and nothing is to follow.
    append(&data, "carol");
    let server = Server::start(&data);
    let out = watch(&server, &old_pub, &state, &["--json"]);
    expect_code(&out, 0);
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["log_key"], new_id.as_str(), "{said}");
    assert_eq!(said["handovers"], serde_json::json!([]), "{said}");
    assert!(said["previous_size"].as_u64().unwrap() > at, "{said}");
    // Given the new key it passes too; given a stranger's, the state is not trusted.
    expect_code(&watch(&server, &new_pub, &state, &[]), 0);
    let now = std::fs::read_to_string(&state).unwrap();
    expect_refusal(
        &watch(&server, &stranger_pub, &state, &[]),
        1,
        "does not verify with the log key",
    );
    assert_eq!(std::fs::read_to_string(&state).unwrap(), now);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_json_reports_the_hand_over_it_follows() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    let old_pub = temp.path().join("old.pub");
    std::fs::copy(data.join("keys/log.pub"), &old_pub).unwrap();
    let out = run(custody()
        .args(["key", "rotate", "log", "--json", "--data-dir"])
        .arg(&data));
    expect_code(&out, 0);
    let rotated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let at = rotated["size"].as_u64().unwrap();
    // A run while the head is the hand-over checkpoint: the old key signed it, so it is
    // kept as it is (the old key still trusted).
    let server = Server::start(&data);
    let state = temp.path().join("watch.json");
    let out = watch(&server, &old_pub, &state, &["--json"]);
    expect_code(&out, 0);
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["size"], at, "{said}");
    assert_eq!(said["handovers"], serde_json::json!([]), "{said}");
    assert!(server.stop().success());
    // The log grows on the new key: the next run follows the hand-over that ends the
    // checkpoint it kept, and says so in JSON.
    let reader = token(&data, &operator(&data), &[]);
    let server = Server::start(&data);
    let out = watch(&server, &old_pub, &state, &["--json", "--token", &reader]);
    expect_code(&out, 0);
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let new_id = key_id(&data.join("keys/log.pub"));
    let followed = serde_json::json!([{"from": key_id(&old_pub), "to": new_id, "size": at}]);
    assert_eq!(said["handovers"], followed, "{said}");
    assert_eq!(said["previous_size"], at, "{said}");
    // A monitor started only now with the old key (no state) follows it from the log's
    // first entry.
    let late = temp.path().join("late.json");
    let out = watch(&server, &old_pub, &late, &["--json", "--token", &reader]);
    expect_code(&out, 0);
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(said["handovers"], followed, "{said}");
    assert_eq!(said["previous_size"], serde_json::Value::Null, "{said}");
    assert!(server.stop().success());
}
