//! Evidence that is read, not just present, through the real `custody` binary: custody
//! parses each report it is given, refuses a malformed one (exit 2, naming the line or
//! JSON path) without recording anything, and the gate denies a release whose reports
//! say it fails: a failing test, error-level static analysis, a fixable critical CVE, a
//! denied licence. The reports are hand-made, modelled on what Maven Surefire, bandit,
//! Trivy and the CycloneDX tools write.
//!
//! The parts: [`rescans`] (scans attached after certification, through a server) and
//! [`interop`] (custody's evidence statements checked by the Python references).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod common;
#[path = "evidence/interop.rs"]
mod interop;
#[path = "evidence/rescans.rs"]
mod rescans;

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use common::*;
use serde_json::Value;

const POLICY: &str = r#"
version = 1

[roles]
signer = ["rita"]
builder = ["ci-bot"]
auditor = ["auditor"]

[[release_key]]
path = "keys/release.pub"

[[builder]]
id = "https://ci.example/builder/v1"
key = "keys/builder.pub"
source_repos = ["https://git.example/acme/*"]

[[environment]]
name = "production"
evidence = ["test-results", "static-analysis", "vulnerability-scan", "sbom"]

[environment.licences]
allow = ["MIT", "Apache-2.0"]
"#;

const JUNIT_PASSING: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="shop.CartTest" tests="2" failures="0" errors="0" skipped="0" time="0.01">
  <testcase name="adds" classname="shop.CartTest" time="0.004"/>
  <testcase name="pays" classname="shop.CartTest" time="0.006"/>
</testsuite>
"#;

const JUNIT_FAILING: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="shop.CartTest" tests="2" failures="1" errors="0" skipped="0" time="0.01">
  <testcase name="adds" classname="shop.CartTest" time="0.004"/>
  <testcase name="refunds" classname="shop.CartTest" time="0.006">
    <failure message="expected: &lt;2&gt; but was: &lt;3&gt;" type="org.opentest4j.AssertionFailedError">trace</failure>
  </testcase>
</testsuite>
"#;

const SARIF_CLEAN: &str =
    r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Bandit"}}, "results": []}]}"#;

const SARIF_ERROR: &str = r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Bandit"}},
  "results": [{"ruleId": "B602", "level": "error",
    "message": {"text": "subprocess call with shell=True identified, security issue."},
    "locations": [{"physicalLocation": {"artifactLocation": {"uri": "shop/pay.py"}, "region": {"startLine": 12}}}]}]}]}"#;

const TRIVY_CLEAN: &str = r#"{"SchemaVersion": 2, "ArtifactName": "shop", "ArtifactType": "filesystem",
  "Results": [{"Target": "package-lock.json", "Class": "lang-pkgs", "Type": "npm"}]}"#;

const TRIVY_CRITICAL: &str = r#"{"SchemaVersion": 2, "ArtifactName": "shop", "ArtifactType": "filesystem",
  "Results": [{"Target": "package-lock.json", "Class": "lang-pkgs", "Type": "npm",
    "Vulnerabilities": [{"VulnerabilityID": "CVE-2021-23337", "PkgName": "lodash",
      "InstalledVersion": "4.17.20", "FixedVersion": "4.17.21", "Severity": "CRITICAL",
      "Title": "lodash: command injection via template"}]}]}"#;

const SBOM_MIT: &str = r#"{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
  "components": [{"type": "library", "name": "left-pad", "version": "1.3.0",
    "purl": "pkg:npm/left-pad@1.3.0", "licenses": [{"license": {"id": "MIT"}}]}]}"#;

const SBOM_GPL: &str = r#"{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
  "components": [{"type": "library", "name": "readline", "version": "8.2",
    "purl": "pkg:generic/readline@8.2", "licenses": [{"expression": "MIT AND GPL-3.0-only"}]}]}"#;

struct World {
    _temp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    /// Each principal's token, minted by the data directory's operator.
    tokens: std::collections::BTreeMap<&'static str, String>,
    /// Once set, commands go to this server (at its time) rather than the data directory.
    server: std::cell::RefCell<Option<String>>,
}

