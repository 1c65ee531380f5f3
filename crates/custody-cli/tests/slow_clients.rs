//! One client with many slow connections cannot take `custody serve` down: a real server
//! process under a 1,024 open-file limit, 1,100 connections that send nothing or stop
//! half-way through their headers from one address, and the health check and the deploy
//! gate still answering another client; every one of the attacker's sockets is closed by
//! the server (header-read deadline, or evicted as the idlest when the cap is reached).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;

use std::time::{Duration, Instant};

use common::{Server, custody, expect_code, http, operator, run, token};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The attacker's connections: more than the server's file limit allows it to hold.
const ATTACKERS: usize = 1_100;

/// Raises this test process's own open-file limit, so that it can hold the attacker's
/// sockets (the server's is lowered to 1,024 by the shell that starts it).
fn room_for_sockets() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    let wanted = 4_096u64.min(hard);
    assert!(
        wanted > ATTACKERS as u64 + 256,
        "the hard open-file limit ({hard}) is too low for this test"
    );
    limit.current = Some(wanted);
    setrlimit(Resource::Nofile, limit).unwrap();
}

/// `custody serve` on `data` with its open-file limit set to 1,024 by `ulimit`.
fn serve_with_file_limit(data: &std::path::Path) -> Server {
    Server::spawn(
        std::process::Command::new("sh")
            .arg("-c")
            .arg("ulimit -n 1024 && exec \"$0\" serve --listen 127.0.0.1:0 --data-dir \"$1\"")
            .arg(env!("CARGO_BIN_EXE_custody"))
            .arg(data)
            .stderr(std::process::Stdio::null()),
    )
}

/// A connection from 127.0.0.2 (another client address than the probes' 127.0.0.1):
/// half of them send nothing, the other half the start of a request and no more.
async fn attacker(port: u16, n: usize) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    if n % 2 == 1 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: custody\r\nX-Slow: ")
            .await
            .unwrap();
    }
    stream
}

/// Whether the server closed `stream` (end of file or a reset), waiting for it at most
/// until `deadline`.
async fn closed_by_server(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // An answer (a 408 for a half-sent request) before the close.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slow_connections_leave_the_health_check_and_the_gate_answering() {
    room_for_sockets();
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    // Short deadlines, and no per-client cap, so that only the server's total cap and
    // its deadlines stand between the attacker and the file limit.
    let config = data.join("config.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "header_read_timeout = \"10s\"",
            "header_read_timeout = \"3s\"",
        )
        .replace("idle_timeout = \"60s\"", "idle_timeout = \"3s\"")
        .replace(
            "max_connections_per_client = 256",
            "max_connections_per_client = 0",
        );
    assert!(text.contains("header_read_timeout = \"3s\""), "{text}");
    std::fs::write(&config, text).unwrap();
    // The operator holds admin in the starter policy.
    let admin = token(&data, &operator(&data), &[]);
    let server = serve_with_file_limit(&data);
    let base = server.base.clone();
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();

    let mut sockets = Vec::with_capacity(ATTACKERS);
    for n in 0..ATTACKERS {
        sockets.push(attacker(port, n).await);
    }
    // While the attacker holds them: the health check and the deploy gate answer, each
    // on a fresh connection.
    let client = http();
    let digest = format!("sha256:{}", "a".repeat(64));
    for _ in 0..8 {
        // A new client each time: a new connection, not one kept alive from before.
        let fresh = http();
        let health = fresh.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let gate = fresh
            .get(format!(
                "{base}/api/v1/verify?env=production&digest={digest}"
            ))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        // Nothing is certified: the gate answers, and denies (403 with its verdict).
        assert_eq!(gate.status(), 403);
        let verdict: serde_json::Value = gate.json().await.unwrap();
        assert_eq!(verdict["allowed"], false, "{verdict}");
    }
    // Every one of the attacker's sockets is closed by the server, within its deadlines
    // (3 s each; the bound here is generous for a loaded machine, not a measurement).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut open = 0;
    for s in &mut sockets {
        if !closed_by_server(s, deadline).await {
            open += 1;
        }
    }
    assert_eq!(
        open, 0,
        "{open} of {ATTACKERS} slow sockets were never closed"
    );
    // And it still answers.
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(server.stop().success());
}
