//! `custody serve` as a newcomer runs it: a real process on a loopback port, creating its
//! data directory on first run, answering the ledger's public routes and the deploy gate
//! over real HTTP, and stopping cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data: &std::path::Path) -> Server {
        let mut child = custody()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("custody listening on ")
            .unwrap_or_else(|| panic!("{line:?}"));
        Server {
            child,
            base: addr.to_owned(),
        }
    }

    fn stop(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_creates_its_instance_and_answers_over_http() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let server = Server::start(&data);
    assert!(
        data.join("keys/log.key").exists(),
        "the first run did not create the instance"
    );
    let b = &server.base;

    assert_eq!(get(&format!("{b}/healthz")).await, (200, "ok\n".into()));
    assert_eq!(get(&format!("{b}/readyz")).await, (200, "ready\n".into()));
    let (status, note) = get(&format!("{b}/api/v1/log/checkpoint")).await;
    assert_eq!(status, 200);
    let cli = run(custody()
        .args(["log", "checkpoint", "--data-dir"])
        .arg(&data));
    expect_code(&cli, 0);
    assert_eq!(
        note,
        stdout(&cli),
        "the server and the CLI disagree on the checkpoint"
    );

    let (status, leaves) = get(&format!("{b}/api/v1/log/entries?start=0&end=1")).await;
    assert_eq!(status, 200);
    let first: Value = serde_json::from_str(leaves.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "policy.applied");
    let (status, proof) = get(&format!("{b}/api/v1/log/proof/inclusion?index=0&size=1")).await;
    assert_eq!(status, 200);
    let proof: Value = serde_json::from_str(&proof).unwrap();
    let leaf = custody_ledger::leaf_hash(leaves.lines().next().unwrap().as_bytes());
    let root: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&proof["root"].as_str().unwrap()[i..i + 2], 16).unwrap())
        .collect();
    custody_ledger::verify_inclusion(&leaf, 0, 1, &Vec::<Vec<u8>>::new(), &root).unwrap();

    // The deploy gate, and bad requests: 4xx with a JSON message.
    let digest = format!("sha256:{}", "a".repeat(64));
    let (status, body) = get(&format!("{b}/api/v1/verify?env=production&digest={digest}")).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("nothing is certified in production"),
        "{body}"
    );
    for (path, needle) in [
        ("/api/v1/verify?env=production&digest=sha256:XYZ", "digest"),
        ("/api/v1/log/entries?start=0&end=5000", "at most"),
        ("/api/v1/log/entries?start=x&end=1", "start"),
        ("/api/v1/log/proof/inclusion?index=5&size=1", "index"),
        ("/api/v1/log/proof/consistency?from=1&to=9", "beyond"),
        ("/api/v1/log/proof/consistency", "missing field"),
    ] {
        let (status, body) = get(&format!("{b}{path}")).await;
        assert_eq!(status, 400, "{path}: {body}");
        let err: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
        assert!(
            err["error"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }

    // SIGTERM: a clean stop; a second start opens the same instance.
    let status = server.stop();
    assert!(status.success(), "{status:?}");
    let again = Server::start(&data);
    let (_, note2) = get(&format!("{}/api/v1/log/checkpoint", again.base)).await;
    assert_eq!(note2, note);
    assert!(again.stop().success());
}