impl World {
    fn new() -> World {
        let (temp, root, data, policy) = data_and_policy();
        // The operator administers the instance (and mints the tokens below).
        let admin = format!("[roles]\nadmin = [{:?}]\n", operator(&data));
        fs::write(
            policy.join("custody.toml"),
            POLICY.replace("[roles]\n", &admin),
        )
        .unwrap();
        generate_key(&root, "builder", "ed25519");
        generate_key(&root, "release", "ed25519");
        fs::copy(root.join("builder.pub"), policy.join("keys/builder.pub")).unwrap();
        fs::copy(root.join("release.pub"), policy.join("keys/release.pub")).unwrap();
        let mut w = World {
            _temp: temp,
            root,
            data,
            tokens: Default::default(),
            server: Default::default(),
        };
        let out = run(custody()
            .args(["policy", "propose"])
            .arg(&policy)
            .arg("--data-dir")
            .arg(&w.data));
        expect_code(&out, 0);
        for who in ["ci-bot", "rita", "auditor"] {
            w.tokens.insert(who, token(&w.data, who, &[]));
        }
        w
    }

    fn run(&self, args: &[&str], principal: &str) -> Output {
        let mut command = custody();
        command
            .args(args)
            .env("CUSTODY_TOKEN", &self.tokens[principal]);
        match &*self.server.borrow() {
            Some(url) => command.args(["--server", url]),
            None => command
                .arg("--data-dir")
                .arg(&self.data)
                .env("CUSTODY_NOW", "2026-11-02T09:00:00Z"),
        };
        run(&mut command)
    }

    #[track_caller]
    fn ok(&self, args: &[&str], principal: &str) -> String {
        let out = self.run(args, principal);
        expect_code(&out, 0);
        stdout(&out)
    }

    fn file(&self, name: &str, body: &str) -> String {
        let path = self.root.join(name);
        fs::write(&path, body).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Registers a build of `name` (with signed provenance); its digest.
    fn build(&self, name: &str) -> String {
        let file = self.file(&format!("{name}.bin"), name);
        let key = self.root.join("builder.key");
        self.ok(
            &[
                "artifact",
                "register",
                "--name",
                "shop",
                "--file",
                &file,
                "--source-repo",
                "https://git.example/acme/shop",
                "--commit",
                name,
                "--builder-id",
                "https://ci.example/builder/v1",
                "--invocation-id",
                name,
                "--builder-key",
                key.to_str().unwrap(),
            ],
            "ci-bot",
        )
        .trim()
        .to_owned()
    }

    fn attest(&self, digest: &str, format: &str, kind: &str, body: &str) -> Output {
        let file = self.file(&format!("report.{format}"), body);
        self.run(
            &[
                "attest",
                "--artifact",
                digest,
                "--type",
                format,
                "--kind",
                kind,
                &file,
            ],
            "ci-bot",
        )
    }

    /// Builds `version`, attaches the four reports, releases and promotes it to
    /// production: the exit code, the promotion as JSON and the artifact's digest.
    fn release(&self, version: &str, reports: [&str; 4]) -> (i32, Value, String) {
        let digest = self.build(version);
        for ((format, kind), body) in [
            ("junit", "test-results"),
            ("sarif", "static-analysis"),
            ("trivy", "vulnerability-scan"),
            ("cyclonedx", "sbom"),
        ]
        .into_iter()
        .zip(reports)
        {
            expect_code(&self.attest(&digest, format, kind, body), 0);
        }
        self.create(version, &digest);
        let (code, value) = self.promote(version);
        (code, value, digest)
    }

    /// `custody release create shop VERSION` of `digest`, signed.
    fn create(&self, version: &str, digest: &str) {
        let key = self.root.join("release.key");
        self.ok(
            &[
                "release",
                "create",
                "shop",
                version,
                "--artifact",
                &format!("shop={digest}"),
                "--sign-key",
                key.to_str().unwrap(),
            ],
            "rita",
        );
    }

    /// Promotes shop@VERSION to production: the exit code and the promotion as JSON.
    fn promote(&self, version: &str) -> (i32, Value) {
        let out = self.run(
            &[
                "promote",
                &format!("shop@{version}"),
                "--to",
                "production",
                "--json",
            ],
            "rita",
        );
        let value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}\n{}\n{}", stdout(&out), stderr(&out)));
        (out.status.code().unwrap(), value)
    }

