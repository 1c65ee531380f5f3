//! SARIF, vulnerability scans and SBOMs from real tools, one test per file with the exact
//! counts; malformed variants refused with the JSON path of the problem.

#![allow(clippy::unwrap_used, reason = "test code")]

use custody_evidence::sarif::Level;
use custody_evidence::sbom::{Sbom, SbomFormat};
use custody_evidence::vuln::{Severity, Vulnerability, VulnerabilityReport};
use custody_evidence::{Evidence, Format, SeverityCount, Summary, parse, sniff};

fn bytes(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/testdata/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn vulns(format: Format, path: &str) -> VulnerabilityReport {
    match parse(format, &bytes(path)).unwrap() {
        Evidence::Vulnerabilities(r) => r,
        other => panic!("{other:?}"),
    }
}

fn sbom(format: Format, path: &str) -> Sbom {
    match parse(format, &bytes(path)).unwrap() {
        Evidence::Sbom(s) => s,
        other => panic!("{other:?}"),
    }
}

fn count(total: u64, with_fix: u64) -> SeverityCount {
    SeverityCount {
        total,
        with_fix,
        without_fix: total - with_fix,
    }
}

fn brief(v: &Vulnerability) -> (&str, &str, Severity, Option<u16>, Vec<&str>) {
    (
        v.id.as_str(),
        v.package.as_str(),
        v.severity,
        v.cvss.as_ref().map(|c| c.score_tenths),
        v.fixed_versions.iter().map(String::as_str).collect(),
    )
}

#[test]
fn bandit_sarif() {
    let Evidence::Findings(r) = parse(Format::Sarif, &bytes("sarif/bandit.sarif")).unwrap() else {
        panic!()
    };
    assert_eq!(r.tools, ["Bandit"]);
    let t = r.totals();
    assert_eq!(
        (t.total, t.error, t.warning, t.note, t.none),
        (8, 2, 2, 4, 0)
    );
    let b602 = r
        .findings
        .iter()
        .find(|f| f.rule_id.as_deref() == Some("B602"))
        .unwrap();
    assert_eq!(
        (b602.level, b602.uri.as_deref(), b602.line),
        (Level::Error, Some("vulnerable.py"), Some(8))
    );
    assert_eq!(
        b602.message,
        "subprocess call with shell=True identified, security issue."
    );
    // B301 has no level and its rule no default: SARIF's default, warning.
    let b301 = r
        .findings
        .iter()
        .find(|f| f.rule_id.as_deref() == Some("B301"))
        .unwrap();
    assert_eq!(b301.level, Level::Warning);
}

#[test]
fn sarif_level_defaults_follow_the_spec() {
    let log = r#"{"version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "lint", "rules": [
            {"id": "R1", "defaultConfiguration": {"level": "error"}},
            {"id": "R2", "messageStrings": {"m": {"text": "{0} is unused in {1}"}}}
        ]}, "extensions": [{"name": "plugin", "rules": [{"id": "P1", "defaultConfiguration": {"level": "note"}}]}]},
        "results": [
            {"ruleId": "R1", "message": {"text": "from the rule's default\nsecond line"}},
            {"ruleIndex": 0, "level": "warning", "message": {"text": "own level wins"}},
            {"ruleId": "R1", "kind": "pass", "message": {"text": "kind pass: none"}},
            {"ruleId": "R1/sub", "message": {"text": "hierarchical id"}},
            {"ruleId": "R2", "message": {"id": "m", "arguments": ["x", "main"]},
             "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/a.rs"}, "region": {"startLine": 7}}}]},
            {"rule": {"id": "P1", "index": 0, "toolComponent": {"index": 0}}, "message": {"text": "extension rule"}}
        ]}]}"#;
    let Evidence::Findings(r) = parse(Format::Sarif, log.as_bytes()).unwrap() else {
        panic!()
    };
    let got: Vec<_> = r
        .findings
        .iter()
        .map(|f| (f.message.as_str(), f.level))
        .collect();
    assert_eq!(
        got,
        // Sorted by rule id (P1, R1, R1/sub, R2), then level.
        [
            ("extension rule", Level::Note),
            ("from the rule's default", Level::Error),
            ("own level wins", Level::Warning),
            ("kind pass: none", Level::None),
            ("hierarchical id", Level::Error),
            ("x is unused in main", Level::Warning),
        ]
    );
    assert_eq!(
        (r.findings[5].uri.as_deref(), r.findings[5].line),
        (Some("src/a.rs"), Some(7))
    );
}

