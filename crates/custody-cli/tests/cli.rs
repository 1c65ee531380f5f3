//! The `custody` binary as a user drives it: keys, digests, DSSE, exit codes, and clear
//! errors (exit 2) for bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::*;
use serde_json::Value;

#[test]
fn key_generate_writes_a_private_0600_key_and_prints_its_id() {
    let dir = tempfile::tempdir().unwrap();
    for alg in ["ed25519", "ecdsa-p256"] {
        let prefix = dir.path().join(alg);
        let out = run(custody()
            .args(["key", "generate", "--algorithm", alg, "--out"])
            .arg(&prefix));
        expect_code(&out, 0);
        let id = stdout(&out).trim().to_owned();
        assert_eq!(id.len(), 64);

        let key = prefix.with_extension("key");
        let public = prefix.with_extension("pub");
        let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{alg} private key mode");
        assert!(
            fs::read_to_string(&key)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(
            fs::read_to_string(&public)
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );

        // The printed id is the id of the public key file, and of the private key's half.
        for file in [&public, &key] {
            let show = run(custody().args(["key", "show", "--json"]).arg(file));
            expect_code(&show, 0);
            let v: Value = serde_json::from_str(&stdout(&show)).unwrap();
            assert_eq!(v["key_id"], id.as_str());
            assert_eq!(v["algorithm"], alg);
        }

        // Never overwrite a key.
        let before = fs::read(&key).unwrap();
        let again = run(custody()
            .args(["key", "generate", "--algorithm", alg, "--out"])
            .arg(&prefix));
        expect_code(&again, 2);
        assert!(
            stderr(&again).contains("already exists"),
            "{}",
            stderr(&again)
        );
        assert_eq!(fs::read(&key).unwrap(), before);
    }
}

#[test]
fn key_id_is_sha256_of_the_spki_der() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = generate_key(dir.path(), "k", "ecdsa-p256");
    let out = run(custody().args(["key", "show", "--json"]).arg(&public));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    // Recompute independently: base64-decode the PEM body, SHA-256 it with `custody digest`.
    use base64::Engine as _;
    let pem = fs::read_to_string(&public).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let der_path = dir.path().join("k.der");
    fs::write(&der_path, der).unwrap();
    let digest = run(custody().arg("digest").arg(&der_path));
    let line = stdout(&digest);
    assert_eq!(
        line.split_whitespace().next().unwrap(),
        format!("sha256:{}", v["key_id"].as_str().unwrap())
    );
}

#[test]
fn digest_prints_oci_digests_for_files_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("abc.txt");
    fs::write(&file, "abc").unwrap();
    let out = run(custody().arg("digest").arg(&file));
    expect_code(&out, 0);
    assert_eq!(
        stdout(&out),
        format!(
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  {}\n",
            file.display()
        )
    );

    let out = run(custody()
        .args(["digest", "--json", "--algorithm", "sha512"])
        .arg(&file));
    expect_code(&out, 0);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v[0]["size"], 3);
    assert!(
        v[0]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha512:ddaf35a193617aba")
    );

    let mut child = custody()
        .args(["digest", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"abc").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(stdout(&out).starts_with("sha256:ba7816bf"));

    let missing = run(custody().arg("digest").arg(dir.path().join("nope")));
    expect_code(&missing, 2);
    assert!(stderr(&missing).contains("opening"), "{}", stderr(&missing));
}

