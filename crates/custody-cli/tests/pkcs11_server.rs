//! custody's own keys in a PKCS#11 token: an instance made by `custody init --log-key pkcs11:…
//! --receipt-key pkcs11:…` keeps no private key file, and the real `custody serve` signs
//! checkpoints and decision receipts through the token (a real SoftHSM2 token; see
//! common/token.rs). What it signs verifies with the public key files alone, in custody and
//! in Python's securesystemslib; the ledger records each signature's algorithm and key id;
//! the keys page says where the keys are. A wrong PIN, a missing key label, a token key that
//! is not the data directory's, a PIN in config.toml and a P-256 log key each stop the server
//! before it starts, saying what is wrong, and change nothing in the data directory.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::token::{MODULE, Token, USER_PIN};
use common::*;
use serde_json::Value;

/// The variable the receipt key's PIN comes from (`pin-source=env:`).
const PIN_VAR: &str = "CUSTODY_TEST_HSM_PIN";

/// A token with an Ed25519 log key, a P-256 receipt key, and two keys that must not be
/// used (another Ed25519 key, another P-256 key); returns it with the URIs of the first two.
fn token_with_keys() -> (Token, String, String) {
    let token = Token::new();
    let dir = token.dir.path();
    for (i, (label, algorithm)) in [
        ("log", "ed25519"),
        ("receipts", "ecdsa-p256"),
        ("stranger", "ed25519"),
        ("p256", "ecdsa-p256"),
    ]
    .into_iter()
    .enumerate()
    {
        let (key, _) = generate_key(dir, label, algorithm);
        token.import(&key, label, &format!("0{i}"));
        // Only the token holds it from now on.
        std::fs::remove_file(key).unwrap();
    }
    let log = token.uri("log", "pin.txt");
    let receipts = format!(
        "pkcs11:token=custody;object=receipts?module-path={MODULE}&pin-source=env:{PIN_VAR}"
    );
    (token, log, receipts)
}

/// `custody` with the token's configuration and the receipt key's PIN variable.
fn with_token(token: &Token) -> Command {
    let mut cmd = token.custody();
    cmd.env(PIN_VAR, USER_PIN);
    cmd
}

/// `custody init` of `data` with the two token keys.
fn init(token: &Token, data: &Path, log: &str, receipts: &str) -> std::process::Output {
    run(with_token(token)
        .args(["init", "--json", "--data-dir"])
        .arg(data)
        .args(["--log-key", log, "--receipt-key", receipts]))
}

/// Every file under `dir` with its contents.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// `custody serve` of `data`, which must refuse to start: a server that listens instead is
/// stopped and the test fails (rather than waiting for it forever).
fn refused_serve(cmd: &mut Command, data: &Path) -> std::process::Output {
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    if !line.is_empty() {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("it started: {line}{}", stderr(&out));
    }
    child.wait_with_output().unwrap()
}

