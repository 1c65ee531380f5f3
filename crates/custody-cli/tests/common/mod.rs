//! Helpers for tests that drive the real `custody` binary and the Python references.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
