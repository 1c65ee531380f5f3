//! Evidence reading speed. Targets (task "custody reads what evidence says"): a 50 MB
//! CycloneDX SBOM of 20,000 components parses in under 2 s (and no slower than Python's
//! `json.load`, compared by `bench/sbom-vs-python.sh`); summarising 5 reports of 1,000
//! findings each stays far below 1 ms.
//!
//! Run: `cargo bench -p custody-evidence --bench evidence`

#![allow(missing_docs, clippy::unwrap_used, reason = "benchmark harness")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use custody_evidence::{Evidence, Format, Summary, parse};
use std::hint::black_box;

#[path = "support/sbom.rs"]
mod sbom_gen;
use sbom_gen::sbom;

/// A vulnerability report of `n` findings spread over the severities.
fn vuln_report(n: usize, seed: usize) -> Evidence {
    let sev = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"];
    let items: Vec<String> = (0..n)
        .map(|i| {
            let fixed = if (i + seed) % 3 == 0 { "" } else { "2.0.0" };
            format!(
                r#"{{"VulnerabilityID":"CVE-2024-{i}","PkgName":"pkg{}","InstalledVersion":"1.0.{i}","FixedVersion":"{fixed}","Severity":"{}"}}"#,
                i % 97,
                sev[(i + seed) % 5]
            )
        })
        .collect();
    let json = format!(
        r#"{{"SchemaVersion":2,"Results":[{{"Type":"npm","Vulnerabilities":[{}]}}]}}"#,
        items.join(",")
    );
    parse(Format::Trivy, json.as_bytes()).unwrap()
}

/// A SARIF log of `n` results.
fn sarif_report(n: usize) -> Evidence {
    let levels = ["error", "warning", "note", "none"];
    let results: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"ruleId":"R{}","level":"{}","message":{{"text":"finding {i}"}}}}"#,
                i % 40,
                levels[i % 4]
            )
        })
        .collect();
    let json = format!(
        r#"{{"version":"2.1.0","runs":[{{"tool":{{"driver":{{"name":"lint"}}}},"results":[{}]}}]}}"#,
        results.join(",")
    );
    parse(Format::Sarif, json.as_bytes()).unwrap()
}

fn sbom_parse(c: &mut Criterion) {
    let doc = sbom(20_000);
    let mut g = c.benchmark_group("sbom");
    g.throughput(Throughput::Bytes(doc.len() as u64));
    g.sample_size(10);
    g.bench_function(
        format!("cyclonedx_20k_components_{}MB", doc.len() / 1_000_000),
        |b| b.iter(|| black_box(parse(Format::Cyclonedx, &doc).unwrap())),
    );
    g.finish();
}

fn summary(c: &mut Criterion) {
    let vulns: Vec<Evidence> = (0..5).map(|s| vuln_report(1_000, s)).collect();
    let sarif: Vec<Evidence> = (0..5).map(|_| sarif_report(1_000)).collect();
    let mut g = c.benchmark_group("summary");
    g.throughput(Throughput::Elements(5_000));
    g.bench_function("5_vulnerability_reports_of_1000", |b| {
        b.iter(|| black_box(Summary::of(&vulns)))
    });
    g.bench_function("5_sarif_reports_of_1000", |b| {
        b.iter(|| black_box(Summary::of(&sarif)))
    });
    g.finish();
}

criterion_group!(benches, sbom_parse, summary);
criterion_main!(benches);