fn public_key_id(path: &Path) -> String {
    let out = run(custody().args(["key", "show", "--json"]).arg(path));
    expect_code(&out, 0);
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_signs_checkpoints_and_receipts_with_token_keys() {
    let (token, log_uri, receipts_uri) = token_with_keys();
    let dir = token.dir.path();
    let data = dir.join("data");
    let out = init(&token, &data, &log_uri, &receipts_uri);
    expect_code(&out, 0);
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["log_key"], "token \"custody\", key \"log\"");
    assert_eq!(
        created["receipt_key"],
        "token \"custody\", key \"receipts\""
    );
    // No private key in the data directory: the public halves, read from the token.
    let keys: Vec<_> = std::fs::read_dir(data.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for (public, imported) in [("log.pub", "log.pub"), ("attestor.pub", "receipts.pub")] {
        assert_eq!(
            public_key_id(&data.join("keys").join(public)),
            public_key_id(&dir.join(imported)),
            "{public}"
        );
    }
    let config = std::fs::read_to_string(data.join("config.toml")).unwrap();
    assert!(config.contains(&format!("key = \"{log_uri}\"")), "{config}");

    // Seed promotions (approvals, a rollback), then serve.
    expect_code(
        &run(with_token(&token).args(["demo", "--data-dir"]).arg(&data)),
        0,
    );
    let server = Server::spawn(
        with_token(&token)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .stderr(std::process::Stdio::null()),
    );
    let client = http();
    let checkpoint = text_of(client.get(format!("{}/api/v1/log/checkpoint", server.base))).await;
    let note = dir.join("checkpoint.txt");
    std::fs::write(&note, &checkpoint).unwrap();
    let origin = created["origin"].as_str().unwrap();
    let show = run(custody()
        .args(["key", "show", "--json", "--note-name", origin])
        .arg(data.join("keys/log.pub")));
    expect_code(&show, 0);
    let verifier = serde_json::from_slice::<Value>(&show.stdout).unwrap()["note_verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Checked with the public key alone: no token, no data directory.
    let out = run(custody()
        .args(["note", "verify", "--verifier", &verifier])
        .arg(&note));
    expect_code(&out, 0);
    let out = run(with_token(&token)
        .args(["token", "create", "--principal", "audrey", "--data-dir"])
        .arg(&data));
    expect_code(&out, 0);
    let reader = stdout(&out).trim().to_owned();
    let out = run(custody()
        .args([
            "log",
            "check",
            "--server",
            &server.base,
            "--token",
            &reader,
            "--log-key",
        ])
        .arg(data.join("keys/log.pub")));
    expect_code(&out, 0);

    // The keys page names where custody's own keys are.
    let cookie = session_cookie(&server.base, &reader).await;
    let page = text_of(
        client
            .get(format!("{}/keys", server.base))
            .header("cookie", cookie),
    )
    .await;
    for (row, source, algorithm) in [
        (
            "log",
            "token &quot;custody&quot;, key &quot;log&quot;",
            "ed25519",
        ),
        (
            "receipts",
            "token &quot;custody&quot;, key &quot;receipts&quot;",
            "ecdsa-p256",
        ),
    ] {
        let at = page
            .find(&format!("data-own-key=\"{row}\""))
            .unwrap_or_else(|| panic!("no {row} row in {page}"));
        let tr = &page[at..at + page[at..].find("</tr>").unwrap()];
        assert!(tr.contains(source), "{tr}");
        assert!(tr.contains(algorithm), "{tr}");
    }
    assert!(server.stop().success());

    // Every decision's VSA: signed by the token's receipt key, recorded with its algorithm,
    // and verified by securesystemslib with attestor.pub alone.
    let attestor = data.join("keys/attestor.pub");
    let attestor_id = public_key_id(&attestor);
    let entries = run(with_token(&token)
        .args(["log", "entries", "--data-dir"])
        .arg(&data));
    expect_code(&entries, 0);
    let decisions: Vec<Value> = stdout(&entries)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "decision.recorded")
        .collect();
    assert!(decisions.len() > 5, "{}", decisions.len());
    for (i, d) in decisions.iter().enumerate() {
        assert_eq!(d["keys"][0]["key"], attestor_id.as_str(), "{d}");
        assert_eq!(d["keys"][0]["algorithm"], "ecdsa-p256", "{d}");
        if i < 3 {
            let vsa = dir.join(format!("vsa-{i}.json"));
            std::fs::write(&vsa, d["vsa"].to_string()).unwrap();
            let mut sslib = python_script("sslib_verify.py");
            expect_code(&run(sslib.arg(&vsa).arg("1").arg(&attestor)), 0);
            let out = run(custody()
                .args(["dsse", "verify", "--key"])
                .arg(&attestor)
                .arg(&vsa));
            expect_code(&out, 0);
        }
    }
    // The other signatures the ledger records name key and algorithm too: each release's
    // (the demo's release keys are P-256), each provenance's, each signed approval's.
    let all: Vec<Value> = stdout(&entries)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    for (kind, algorithm) in [
        ("release.created", "ecdsa-p256"),
        ("artifact.registered", "ed25519"),
        ("approval.recorded", "ed25519"),
    ] {
        let signed: Vec<&Value> = all
            .iter()
            .filter(|e| e["type"] == kind && !e["keys"].is_null())
            .collect();
        assert!(!signed.is_empty(), "no {kind} records its keys");
        for e in signed {
            assert_eq!(e["keys"][0]["algorithm"], algorithm, "{e}");
            assert_eq!(e["keys"][0]["key"].as_str().unwrap().len(), 64, "{e}");
        }
    }
    // A receipt of a certification: checked offline with the two public key files.
    let certified = stdout(&entries)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["type"] == "environment.certified")
        .unwrap();
    let receipt = dir.join("receipt.json");
    let out = run(with_token(&token)
        .args(["audit", "receipt", "--historical", "--data-dir"])
        .arg(&data)
        .args(["--env", certified["environment"].as_str().unwrap()])
        .arg(certified["artifacts"][0].as_str().unwrap())
        .arg("--out")
        .arg(&receipt));
    expect_code(&out, 0);
    let out = run(custody()
        .args(["audit", "verify-receipt", "--log-key"])
        .arg(data.join("keys/log.pub"))
        .arg("--attestor-key")
        .arg(&attestor)
        .arg(&receipt));
    expect_code(&out, 0);
    assert!(stdout(&out).contains(&attestor_id), "{}", stdout(&out));
}