#[test]
fn grype_json() {
    let r = vulns(Format::Grype, "vuln/grype-images.json");
    assert_eq!(r.tool.as_deref(), Some("grype [not provided]"));
    let got: Vec<_> = r.vulnerabilities.iter().map(brief).collect();
    assert_eq!(
        got,
        [
            // Grype labels it Low, but its CVSS v3.1 score is 8.2: the worse counts.
            (
                "CVE-1999-0001",
                "package-1",
                Severity::High,
                Some(82),
                vec!["1.2.1", "2.1.3", "3.4.0"]
            ),
            // Grype labels it Critical, its score is 8.5 (high): the worse counts.
            (
                "CVE-1999-0002",
                "package-2",
                Severity::Critical,
                Some(85),
                vec![]
            ),
        ]
    );
    assert_eq!(
        r.vulnerabilities[1].purl.as_deref(),
        Some("pkg:deb/package-2@2.2.2")
    );
    assert_eq!(r.vulnerabilities[0].ecosystem.as_deref(), Some("rpm"));
    let t = r.totals();
    assert_eq!((t.total, t.high, t.critical), (2, count(1, 1), count(1, 0)));
}

#[test]
fn trivy_image_json() {
    let r = vulns(Format::Trivy, "vuln/trivy-alpine-310.json");
    let got: Vec<_> = r.vulnerabilities.iter().map(brief).collect();
    assert_eq!(
        got,
        [
            (
                "CVE-2019-1549",
                "libcrypto1.1",
                Severity::Medium,
                Some(53),
                vec!["1.1.1d-r0"]
            ),
            (
                "CVE-2019-1549",
                "libssl1.1",
                Severity::Medium,
                Some(53),
                vec!["1.1.1d-r0"]
            ),
            (
                "CVE-2019-1551",
                "libcrypto1.1",
                Severity::Medium,
                Some(53),
                vec!["1.1.1d-r2"]
            ),
        ]
    );
    let v = &r.vulnerabilities[0];
    assert_eq!(
        v.cvss.as_ref().unwrap().vector.as_deref(),
        Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N")
    );
    assert_eq!(
        (v.ecosystem.as_deref(), v.version.as_deref()),
        (Some("alpine"), Some("1.1.1c-r0"))
    );
    assert_eq!(r.totals().medium, count(3, 3));
}

#[test]
fn trivy_repository_json() {
    let r = vulns(Format::Trivy, "vuln/trivy-npm.json");
    let got: Vec<_> = r.vulnerabilities.iter().map(brief).collect();
    assert_eq!(
        got,
        [(
            "CVE-2019-11358",
            "jquery",
            Severity::Medium,
            Some(61),
            vec!["3.4.0"]
        )]
    );
    assert_eq!(
        r.vulnerabilities[0].purl.as_deref(),
        Some("pkg:npm/jquery@3.3.9")
    );
}

#[test]
fn osv_scanner_group_max_severity() {
    let r = vulns(Format::Osv, "vuln/osv-scanner-max-severity.json");
    let got: Vec<_> = r.vulnerabilities.iter().map(brief).collect();
    assert_eq!(
        got,
        [("OSV-1", "mine1", Severity::Critical, Some(90), vec![])]
    );
    assert_eq!(r.totals().critical, count(1, 0));
}

#[test]
fn osv_scanner_full_record() {
    let r = vulns(Format::Osv, "vuln/osv-scanner-ansi-html.json");
    let v = &r.vulnerabilities[0];
    // No group score: the record's CVSS v3.1 vector scores 7.5.
    assert_eq!(
        brief(v),
        (
            "GHSA-whgm-jr23-g3j9",
            "ansi-html",
            Severity::High,
            Some(75),
            vec!["0.0.8"]
        )
    );
    assert_eq!(v.aliases, ["CVE-2021-23424"]);
    assert_eq!(
        (v.ecosystem.as_deref(), v.purl.as_deref()),
        (Some("npm"), Some("pkg:npm/ansi-html@0.0.7"))
    );
    assert!(v.fix_available());
}

