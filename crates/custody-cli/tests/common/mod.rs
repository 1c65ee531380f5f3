//! Helpers for tests that drive the real `custody` binary and the Python references.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) mod token;

/// The `custody` binary cargo built for this test run.
pub(crate) fn custody() -> Command {
    Command::new(env!("CARGO_BIN_EXE_custody"))
}

/// Runs a command and returns its output, with stdout/stderr captured.
pub(crate) fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawning a test command")
}

/// Asserts an exit code, printing both streams when it differs.
#[track_caller]
pub(crate) fn expect_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Generates a key pair with `custody key generate`; returns (private, public) paths.
pub(crate) fn generate_key(dir: &Path, name: &str, algorithm: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    let out = run(custody()
        .args(["key", "generate", "--algorithm", algorithm, "--out"])
        .arg(&prefix));
    expect_code(&out, 0);
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// The Python interpreter of the interop venv: `CUSTODY_TEST_PYTHON`, else the `.venv`
/// that the test command (`scripts/test.sh`) creates at the workspace root.
pub(crate) fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CUSTODY_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "interop tests need the Python reference implementations: run scripts/test.sh \
         (it creates .venv with securesystemslib, in-toto-attestation and rfc8785), \
         or set CUSTODY_TEST_PYTHON"
    );
    venv
}

/// The exit code of an interop script that refused what it was given: a verdict, distinct
/// from 1, which is how Python ends on an uncaught exception (a crash is no refusal).
pub(crate) const REFUSED: i32 = 3;

/// Runs one of the interop scripts in tests/interop with the venv's Python.
pub(crate) fn python_script(script: &str) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/interop")
            .join(script),
    );
    cmd
}

/// A fresh, empty database on the test PostgreSQL server (`CUSTODY_TEST_DATABASE_URL`,
/// started by scripts/test.sh); returns its URL.
pub(crate) fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let admin = std::env::var("CUSTODY_TEST_DATABASE_URL").expect(
        "CUSTODY_TEST_DATABASE_URL is not set: the PostgreSQL tests need a server. \
         Run scripts/test.sh (it starts one), or export the URL scripts/test-postgres.sh prints",
    );
    let name = format!("custody_cli_test_{}", unique_name());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
        });
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// A temporary folder holding an initialised data directory `data` and an empty policy
/// folder `policy` with its `keys`: (the folder, its path, data, policy).
pub(crate) fn data_and_policy() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().to_owned();
    let data = root.join("data");
    expect_code(&run(custody().args(["init", "--data-dir"]).arg(&data)), 0);
    let policy = root.join("policy");
    std::fs::create_dir_all(policy.join("keys")).unwrap();
    (temp, root, data, policy)
}