#[test]
fn a_token_key_that_is_wrong_stops_the_server_before_it_changes_anything() {
    let (token, log_uri, receipts_uri) = token_with_keys();
    let dir = token.dir.path();
    let data = dir.join("data");
    expect_code(&init(&token, &data, &log_uri, &receipts_uri), 0);
    let config = std::fs::read_to_string(data.join("config.toml")).unwrap();
    let log_id = public_key_id(&data.join("keys/log.pub"));
    let stranger_id = public_key_id(&dir.join("stranger.pub"));
    let before = snapshot(&data);
    // A wrong PIN. (Both keys are on one token, and a token is logged in once per process:
    // the receipt key opens first, so its PIN is the one the token checks.)
    let out = refused_serve(with_token(&token).env(PIN_VAR, "0000"), &data);
    expect_refusal(&out, 2, "wrong PIN for token \"custody\"");
    expect_refusal(
        &out,
        2,
        &format!("hint: put the token's user PIN in the environment variable {PIN_VAR}"),
    );
    assert!(
        snapshot(&data) == before,
        "a wrong PIN changed the data directory"
    );
    let cases = [
        (
            log_uri.replace("object=log", "object=lg"),
            "no private key labelled \"lg\"".into(),
            "set object= (and id=) in [log] key",
        ),
        (
            log_uri.replace("object=log", "object=stranger"),
            format!(
                "the token key token \"custody\", key \"stranger\" (key id {stranger_id}) is not this data directory's log key: keys/log.pub holds key id {log_id}"
            ),
            "hint: a different key would silently re-key",
        ),
        (
            format!("pkcs11:token=custody;object=log?module-path={MODULE}&pin-value={USER_PIN}"),
            "[log] key in config.toml: invalid PKCS#11 URI: pin-value is refused".into(),
            "pin-source=file:",
        ),
        (
            log_uri.replace("object=log", "object=p256"),
            "the token key token \"custody\", key \"p256\" is ecdsa-p256".into(),
            "signed notes, which custody signs with Ed25519 only",
        ),
        // The receipt key is held to its public key file as well.
        (
            receipts_uri.replace("object=receipts", "object=p256"),
            "is not this data directory's receipt (attestor) key: keys/attestor.pub".into(),
            "point [receipts] key in config.toml at the token key",
        ),
    ];
    for (uri, error, hint) in cases {
        let original = if uri.contains("env:") {
            &receipts_uri
        } else {
            &log_uri
        };
        let bad = config.replace(original.as_str(), &uri);
        assert_ne!(bad, config);
        std::fs::write(data.join("config.toml"), &bad).unwrap();
        let expected = snapshot(&data);
        let out = refused_serve(&mut with_token(&token), &data);
        expect_refusal(&out, 2, &error);
        expect_refusal(&out, 2, hint);
        assert!(
            snapshot(&data) == expected,
            "{uri} changed the data directory"
        );
    }
    std::fs::write(data.join("config.toml"), &config).unwrap();
    assert!(snapshot(&data) == before);
    // And with the right key, it starts and serves checkpoints signed by it.
    let server = Server::spawn(
        with_token(&token)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .stderr(std::process::Stdio::null()),
    );
    let out = run(custody()
        .args(["log", "checkpoint", "--server", &server.base, "--log-key"])
        .arg(data.join("keys/log.pub")));
    expect_code(&out, 0);
    assert!(server.stop().success());
}

#[test]
fn init_with_a_wrong_token_key_writes_nothing() {
    let (token, log_uri, receipts_uri) = token_with_keys();
    let data = token.dir.path().join("data");
    for (log, receipts, error) in [
        (
            log_uri.replace("object=log", "object=p256"),
            receipts_uri.clone(),
            "is ecdsa-p256",
        ),
        (
            log_uri.clone(),
            receipts_uri.replace("object=receipts", "object=gone"),
            "no private key labelled \"gone\"",
        ),
        (log_uri.clone(), log_uri.clone(), "name the same key"),
        (
            format!("{log_uri}&pin-value=1"),
            receipts_uri.clone(),
            "pin-value is refused",
        ),
    ] {
        let out = init(&token, &data, &log, &receipts);
        expect_refusal(&out, 2, error);
        assert!(!data.exists(), "{error}: init left {}", data.display());
    }
    // The PIN variable unset: named, with what to do.
    let out = run(token
        .custody()
        .args(["init", "--data-dir"])
        .arg(&data)
        .args(["--log-key", &log_uri, "--receipt-key", &receipts_uri]));
    expect_refusal(&out, 2, &format!("environment variable {PIN_VAR}"));
    assert!(!data.exists());
}