#[test]
fn osv_scanner_groups_aliased_records_into_one_finding() {
    let report = r#"{"results": [{"packages": [{
        "package": {"name": "regex", "version": "1.5.1", "ecosystem": "crates.io"},
        "vulnerabilities": [
            {"id": "GHSA-m5pq-gvj9-9vr8", "aliases": ["CVE-2022-24713"], "database_specific": {"severity": "HIGH"},
             "affected": [{"package": {"name": "regex", "ecosystem": "crates.io"},
                           "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.5.5"}]}]}]},
            {"id": "RUSTSEC-2022-0013", "aliases": ["CVE-2022-24713"],
             "affected": [{"package": {"name": "regex", "ecosystem": "crates.io"},
                           "ranges": [{"type": "GIT", "events": [{"fixed": "ae70b41d4f46641dbc45c7a4f87954aea356283e"}]}]}]},
            {"id": "GHSA-lone", "database_specific": {"severity": "MODERATE"}}
        ],
        "groups": [{"ids": ["GHSA-m5pq-gvj9-9vr8", "RUSTSEC-2022-0013"], "max_severity": ""}]
    }]}]}"#;
    let Evidence::Vulnerabilities(r) = parse(Format::Osv, report.as_bytes()).unwrap() else {
        panic!()
    };
    let got: Vec<_> = r.vulnerabilities.iter().map(brief).collect();
    assert_eq!(
        got,
        [
            ("GHSA-lone", "regex", Severity::Medium, None, vec![]),
            (
                "GHSA-m5pq-gvj9-9vr8",
                "regex",
                Severity::High,
                None,
                vec!["1.5.5"]
            ),
        ]
    );
    assert_eq!(
        r.vulnerabilities[1].aliases,
        ["CVE-2022-24713", "RUSTSEC-2022-0013"]
    );
}

#[test]
fn cyclonedx_vulnerabilities() {
    let s = sbom(Format::Cyclonedx, "vuln/cyclonedx-vex.json");
    let v = s.vulnerabilities.as_ref().unwrap();
    let got: Vec<_> = v.iter().map(brief).collect();
    assert_eq!(
        got,
        [
            (
                "CVE-2021-23337",
                "lodash",
                Severity::High,
                Some(72),
                vec!["4.17.21"]
            ),
            // Only a vector: CVSS v3.1 computes 9.8.
            (
                "CVE-2021-44906",
                "minimist",
                Severity::Critical,
                Some(98),
                vec![]
            ),
            (
                "GHSA-xxxx-made-up",
                "pkg:npm/not-in-this-bom@0.1.0",
                Severity::Low,
                None,
                vec![]
            ),
        ]
    );
    assert_eq!(v[0].aliases, ["GHSA-35jh-r3h4-6jhm"]);
    assert_eq!(
        v[0].cvss.as_ref().unwrap().vector.as_deref(),
        Some("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H")
    );
    let summary = Summary::of([&Evidence::Sbom(s.clone())]);
    let t = summary.vulnerabilities.unwrap();
    assert_eq!(
        (t.total, t.critical, t.high, t.low),
        (3, count(1, 0), count(1, 1), count(1, 0))
    );
    assert_eq!(
        summary
            .licences
            .unwrap()
            .without_licence_names
            .into_iter()
            .collect::<Vec<_>>(),
        ["minimist@1.2.5"]
    );
}

#[test]
fn npm_sbom_cyclonedx_1_5() {
    let s = sbom(Format::Cyclonedx, "sbom/npm-cyclonedx-1.5.json");
    assert_eq!(
        (s.format, s.spec_version.as_str(), s.components.len()),
        (SbomFormat::Cyclonedx, "1.5", 16)
    );
    assert_eq!(s.vulnerabilities, None);
    let jszip = s.components.iter().find(|c| c.name == "jszip").unwrap();
    assert_eq!(jszip.licence.as_deref(), Some("(MIT OR GPL-3.0-or-later)"));
    assert_eq!(jszip.purl.as_deref(), Some("pkg:npm/jszip@3.10.1"));
    let t = s.licence_totals();
    assert_eq!(t.licences.len(), 7);
    assert_eq!((t.components, t.without_licence), (16, 0));
}