    fn ledger_size(&self) -> u64 {
        ledger_size(&self.data)
    }
}

/// The reason the gate named `gate` gave, from a promotion printed as JSON.
fn gate(p: &Value, gate: &str) -> (String, String) {
    let text = p.to_string();
    let gates = find_gates(p).unwrap_or_else(|| panic!("no gates in {text}"));
    let g = gates
        .iter()
        .find(|g| g["gate"] == gate)
        .unwrap_or_else(|| panic!("no {gate} gate in {text}"));
    (
        g["status"].as_str().unwrap().to_owned(),
        g["reason"].as_str().unwrap().to_owned(),
    )
}

fn find_gates(v: &Value) -> Option<&Vec<Value>> {
    match v {
        Value::Object(m) => m
            .get("gates")
            .and_then(Value::as_array)
            .or_else(|| m.values().find_map(find_gates)),
        Value::Array(a) => a.iter().find_map(find_gates),
        _ => None,
    }
}

#[test]
fn reports_that_say_the_release_fails_deny_it_and_say_why() {
    let w = World::new();
    let good = [JUNIT_PASSING, SARIF_CLEAN, TRIVY_CLEAN, SBOM_MIT];
    let (code, p, _) = w.release("1.0.0", good);
    assert_eq!(code, 0, "{p:#}");
    assert_eq!(
        gate(&p, "tests"),
        ("pass".into(), "2/2 tests passed".into())
    );

    let cases: [(&str, [&str; 4], &str, &[&str]); 4] = [
        (
            "1.0.1",
            [JUNIT_FAILING, SARIF_CLEAN, TRIVY_CLEAN, SBOM_MIT],
            "tests",
            &[
                "1 of 2 tests failed",
                "shop.CartTest.refunds",
                "expected: <2> but was: <3>",
            ],
        ),
        (
            "1.0.2",
            [JUNIT_PASSING, SARIF_ERROR, TRIVY_CLEAN, SBOM_MIT],
            "static-analysis",
            &["1 error-level results", "B602 at shop/pay.py:12"],
        ),
        (
            "1.0.3",
            [JUNIT_PASSING, SARIF_CLEAN, TRIVY_CRITICAL, SBOM_MIT],
            "vulnerabilities",
            &["CVE-2021-23337 in lodash 4.17.20 (critical, fixed in 4.17.21"],
        ),
        (
            "1.0.4",
            [JUNIT_PASSING, SARIF_CLEAN, TRIVY_CLEAN, SBOM_GPL],
            "licences",
            &["MIT AND GPL-3.0-only (readline@8.2)"],
        ),
    ];
    for (version, reports, failing, needles) in cases {
        let (code, p, _) = w.release(version, reports);
        assert_eq!(code, 1, "{version} must be denied: {p:#}");
        let (status, reason) = gate(&p, failing);
        assert_eq!(status, "fail", "{version}: {reason}");
        for needle in needles {
            assert!(
                reason.contains(needle),
                "{version}: {needle:?} not in {reason:?}"
            );
        }
    }
}

