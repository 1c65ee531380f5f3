//! The CLI as the server's client: an auditor checking a server's log with its public key
//! alone (and catching a fork), builders and signers working through the server with their
//! keys at home while the deploy gate follows every write, and HTTPS through a TLS proxy.

use std::process::Command;

use serde_json::Value;

use super::common::*;
use super::{as_client, call, grant_roles, register_shop, trust_new_keys};

fn log_cmd(args: &[&str]) -> std::process::Output {
    run(custody().arg("log").args(args))
}

#[test]
fn an_auditor_checks_a_servers_log_with_nothing_but_its_public_key() {
    let temp = tempfile::tempdir().unwrap();
    let (a, b) = (temp.path().join("a"), temp.path().join("b"));
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&a)), 0);
    // b: a copy of a, which will then grow differently (a fork under the same key).
    expect_code(&run(Command::new("cp").arg("-r").arg(&a).arg(&b)), 0);
    let append = |dir: &std::path::Path, n: &str| {
        expect_code(
            &run(custody()
                .args([
                    "bench",
                    "append",
                    "--writers",
                    "2",
                    "--events",
                    n,
                    "--data-dir",
                ])
                .arg(dir)),
            0,
        );
    };
    append(&a, "20");
    append(&b, "35");
    let kept = temp.path().join("kept.note");
    let out = log_cmd(&["checkpoint", "--data-dir", a.to_str().unwrap()]);
    expect_code(&out, 0);
    std::fs::write(&kept, &out.stdout).unwrap();
    let key = a.join("keys/log.pub");
    let (key, kept) = (key.to_str().unwrap(), kept.to_str().unwrap());

    let server = Server::start(&a);
    let url = server.base.clone();
    let reader = token(&a, &operator(&a), &[]);
    let remote = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &url, "--log-key", key, "--token", &reader]);
        log_cmd(&all)
    };
    // The checkpoint, the entries and the proofs match the local ones, and verify.
    let out = remote(&["checkpoint", "--json"]);
    expect_code(&out, 0);
    let head: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (head["size"].as_u64(), head["signed"].as_bool()),
        (Some(22), Some(true)) // with the reader's token
    );
    let local = log_cmd(&["entries", "--data-dir", a.to_str().unwrap()]);
    assert_eq!(remote(&["entries"]).stdout, local.stdout);
    let out = remote(&["proof", "inclusion", "--index", "7", "--json"]);
    expect_code(&out, 0);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["root_signed"],
        true
    );
    expect_code(&remote(&["proof", "consistency", "--from", "3"]), 0);
    let out = remote(&["check", "--since-checkpoint", kept, "--json"]);
    expect_code(&out, 0);
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (check["ok"].as_bool(), check["consistent_since"].as_u64()),
        (Some(true), Some(21))
    );

    // The wrong key: the checkpoint does not verify (exit 1); no key: not trusted.
    let other = temp.path().join("other");
    generate_key(temp.path(), "other", "ed25519");
    let out = log_cmd(&[
        "checkpoint",
        "--server",
        &url,
        "--log-key",
        &format!("{}.pub", other.display()),
    ]);
    expect_refusal(&out, 1, "does not verify with the log key");
    let out = log_cmd(&["checkpoint", "--server", &url]);
    expect_refusal(&out, 0, "not checked");
    let out = log_cmd(&["check", "--server", &url]);
    expect_refusal(&out, 2, "--log-key");
    assert!(server.stop().success());

    // The fork: b, under the same key, is not consistent with the checkpoint kept from a.
    let forked = Server::start(&b);
    let reader_b = token(&b, &operator(&b), &[]);
    let out = log_cmd(&[
        "check",
        "--server",
        &forked.base,
        "--log-key",
        key,
        "--since-checkpoint",
        kept,
        "--token",
        &reader_b,
    ]);
    expect_code(&out, 1);
    assert!(stdout(&out).contains("the log forked"), "{}", stdout(&out));
    assert!(forked.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builders_and_signers_work_through_the_server_with_their_keys_at_home() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let server = Server::start(&data);
    let (builder_key, release_key) = trust_new_keys(temp.path(), &data);
    grant_roles(
        &data,
        "builder = [\"ci-bot\"]\nsigner = [\"rita\"]\ndeployer = [\"argo\"]\nsecurity = [\"sec\"]",
    );
    let remote = |who: &str, args: &[&str]| as_client(&data, &server.base, who, args);
    let file = temp.path().join("shop.tar");
    std::fs::write(&file, "shop v1").unwrap();
    let register = register_shop(&file, "abc123", &builder_key);
    let register: Vec<&str> = register.iter().map(String::as_str).collect();
    let out = remote("rita", &register);
    expect_refusal(&out, 1, "may not register artifacts");
    let out = remote("ci-bot", &register);
    expect_code(&out, 0);
    let digest = stdout(&out).trim().to_owned();
    let junit = temp.path().join("junit.xml");
    std::fs::write(&junit, "<testsuite/>").unwrap();
    expect_code(
        &remote(
            "ci-bot",
            &[
                "attest",
                "--artifact",
                &digest,
                "--type",
                "junit",
                junit.to_str().unwrap(),
            ],
        ),
        0,
    );
    let artifact = format!("shop={digest}");
    let create = |sign_key: &std::path::Path| {
        remote(
            "rita",
            &[
                "release",
                "create",
                "shop",
                "1.0.0",
                "--artifact",
                &artifact,
                "--sign-key",
                sign_key.to_str().unwrap(),
            ],
        )
    };
    let out = create(&builder_key);
    expect_refusal(&out, 1, "separation of signing duties");
    let out = create(&release_key);
    expect_code(&out, 0);

    // The deploy gate answers from memory, yet never misses a write: before the promotion…
    let argo = token(&data, "argo", &[]);
    let gate = format!("{}/api/v1/verify?env=build&digest={digest}", server.base);
    for _ in 0..3 {
        let (status, v) = call("GET", &gate, Some(&argo), None).await;
        assert_eq!(status, 403, "{v}");
        assert!(
            v["reasons"].to_string().contains("nothing is certified"),
            "{v}"
        );
    }
    let out = remote("rita", &["promote", "shop@1.0.0", "--to", "build"]);
    expect_code(&out, 0);
    assert!(stdout(&out).contains("certified"), "{}", stdout(&out));
    // …and at once after it, since the promotion went through this server.
    let (status, v) = call("GET", &gate, Some(&argo), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["release"], "shop@1.0.0");

    // Another process removes the release key from the policy: the server notices within
    // its watch interval, and the gate then counts the key as revoked.
    let policy = data.join("policy/custody.toml");
    let trusting = std::fs::read_to_string(&policy).unwrap();
    let text = trusting.replace("[[release_key]]\npath = \"keys/release.pub\"\n\n", "");
    std::fs::write(&policy, text).unwrap();
    let out = run(custody()
        .args(["policy", "propose", "--data-dir"])
        .arg(&data));
    expect_code(&out, 0);
    until_servers_see_local_writes();
    let (status, v) = call("GET", &gate, Some(&argo), None).await;
    assert_eq!(status, 403, "{v}");
    assert!(
        v["reasons"]
            .to_string()
            .contains("no longer stands in build")
            && v["reasons"]
                .to_string()
                .contains("not signed by a trusted release key"),
        "{v}"
    );

    // A security engineer puts the key back through the server: the gate allows at once.
    let bundle = temp.path().join("bundle");
    std::fs::create_dir_all(bundle.join("keys")).unwrap();
    for f in ["keys/builder.pub", "keys/release.pub"] {
        std::fs::copy(data.join("policy").join(f), bundle.join(f)).unwrap();
    }
    std::fs::write(bundle.join("custody.toml"), &trusting).unwrap();
    let out = remote("sec", &["policy", "apply"]);
    expect_refusal(&out, 2, "needs the bundle's directory");
    let out = remote("rita", &["policy", "apply", bundle.to_str().unwrap()]);
    expect_refusal(&out, 1, "may not apply policies");
    // The starter policy names no owners who could approve a change, so nobody changes it
    // through the server; its operator does, on the data directory (a recorded bootstrap).
    let out = remote("sec", &["policy", "apply", bundle.to_str().unwrap()]);
    expect_refusal(&out, 1, "nobody could approve a change");
    let out = run(custody()
        .args(["policy", "propose"])
        .arg(&bundle)
        .arg("--data-dir")
        .arg(&data));
    expect_code(&out, 0);
    assert!(stdout(&out).contains("bootstrap"), "{}", stdout(&out));
    until_servers_see_local_writes();
    let (status, v) = call("GET", &gate, Some(&argo), None).await;
    assert_eq!(status, 200, "{v}");
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_speaks_https_to_a_server_behind_a_tls_proxy() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let server = Server::start(&data);
    grant_roles(&data, "deployer = [\"argo\"]");
    let argo = token(&data, "argo", &[]);
    let (proxy, https) = listening(
        python_script("tls_proxy.py")
            .arg(&server.base)
            .arg(temp.path()),
    );
    let ca = temp.path().join("ca.pem");
    let log_pub = data.join("keys/log.pub");
    let log = |extra: &[&str]| {
        run(custody()
            .args(["log", "checkpoint", "--server", &https, "--log-key"])
            .arg(&log_pub)
            .args(extra))
    };

    // With the proxy's CA the auditor's check and the deploy gate work over HTTPS…
    let out = log(&["--ca-cert", ca.to_str().unwrap()]);
    expect_code(&out, 0);
    assert!(stdout(&out).starts_with("custody/"), "{}", stdout(&out));
    let digest = format!("sha256:{}", "a".repeat(64));
    let out = run(custody()
        .args(["verify", "--env", "build", &digest, "--server", &https])
        .args(["--token", &argo, "--ca-cert", ca.to_str().unwrap()]));
    expect_code(&out, 1);
    assert!(
        stdout(&out).contains("nothing is certified in build"),
        "{}",
        stdout(&out)
    );
    let out = run(custody()
        .args(["history", "--json", "--server", &https, "--token", &argo])
        .env("CUSTODY_CA_CERT", &ca));
    expect_code(&out, 0);
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(history[0]["event"]["type"], "policy.applied");
    // …without it the certificate is not trusted, and the error says what to pass…
    let out = log(&[]);
    expect_refusal(&out, 2, "--ca-cert");
    // …and a CA file that holds no certificate is refused by name.
    let out = log(&["--ca-cert", log_pub.to_str().unwrap()]);
    expect_refusal(&out, 2, "CA certificate");
    drop(proxy);
    assert!(server.stop().success());
}