#[test]
fn npm_sbom_spdx_2_3() {
    let s = sbom(Format::Spdx, "sbom/npm-spdx-2.3.json");
    assert_eq!(
        (s.format, s.spec_version.as_str(), s.components.len()),
        (SbomFormat::Spdx, "SPDX-2.3", 17)
    );
    let forge = s
        .components
        .iter()
        .find(|c| c.name == "node-forge")
        .unwrap();
    assert_eq!(
        (
            forge.version.as_deref(),
            forge.purl.as_deref(),
            forge.licence.as_deref()
        ),
        (
            Some("1.3.1"),
            Some("pkg:npm/node-forge@1.3.1"),
            Some("(BSD-3-Clause OR GPL-2.0)")
        )
    );
    let t = s.licence_totals();
    assert_eq!(
        (t.components, t.licences.len(), t.without_licence),
        (17, 7, 0)
    );
}

#[test]
fn cyclonedx_py_1_6() {
    let s = sbom(Format::Cyclonedx, "sbom/cyclonedx-py-1.6.json");
    assert_eq!((s.spec_version.as_str(), s.components.len()), ("1.6", 57));
    let t = s.licence_totals();
    assert_eq!((t.licences.len(), t.without_licence), (14, 1));
    assert_eq!(
        t.without_licence_names.iter().collect::<Vec<_>>(),
        ["ply@3.11"]
    );
    // Two licence entries are both in force: AND-ed, a trove name kept as written.
    let bom = s
        .components
        .iter()
        .find(|c| c.name == "cyclonedx-bom")
        .unwrap();
    assert_eq!(
        bom.licence.as_deref(),
        Some("Apache-2.0 AND (License :: OSI Approved :: Apache Software License)")
    );
    let packaging = s.components.iter().find(|c| c.name == "packaging").unwrap();
    assert_eq!(
        packaging.licence.as_deref(),
        Some("Apache-2.0 OR BSD-2-Clause")
    );
}

#[test]
fn spdx_noassertion_and_none_are_no_licence() {
    let doc = r#"{"spdxVersion": "SPDX-2.3", "packages": [
        {"name": "a", "licenseConcluded": "NOASSERTION", "licenseDeclared": "MIT"},
        {"name": "b", "licenseConcluded": "NONE", "licenseDeclared": "NOASSERTION"},
        {"name": "c", "licenseConcluded": "Apache-2.0", "licenseDeclared": "MIT"},
        {"name": "d"}
    ]}"#;
    let Evidence::Sbom(s) = parse(Format::Spdx, doc.as_bytes()).unwrap() else {
        panic!()
    };
    let got: Vec<_> = s
        .components
        .iter()
        .map(|c| (c.name.as_str(), c.licence.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("a", Some("MIT")),
            ("b", None),
            ("c", Some("Apache-2.0")),
            ("d", None)
        ]
    );
}

#[test]
fn sniff_tells_the_formats_apart() {
    let files = [
        ("junit/pytest.xml", Format::Junit),
        ("junit/surefire.xml", Format::Junit),
        ("sarif/bandit.sarif", Format::Sarif),
        ("vuln/grype-images.json", Format::Grype),
        ("vuln/trivy-npm.json", Format::Trivy),
        ("vuln/osv-scanner-ansi-html.json", Format::Osv),
        ("sbom/npm-spdx-2.3.json", Format::Spdx),
        ("sbom/cyclonedx-py-1.6.json", Format::Cyclonedx),
    ];
    for (path, format) in files {
        assert_eq!(sniff(&bytes(path)), Some(format), "{path}");
    }
    for junk in [
        &b"[]"[..],
        b"{\"hello\": 1}",
        b"<html/>",
        b"",
        b"plain text",
    ] {
        assert_eq!(sniff(junk), None);
    }
}

#[test]
fn results_round_trip_through_json_unchanged() {
    for (format, path) in [
        (Format::Grype, "vuln/grype-images.json"),
        (Format::Cyclonedx, "vuln/cyclonedx-vex.json"),
    ] {
        let e = parse(format, &bytes(path)).unwrap();
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Evidence>(&json).unwrap(), e);
        assert_eq!(format!("{}", e.format()), format.name());
    }
}