/// A clean report from another tool, or about another target, hides nothing: the failing
/// SARIF run and the scan that found a fixable critical CVE keep the release out until the
/// same tools report again, clean, on the same thing.
#[test]
fn a_clean_report_of_another_tool_or_target_hides_nothing() {
    let w = World::new();
    let digest = w.build("1.0.0");
    for (format, kind, body) in [
        ("junit", "test-results", JUNIT_PASSING),
        ("sarif", "static-analysis", SARIF_ERROR),
        ("trivy", "vulnerability-scan", TRIVY_CRITICAL),
        ("cyclonedx", "sbom", SBOM_MIT),
        // Then clean reports from elsewhere: another SARIF tool, a scan of another image.
        (
            "sarif",
            "static-analysis",
            r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "ESLint"}}, "results": []}]}"#,
        ),
        (
            "trivy",
            "vulnerability-scan",
            r#"{"SchemaVersion": 2, "ArtifactName": "alpine:3.19", "Results": []}"#,
        ),
    ] {
        expect_code(&w.attest(&digest, format, kind, body), 0);
    }
    w.create("1.0.0", &digest);
    let (code, p) = w.promote("1.0.0");
    assert_eq!(code, 1, "{p:#}");
    assert_eq!(gate(&p, "static-analysis").0, "fail", "{p:#}");
    assert!(
        gate(&p, "vulnerabilities").1.contains("CVE-2021-23337"),
        "{p:#}"
    );
    // The same tools, clean, on the same thing: the rerun and the re-scan replace them.
    expect_code(
        &w.attest(&digest, "sarif", "static-analysis", SARIF_CLEAN),
        0,
    );
    expect_code(
        &w.attest(&digest, "trivy", "vulnerability-scan", TRIVY_CLEAN),
        0,
    );
    let (code, p) = w.promote("1.0.0");
    assert_eq!(code, 0, "{p:#}");
}

#[test]
fn malformed_reports_are_refused_naming_the_place_and_record_nothing() {
    let w = World::new();
    let digest = w.build("2.0.0");
    let before = w.ledger_size();
    let cases = [
        (
            "junit",
            r#"<testsuite name="shop" tests="1"><testcase name="a""#,
            "junit: line 1",
        ),
        ("junit", "{\"tests\": 3}", "junit"),
        ("cyclonedx", "[]", "cyclonedx"),
        ("cyclonedx", r#"{"hello": "world"}"#, "cyclonedx"),
        ("spdx", "[]", "spdx"),
        ("spdx", r#"{"hello": "world"}"#, "spdx"),
        (
            "trivy",
            r#"{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{"VulnerabilityID": 7}]}]}"#,
            "$.Results[0].Vulnerabilities[0].VulnerabilityID",
        ),
        (
            "sarif",
            r#"{"version": "2.1.0", "runs": [{"results": "#,
            "sarif",
        ),
        ("dsse", r#"{"hello": "world"}"#, "dsse: not a DSSE envelope"),
        ("dsse", "<testsuite/>", "dsse: not a DSSE envelope"),
    ];
    for (format, body, needle) in cases {
        let out = w.attest(&digest, format, "evidence", body);
        assert_eq!(out.status.code(), Some(2), "{format} {body:?} was accepted");
        assert!(
            stderr(&out).contains(needle),
            "{format} {body:?}: {needle:?} not in {}",
            stderr(&out)
        );
    }
    // An envelope no key the policy trusts signed is refused too.
    let unsigned =
        r#"{"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": []}"#;
    let out = w.attest(&digest, "dsse", "attestation", unsigned);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("not signed by a key the policy trusts"),
        "{}",
        stderr(&out)
    );
    // A well-formed report under a type the rules read from other formats: a test report
    // relabelled as a vulnerability scan or an SBOM (it would stand in for one, and the
    // vulnerabilities gate would have nothing to read).
    for kind in ["vulnerability-scan", "sbom"] {
        let out = w.attest(&digest, "junit", kind, JUNIT_FAILING);
        expect_refusal(&out, 2, &format!("{kind} evidence is read from"));
        assert!(stderr(&out).contains("not junit"), "{}", stderr(&out));
    }
    let out = w.attest(
        &digest,
        "spdx",
        "test-results",
        r#"{"spdxVersion": "SPDX-2.3"}"#,
    );
    expect_refusal(
        &out,
        2,
        "test-results evidence is read from junit, not spdx",
    );
    assert_eq!(
        w.ledger_size(),
        before,
        "a refused report changed the ledger"
    );

    // The same reports, well formed, are recorded with what custody read in them.
    expect_code(
        &w.attest(&digest, "junit", "test-results", JUNIT_FAILING),
        0,
    );
    let out = w.run(&["history", "--json"], "auditor");
    expect_code(&out, 0);
    // Compact, whatever the printer's layout.
    let history = serde_json::from_str::<Value>(&stdout(&out))
        .unwrap()
        .to_string();
    assert!(
        history.contains(r#""passed":1"#) && history.contains(r#""failed":1"#),
        "the event records what custody read: {history}"
    );
}