/// A name unlikely to repeat: process id, random digits and a counter.
pub(crate) fn unique_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let random = custody_app::new_id("n").replace('-', "");
    format!(
        "{}_{random}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A `custody serve` process on a free loopback port.
pub(crate) struct Server {
    child: std::process::Child,
    stopped: bool,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
}

impl Server {
    /// Starts serving `data` (created on first run).
    pub(crate) fn start(data: &std::path::Path) -> Server {
        let mut command = custody();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .stderr(std::process::Stdio::piped());
        Server::spawn(&mut command)
    }

    /// Starts `command`, a `custody serve` on a loopback port 0 (perhaps wrapped, as in a
    /// shell that sets limits first), and waits until it says where it listens.
    pub(crate) fn spawn(command: &mut Command) -> Server {
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("custody listening on ")
            .unwrap_or_else(|| panic!("{line:?}"));
        Server {
            child,
            stopped: false,
            base: addr.to_owned(),
        }
    }

    /// Stops it with SIGTERM and waits.
    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        self.stopped = true;
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

/// Waits until a running server has surely noticed what another process (this test's
/// CLI, writing to the data directory) wrote before the call: a server keeps hot records
/// in memory and sees other processes' writes within `custody_app::STATE_WATCH_EVERY`.
pub(crate) fn until_servers_see_local_writes() {
    std::thread::sleep(custody_app::FOLLOW_EVERY * 3);
}

/// Asserts `out` exited with `code` and said `needle` on stderr.
pub(crate) fn expect_refusal(out: &Output, code: i32, needle: &str) {
    expect_code(out, code);
    assert!(
        stderr(out).contains(needle),
        "{needle:?} not in: {}",
        stderr(out)
    );
}

/// Asserts `out` succeeded and said `needle` on stdout.
pub(crate) fn expect_saying(out: &Output, needle: &str) {
    expect_code(out, 0);
    assert!(stdout(out).contains(needle), "{}", stdout(out));
}

impl Drop for Server {
    /// A test that failed before `stop` leaves no server behind (it would hold the test's
    /// output open).
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `custody log ARGS --data-dir DATA`, as its operator (no token).
pub(crate) fn log(data: &Path, args: &[&str]) -> Output {
    run(custody()
        .arg("log")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("CUSTODY_TOKEN"))
}

/// Olga, on call in the demo, breaks glass: `release` into production for `reason`, signed
/// with her demo key (`extra`: more arguments).
pub(crate) fn olga_breaks_glass(
    data: &Path,
    release: &str,
    reason: &str,
    extra: &[&str],
) -> Output {
    run(custody()
        .args([
            "promote",
            release,
            "--to",
            "production",
            "--break-glass",
            reason,
        ])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .arg("--sign-key")
        .arg(data.join("demo-keys/olga.key"))
        .env("CUSTODY_TOKEN", token(data, "olga", &[])))
}

/// The event types of a history read as JSON, in order.
pub(crate) fn event_types(history: &serde_json::Value) -> Vec<&str> {
    history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect()
}

/// An HTTP client as custody's own (rustls on ring, the system's CAs).
pub(crate) fn http() -> reqwest::Client {
    custody_server::http_client::client(None).unwrap()
}

/// The body of the answer to `request`, as text.
pub(crate) async fn text_of(request: reqwest::RequestBuilder) -> String {
    request.send().await.unwrap().text().await.unwrap()
}

/// A helper process (a proxy, a stub issuer) killed when the test ends, passed or not.
pub(crate) struct Helper(pub(crate) std::process::Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Creates an API token for `principal` on the data directory (as its operator, who must
/// hold `admin` in the policy in force, as they do in the starter policy) and returns it.
pub(crate) fn token(data: &std::path::Path, principal: &str, extra: &[&str]) -> String {
    let out = run(custody()
        .args(["token", "create", "--principal", principal, "--data-dir"])
        .arg(data)
        .args(extra)
        .env_remove("CUSTODY_TOKEN"));
    expect_code(&out, 0);
    stdout(&out).trim().to_owned()
}

/// The principal of the data directory's operator (`local:USER`, the user running the
/// tests), as `custody whoami` reports it.
pub(crate) fn operator(data: &std::path::Path) -> String {
    let out = run(custody()
        .args(["whoami", "--json", "--data-dir"])
        .arg(data)
        .env_remove("CUSTODY_TOKEN"));
    expect_code(&out, 0);
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    me["principal"].as_str().unwrap().to_owned()
}

/// Starts a helper that prints `listening URL` when ready; returns it and the URL.
pub(crate) fn listening(cmd: &mut Command) -> (Helper, String) {
    let mut helper = Helper(cmd.stdout(std::process::Stdio::piped()).spawn().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(helper.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    (helper, url)
}

/// `policy` with `roles` (lines `ROLE = ["a", …]`) granted in its `[roles]` table: a role
/// the table already grants (the starter policy's `admin`, its operator) gains the members.
pub(crate) fn with_roles(policy: &str, roles: &str) -> String {
    let mut text = policy.to_owned();
    let mut new = Vec::new();
    for line in roles.lines() {
        let Some((key, members)) = line.split_once(" = [") else {
            new.push(line.to_owned());
            continue;
        };
        let existing = format!("\n{key} = [");
        if text.contains(&existing) {
            let members = members.trim_end_matches(']');
            text = text.replacen(&existing, &format!("{existing}{members}, "), 1);
        } else {
            new.push(line.to_owned());
        }
    }
    text.replacen("[roles]\n", &format!("[roles]\n{}\n", new.join("\n")), 1)
}

/// An HTTP client that takes a browser's steps one at a time (redirects not followed).
pub(crate) fn stepping_client() -> reqwest::Client {
    custody_server::http_client::client_builder(None)
        .unwrap()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The sign-in page's CSRF cookie and field, as a browser gets them.
pub(crate) async fn login_form(client: &reqwest::Client, base: &str) -> (String, String) {
    let form = client.get(format!("{base}/login")).send().await.unwrap();
    let cookie = form.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = form.text().await.unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    (cookie, csrf)
}

/// Signs in over HTTP as a browser does (the sign-in page's CSRF cookie and field, then
/// the form), through a TLS proxy when `proto` says so: the session's `Set-Cookie`.
pub(crate) async fn sign_in_http(base: &str, token: &str, proto: Option<&str>) -> String {
    let client = stepping_client();
    let (login_cookie, csrf) = login_form(&client, base).await;
    let csrf = csrf.replace(':', "%3A");
    let mut request = client
        .post(format!("{base}/login"))
        .header("cookie", login_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&csrf={csrf}"));
    if let Some(p) = proto {
        request = request.header("x-forwarded-proto", p);
    }
    let signed_in = request.send().await.unwrap();
    assert_eq!(signed_in.status().as_u16(), 303);
    signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("custody_session="))
        .unwrap()
}

/// The `Cookie` header of a new session signed in with `token`.
pub(crate) async fn session_cookie(base: &str, token: &str) -> String {
    let set = sign_in_http(base, token, None).await;
    set.split(';').next().unwrap().to_owned()
}

/// Dashboard page `path` as the holder of session `cookie` gets it.
pub(crate) async fn page(base: &str, cookie: &str, path: &str) -> reqwest::Response {
    http()
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// `note`'s text signed anew by the private keys in `keys` (PKCS#8 PEM files), under
/// its origin.
pub(crate) fn resign(note: &str, keys: &[&Path]) -> String {
    let text = &note[..note.find("\n\n").unwrap() + 1];
    let origin = text.lines().next().unwrap();
    let signers: Vec<custody_crypto::note::NoteSigner> = keys
        .iter()
        .map(|k| {
            let pem = std::fs::read_to_string(k).unwrap();
            let key = custody_crypto::PrivateKey::from_pkcs8_pem(&pem).unwrap();
            custody_crypto::note::NoteSigner::new(origin, Box::new(key)).unwrap()
        })
        .collect();
    custody_crypto::note::sign(text, &signers.iter().collect::<Vec<_>>()).unwrap()
}

/// `/metrics` as `token`'s holder scrapes it, parsed by the Prometheus project's own Python
/// parser: one JSON object per sample (name, labels, value).
pub(crate) async fn scrape_metrics(base: &str, token: &str) -> Vec<serde_json::Value> {
    let text = text_of(http().get(format!("{base}/metrics")).bearer_auth(token)).await;
    let mut parse = python_script("metrics_parse.py")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut parse.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let parsed = parse.wait_with_output().unwrap();
    assert!(parsed.status.success(), "{text}");
    serde_json::from_slice(&parsed.stdout).unwrap()
}

/// The sum of the samples named `name` carrying `labels`.
pub(crate) fn metric(samples: &[serde_json::Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .map(|s| s["value"].as_f64().unwrap())
        .sum()
}

/// The number of entries in the data directory's log (`custody log checkpoint`).
pub(crate) fn ledger_size(data: &Path) -> u64 {
    let out = run(custody()
        .args(["log", "checkpoint", "--json", "--data-dir"])
        .arg(data));
    expect_code(&out, 0);
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["size"]
        .as_u64()
        .unwrap()
}