#[test]
fn dsse_round_trip_and_tampering_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate_key(dir.path(), "s", "ed25519");
    let payload = dir.path().join("payload.txt");
    fs::write(&payload, "release 1.2.3").unwrap();
    let out = run(custody()
        .args(["dsse", "sign", "--payload-type", "text/plain", "--key"])
        .arg(&key)
        .arg(&payload));
    expect_code(&out, 0);
    let env_path = dir.path().join("env.json");
    fs::write(&env_path, &out.stdout).unwrap();

    let out = run(custody()
        .args(["dsse", "verify", "--json", "--key"])
        .arg(&public)
        .arg(&env_path));
    expect_code(&out, 0);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["verified"], 1);
    let shown = run(custody().args(["key", "show", "--json"]).arg(&public));
    let key_id = serde_json::from_str::<Value>(&stdout(&shown)).unwrap()["key_id"].clone();
    assert_eq!(v["results"][0]["key_ids"][0], key_id);

    // Tampered payload: exit 1, not 2.
    let mut env: Value = serde_json::from_slice(&fs::read(&env_path).unwrap()).unwrap();
    env["payload"] = Value::String("cmVsZWFzZSA5Ljku".into());
    let bad = dir.path().join("bad.json");
    fs::write(&bad, env.to_string()).unwrap();
    let out = run(custody()
        .args(["dsse", "verify", "--key"])
        .arg(&public)
        .arg(&bad));
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("only 0 of the required 1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn batch_verification_summarises_and_fails_if_any_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate_key(dir.path(), "b", "ecdsa-p256");
    let mut lines = String::new();
    for i in 0..20 {
        let p = dir.path().join(format!("p{i}"));
        fs::write(&p, format!("payload {i}")).unwrap();
        let out = run(custody()
            .args(["dsse", "sign", "--payload-type", "text/plain", "--key"])
            .arg(&key)
            .arg(&p));
        lines.push_str(&stdout(&out));
    }
    let batch = dir.path().join("batch.jsonl");
    fs::write(&batch, &lines).unwrap();
    let out = run(custody()
        .args(["dsse", "verify", "--jsonl", "--key"])
        .arg(&public)
        .arg(&batch));
    expect_saying(&out, "20 envelopes: 20 verified, 0 failed");

    // One envelope signed by a stranger fails the batch and is named by line.
    let (stranger, _) = generate_key(dir.path(), "x", "ed25519");
    let p = dir.path().join("px");
    fs::write(&p, "stranger").unwrap();
    let out = run(custody()
        .args(["dsse", "sign", "--payload-type", "text/plain", "--key"])
        .arg(&stranger)
        .arg(&p));
    fs::write(&batch, format!("{lines}{}", stdout(&out))).unwrap();
    let out = run(custody()
        .args(["dsse", "verify", "--jsonl", "--key"])
        .arg(&public)
        .arg(&batch));
    expect_code(&out, 1);
    assert!(stdout(&out).contains("21 envelopes: 20 verified, 1 failed"));
    assert!(stderr(&out).contains("batch.jsonl:21"), "{}", stderr(&out));
}

/// Command-line words followed by paths.
fn argv<const N: usize>(words: &[&str], paths: [&PathBuf; N]) -> Vec<OsString> {
    let words = words.iter().map(OsString::from);
    words
        .chain(paths.iter().map(|p| p.as_os_str().to_owned()))
        .collect()
}

