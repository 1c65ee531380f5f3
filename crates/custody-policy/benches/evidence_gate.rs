//! What the evidence-content gates add to a promotion decision with 5 reports of 1,000
//! findings each (the issue's target: under 1 ms): a JUnit report of 1,000 cases, SARIF
//! with 1,000 results, Trivy and Grype-shaped scans of 1,000 vulnerabilities (50 of them
//! critical with a fix, each waived by an exception) and a CycloneDX SBOM of 1,000
//! components under licence lists. Measured twice: the gates alone over facts already
//! read, and reading the five parsed reports into facts (what the application does while
//! gathering them) plus the gates. Baseline in the same run: the same decision with no
//! report read.

#![allow(missing_docs, clippy::unwrap_used, reason = "benchmark")]

use criterion::{Criterion, criterion_group, criterion_main};
use custody_evidence::{Evidence, Format, parse};
use custody_policy::{
    EvidenceFacts, ExceptionFacts, Facts, Policy, ReportFacts, WaivedFinding, compile, evaluate,
};
use serde_json::json;

#[path = "../tests/fixture/mod.rs"]
mod fixture;

const N: usize = 1000;

const RULES: &str = r#"
[environment.tests]
min_tests = 1000
[environment.static_analysis]
max_error = 0
[environment.vulnerabilities]
max_severity = "high"
[environment.licences]
allow = ["MIT", "Apache-2.0", "BSD-3-Clause", "ISC", "0BSD"]
deny = ["GPL-3.0-only"]
"#;

fn reports() -> Vec<(&'static str, Evidence)> {
    let mut xml = String::from(r#"<testsuite name="shop">"#);
    for i in 0..N {
        xml.push_str(&format!(
            r#"<testcase classname="shop.case{}" name="t{i}"/>"#,
            i % 40
        ));
    }
    xml.push_str("</testsuite>");
    let results: Vec<_> = (0..N)
        .map(|i| json!({"ruleId": format!("R{}", i % 30), "level": "note", "message": {"text": format!("finding {i}")},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": format!("src/f{}.py", i % 100)}, "region": {"startLine": i + 1}}}]}))
        .collect();
    let sarif = json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "bandit"}}, "results": results}]});
    let scan = |prefix: &str| {
        let vulns: Vec<_> = (0..N)
            .map(|i| {
                let severity = if i < 50 { "CRITICAL" } else if i % 2 == 0 { "MEDIUM" } else { "LOW" };
                json!({"VulnerabilityID": format!("CVE-2024-{prefix}{i:04}"), "PkgName": format!("pkg{i}"),
                    "InstalledVersion": "1.0.0", "FixedVersion": "1.0.1", "Severity": severity})
            })
            .collect();
        json!({"SchemaVersion": 2, "Results": [{"Target": "image", "Type": "debian", "Vulnerabilities": vulns}]})
    };
    let licences = [
        "MIT",
        "Apache-2.0",
        "BSD-3-Clause",
        "ISC",
        "MIT OR GPL-3.0-only",
    ];
    let components: Vec<_> = (0..N)
        .map(|i| {
            json!({"type": "library", "name": format!("lib{i}"), "version": "1.0",
            "licenses": [{"expression": licences[i % licences.len()]}]})
        })
        .collect();
    let sbom = json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": components});
    let bytes = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
    vec![
        (
            "test-results",
            parse(Format::Junit, xml.as_bytes()).unwrap(),
        ),
        (
            "static-analysis",
            parse(Format::Sarif, &bytes(sarif)).unwrap(),
        ),
        (
            "vulnerability-scan",
            parse(Format::Trivy, &bytes(scan("1"))).unwrap(),
        ),
        (
            "nightly-scan",
            parse(Format::Trivy, &bytes(scan("2"))).unwrap(),
        ),
        ("sbom", parse(Format::Cyclonedx, &bytes(sbom)).unwrap()),
    ]
}

/// The facts with every report read, and the exceptions waiving the critical findings.
fn with_reports(policy: &Policy, bare: &Facts, reports: &[(&str, Evidence)]) -> Facts {
    let env = policy.environment("production").unwrap();
    let mut facts = bare.clone();
    for a in &mut facts.release.artifacts {
        for (kind, evidence) in reports {
            a.evidence.push(EvidenceFacts {
                kind: (*kind).into(),
                at: fixture::NOW - fixture::HOUR,
                report: Some(ReportFacts::read(&env.rules, evidence, "sha256:report")),
                read: Some(true),
            });
        }
    }
    for prefix in ["1", "2"] {
        for i in 0..50 {
            facts.exceptions.push(ExceptionFacts {
                id: format!("exc-{prefix}-{i}"),
                finding: WaivedFinding::Vulnerability {
                    id: format!("CVE-2024-{prefix}{i:04}"),
                },
                artifact: None,
                release: Some("shop@1.4.2".into()),
                requested_by: "rita".into(),
                approved_by: "sam".into(),
                approved_at: fixture::NOW - fixture::HOUR,
                expires_at: fixture::NOW + fixture::HOUR,
                environments: Vec::new(),
                signed: false,
            });
        }
    }
    facts
}

fn bench(c: &mut Criterion) {
    let k = fixture::keys();
    let text = format!("{}{RULES}", fixture::POLICY);
    let policy = compile(&fixture::bundle(&text, &k)).unwrap();
    // Evidence of every type the environment requires, none of it read; the reports
    // below come later, so they are the newest of their types.
    let bare = fixture::passing_facts(&policy, &k, 1);
    let reports = reports();
    let facts = with_reports(&policy, &bare, &reports);
    let decided = evaluate(&policy, &facts);
    assert!(decided.allowed, "{decided:#?}");
    assert_eq!(
        decided
            .gates
            .iter()
            .filter(|g| g.gate.name() == "vulnerabilities")
            .count(),
        1
    );

    c.bench_function("baseline: evaluate a promotion, no report read", |b| {
        b.iter(|| evaluate(&policy, std::hint::black_box(&bare)))
    });
    c.bench_function(
        "evaluate with 5 reports of 1,000 findings read (the evidence gates)",
        |b| b.iter(|| evaluate(&policy, std::hint::black_box(&facts))),
    );
    c.bench_function(
        "read 5 parsed reports of 1,000 findings into facts, then evaluate",
        |b| {
            b.iter(|| {
                evaluate(
                    &policy,
                    &with_reports(&policy, std::hint::black_box(&bare), &reports),
                )
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