/// `history --limit 0` through a server is all of it, as on the data directory, though the
/// server answers a page at a time; a limit above one page is met too.
#[test]
fn history_through_a_server_pages_to_all_of_it() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    expect_code(
        &run(custody()
            .args(["bench", "append", "--writers", "2", "--events", "2300"])
            .arg("--data-dir")
            .arg(&data)),
        0,
    );
    let count = |out: std::process::Output| {
        expect_code(&out, 0);
        let entries: Value = serde_json::from_slice(&out.stdout).unwrap();
        let entries = entries.as_array().unwrap().clone();
        let indices: Vec<u64> = entries
            .iter()
            .map(|e| e["index"].as_u64().unwrap())
            .collect();
        assert!(
            indices.windows(2).all(|w| w[0] < w[1]),
            "oldest first, once each"
        );
        indices
    };
    let server = Server::start(&data);
    let reader = token(&data, &operator(&data), &[]);
    let local = count(run(custody()
        .args(["history", "--json", "--limit", "0", "--data-dir"])
        .arg(&data)));
    assert!(local.len() > 2300, "{}", local.len());
    let remote = |limit: &str| {
        count(run(custody().args([
            "history",
            "--json",
            "--limit",
            limit,
            "--server",
            &server.base,
            "--token",
            &reader,
        ])))
    };
    assert_eq!(remote("0"), local);
    assert_eq!(remote("1500"), local[local.len() - 1500..]);
    assert_eq!(remote("7"), local[local.len() - 7..]);
}