#[test]
fn bad_input_is_a_clear_error_with_exit_2_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = generate_key(dir.path(), "k", "ed25519");
    let garbage = dir.path().join("garbage.pem");
    fs::write(
        &garbage,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let env = dir.path().join("env.json");
    fs::write(&env, "{\"payload\": 3").unwrap();
    let empty_sigs = dir.path().join("nosig.json");
    fs::write(
        &empty_sigs,
        r#"{"payload":"","payloadType":"t","signatures":[]}"#,
    )
    .unwrap();

    let (dsse_verify, dsse_sign) = (
        ["dsse", "verify", "--key"],
        ["dsse", "sign", "--payload-type", "t", "--key"],
    );
    let cases: Vec<(Vec<OsString>, &str)> = vec![
        (
            argv(&dsse_verify, [&garbage, &env]),
            "not a valid Ed25519 or ECDSA P-256 key",
        ),
        (argv(&dsse_verify, [&key, &env]), "this is a private key"),
        (
            argv(&dsse_verify, [&public, &env]),
            "not DSSE envelope JSON",
        ),
        (argv(&dsse_verify, [&public, &empty_sigs]), "no signatures"),
        (argv(&dsse_sign, [&public, &env]), "this is a public key"),
        (
            argv(
                &["dsse", "verify", "--threshold", "2", "--key"],
                [&public, &env],
            ),
            "can never be met",
        ),
        (
            argv(&["key", "generate", "--algorithm", "rsa", "--out", "x"], []),
            "invalid value 'rsa'",
        ),
    ];
    for (args, want) in cases {
        let out = run(custody().args(&args));
        expect_code(&out, 2);
        let err = stderr(&out);
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn signed_notes_verify_ignore_cosigners_and_reject_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let (log_key, log_pub) = generate_key(dir.path(), "log", "ed25519");
    let (witness_key, _) = generate_key(dir.path(), "witness", "ed25519");
    let text = dir.path().join("checkpoint.txt");
    fs::write(
        &text,
        "custody.example/log\n7\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
    )
    .unwrap();

    let sign = |key: &std::path::Path, name: &str| {
        let out = run(custody()
            .args(["note", "sign", "--name", name, "--key"])
            .arg(key)
            .arg(&text));
        expect_code(&out, 0);
        stdout(&out)
    };
    let note = sign(&log_key, "custody.example/log");
    let cosigned = sign(&witness_key, "witness.example");
    let witness_line = cosigned.lines().last().unwrap();
    let both = format!("{note}{witness_line}\n");

    let shown = run(custody()
        .args([
            "key",
            "show",
            "--json",
            "--note-name",
            "custody.example/log",
        ])
        .arg(&log_pub));
    let vkey = serde_json::from_str::<Value>(&stdout(&shown)).unwrap()["note_verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();

    // Without --json, --note-name prints the verifier key alone, on one line: what
    // `note verify --verifier "$(custody key show --note-name …)"` takes.
    let plain = run(custody()
        .args(["key", "show", "--note-name", "custody.example/log"])
        .arg(&log_pub));
    expect_code(&plain, 0);
    assert_eq!(stdout(&plain), format!("{vkey}\n"));
    let note_path = dir.path().join("signed.note");
    fs::write(&note_path, &note).unwrap();
    let out = run(custody()
        .args(["note", "verify", "--verifier", stdout(&plain).trim_end()])
        .arg(&note_path));
    expect_code(&out, 0);

    let verify = |content: &str| {
        let path = dir.path().join("note.txt");
        fs::write(&path, content).unwrap();
        run(custody()
            .args(["note", "verify", "--verifier", &vkey])
            .arg(&path))
    };
    let out = verify(&both);
    expect_saying(&out, "1 signature(s) by other keys ignored");

    // Tampered text: the known signature fails, exit 1.
    expect_code(&verify(&both.replacen("\n7\n", "\n8\n", 1)), 1);
    // Only the witness signed: no known signature, exit 1.
    let out = verify(&cosigned);
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("no signature from a known key"),
        "{}",
        stderr(&out)
    );
    // Malformed notes and verifier keys: exit 2 with a reason.
    let out = verify("no signature block\n");
    expect_code(&out, 2);
    assert!(stderr(&out).contains("no blank line"), "{}", stderr(&out));
    expect_code(&verify(&note.replace('\u{2014}', "--")), 2);
    let bad_vkey = run(custody()
        .args([
            "note",
            "verify",
            "--verifier",
            "custody.example/log+00000000+AQ==",
        ])
        .arg(&text));
    expect_code(&bad_vkey, 2);
}

#[test]
fn token_list_prints_one_line_per_token_whatever_its_description_holds() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    let forged = "ci\ntokdeadbeefdeadbeef  local:root  expires 2026-12-01T00:00:00Z, revoked";
    let made = run(custody()
        .args([
            "token",
            "create",
            "--principal",
            "audrey",
            "--description",
            forged,
        ])
        .arg("--data-dir")
        .arg(&data)
        .env_remove("CUSTODY_TOKEN"));
    expect_code(&made, 0);
    let list = run(custody()
        .args(["token", "list", "--data-dir"])
        .arg(&data)
        .env_remove("CUSTODY_TOKEN"));
    expect_code(&list, 0);
    let out = stdout(&list);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("ci\\ntokdeadbeef"), "{out}");
}

/// An empty `--server` or `CUSTODY_SERVER` is a mistake said plainly (not an HTTP
/// library's "builder error"), with how to act on the data directory instead.
#[test]
fn an_empty_server_url_is_refused_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    let digest = format!("sha256:{}", "a".repeat(64));
    let out = run(custody()
        .args(["verify", "--env", "production", &digest, "--server="])
        .arg("--data-dir")
        .arg(&data));
    expect_refusal(
        &out,
        2,
        "the server URL (--server or CUSTODY_SERVER) is empty",
    );
    let out = run(custody()
        .args(["log", "entries", "--start", "0", "--end", "1"])
        .arg("--data-dir")
        .arg(&data)
        .env("CUSTODY_SERVER", " "));
    expect_refusal(&out, 2, "unset CUSTODY_SERVER to act on the data directory");
    // A URL without a host (a template whose host was unset) never sends the token anywhere.
    for url in [
        "http://",
        "https://",
        "http:",
        "ftp://custody",
        "http://custody?x=1",
    ] {
        let out = run(custody()
            .args([
                "verify",
                "--env",
                "production",
                &digest,
                "--token",
                "cst_x_y",
            ])
            .arg(format!("--server={url}")));
        expect_refusal(&out, 2, "is not a server URL");
    }
}
