//! Malformed JSON reports refused with the JSON path of the problem: not the format,
//! wrong types, truncated, oversized, too many items.

#![allow(clippy::unwrap_used, reason = "test code")]

use custody_evidence::{EvidenceError, Format, Location, MAX_INPUT_BYTES, parse, parse_reader};

fn bytes(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/testdata/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The JSON path of a refusal, and its whole message.
fn refused(format: Format, json: &str) -> (String, String) {
    match parse(format, json.as_bytes()) {
        Err(e @ EvidenceError::Malformed { .. }) => match e.location() {
            Some(Location::JsonPath(p)) => (p.clone(), e.to_string()),
            other => panic!("no path in {e}: {other:?}"),
        },
        other => panic!("{json}: accepted or wrong error: {other:?}"),
    }
}

#[test]
fn not_an_sbom_is_refused() {
    assert_eq!(refused(Format::Cyclonedx, "[]").0, "$");
    let (path, msg) = refused(Format::Cyclonedx, r#"{"hello": "world"}"#);
    assert_eq!(path, "$");
    assert!(msg.contains("missing field `bomFormat`"), "{msg}");
    assert_eq!(
        refused(
            Format::Cyclonedx,
            r#"{"bomFormat": "SPDX", "specVersion": "1.5"}"#
        )
        .0,
        "$.bomFormat"
    );
    assert_eq!(
        refused(
            Format::Cyclonedx,
            r#"{"bomFormat": "CycloneDX", "specVersion": "1.3"}"#
        )
        .0,
        "$.specVersion"
    );
    assert_eq!(refused(Format::Spdx, "[]").0, "$");
    assert!(
        refused(Format::Spdx, r#"{"hello": "world"}"#)
            .1
            .contains("missing field `spdxVersion`")
    );
    assert_eq!(
        refused(Format::Spdx, r#"{"spdxVersion": "SPDX-3.0"}"#).0,
        "$.spdxVersion"
    );
}

#[test]
fn wrong_types_are_refused_at_their_path() {
    let cdx = r#"{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [
        {"name": "a", "licenses": [{"license": {"id": "MIT"}}]},
        {"name": "b", "licenses": ["MIT"]}]}"#;
    let (path, msg) = refused(Format::Cyclonedx, cdx);
    assert_eq!(path, "$.components[1].licenses[0]");
    assert!(
        msg.starts_with("cyclonedx: $.components[1].licenses[0]: ")
            && msg.contains("expected an object"),
        "{msg}"
    );
    let cases: &[(Format, &str, &str)] = &[
        (
            Format::Cyclonedx,
            r#"{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": {}}"#,
            "$.components",
        ),
        (
            Format::Cyclonedx,
            r#"{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"version": "1"}]}"#,
            "$.components[0]",
        ),
        (
            Format::Cyclonedx,
            r#"{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"name": "a", "bom-ref": 7}]}"#,
            "$.components[0]['bom-ref']",
        ),
        (
            Format::Sarif,
            r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"}, "level": "fatal"}]}]}"#,
            "$.runs[0].results[0].level",
        ),
        (
            Format::Sarif,
            r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"level": "error"}]}]}"#,
            "$.runs[0].results[0]",
        ),
        (
            Format::Sarif,
            r#"{"version": "2.0.0", "runs": []}"#,
            "$.version",
        ),
        (Format::Sarif, r#"{"version": "2.1.0"}"#, "$"),
        (Format::Grype, r#"{"matches": {}}"#, "$.matches"),
        (
            Format::Grype,
            r#"{"matches": [{"vulnerability": {"id": "X", "cvss": [{"metrics": {"baseScore": "high"}}]}, "artifact": {"name": "a"}}]}"#,
            "$.matches[0].vulnerability.cvss[0].metrics.baseScore",
        ),
        (
            Format::Trivy,
            r#"{"SchemaVersion": 1, "Results": []}"#,
            "$.SchemaVersion",
        ),
        (
            Format::Trivy,
            r#"{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{"VulnerabilityID": "X"}]}]}"#,
            "$.Results[0].Vulnerabilities[0]",
        ),
        (
            Format::Osv,
            r#"{"results": [{"packages": [{"package": {"name": 3}}]}]}"#,
            "$.results[0].packages[0].package.name",
        ),
        (Format::Osv, r#"{}"#, "$"),
    ];
    for (format, json, want) in cases {
        assert_eq!(&refused(*format, json).0, want, "{format}: {json}");
    }
}

#[test]
fn truncated_json_is_refused_where_it_stops() {
    let full = String::from_utf8(bytes("sbom/npm-cyclonedx-1.5.json")).unwrap();
    let cut = &full[..full.find("\"name\": \"jszip\"").unwrap() + 10];
    let (path, msg) = refused(Format::Cyclonedx, cut);
    assert!(path.starts_with("$.components["), "{path}");
    assert!(
        msg.contains("EOF while parsing") && msg.contains("truncated"),
        "{msg}"
    );
    let (path, msg) = refused(
        Format::Sarif,
        r#"{"version": "2.1.0", "runs": []} trailing"#,
    );
    assert_eq!(path, "$");
    assert!(msg.contains("trailing"), "{msg}");
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let reader = std::io::Read::take(std::io::repeat(b' '), MAX_INPUT_BYTES + 10);
    let err = parse_reader(Format::Spdx, reader).unwrap_err();
    assert!(
        matches!(err, EvidenceError::TooLarge { size, .. } if size == MAX_INPUT_BYTES + 1),
        "{err}"
    );
    assert_eq!(err.location(), Some(&Location::Input));
    assert!(err.to_string().starts_with("spdx: input: "), "{err}");
}

#[test]
fn lists_over_the_item_bound_are_refused() {
    let ids = vec!["\"a\""; custody_evidence::MAX_ITEMS + 1].join(",");
    let json = format!(
        r#"{{"results": [{{"packages": [{{"package": {{"name": "p"}}, "groups": [{{"ids": [{ids}]}}]}}]}}]}}"#
    );
    let (path, msg) = refused(Format::Osv, &json);
    assert_eq!(path, "$.results[0].packages[0].groups[0].ids");
    assert!(msg.contains("more than 1000000 items"), "{msg}");
}

/// A finding whose severity cannot be read is refused, naming where: were it read as
/// unknown, a critical one would pass a rule that lets unknown through.
#[test]
fn severities_and_scores_no_scanner_writes_are_refused() {
    let trivy = |severity: &str, cvss: &str| {
        format!(
            r#"{{"SchemaVersion": 2, "Results": [{{"Target": "t", "Vulnerabilities": [{{"VulnerabilityID": "CVE-1",
            "PkgName": "p", "Severity": "{severity}"{cvss}}}]}}]}}"#
        )
    };
    for severity in ["SEVERE", "CRIT", "9.8"] {
        let (path, msg) = refused(Format::Trivy, &trivy(severity, ""));
        assert_eq!(path, "$.Results[0].Vulnerabilities[0]", "{msg}");
        assert!(
            msg.contains(&format!(
                "the severity {severity:?} is not one custody reads"
            )),
            "{msg}"
        );
    }
    let (path, msg) = refused(
        Format::Trivy,
        &trivy(
            "LOW",
            r#", "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/broken"}}"#,
        ),
    );
    assert_eq!(path, "$.Results[0].Vulnerabilities[0]");
    assert!(msg.contains("does not parse"), "{msg}");
    let (_, msg) = refused(
        Format::Trivy,
        &trivy("LOW", r#", "CVSS": {"nvd": {"V3Score": 11.5}}"#),
    );
    assert!(msg.contains("is not between 0 and 10"), "{msg}");
    // The labels that say "no severity" read as unknown, as before.
    for severity in ["UNKNOWN", "", "none"] {
        parse(Format::Trivy, trivy(severity, "").as_bytes()).unwrap();
    }
    // OSV-Scanner's group score must be a score.
    for score in ["CRITICAL", "99", "inf", "NaN", "9,8"] {
        let osv = format!(
            r#"{{"results": [{{"packages": [{{"package": {{"name": "p", "version": "1", "ecosystem": "npm"}},
            "vulnerabilities": [{{"id": "GHSA-1"}}], "groups": [{{"ids": ["GHSA-1"], "max_severity": "{score}"}}]}}]}}]}}"#
        );
        let (path, msg) = refused(Format::Osv, &osv);
        assert_eq!(path, "$.results[0].packages[0] (GHSA-1)", "{msg}");
        assert!(msg.contains("is not a CVSS score"), "{msg}");
    }
}

/// A CycloneDX finding rated by several sources takes the worst rating, whatever the order.
#[test]
fn the_worst_of_several_ratings_counts() {
    for ratings in [
        r#"[{"severity": "critical"}, {"severity": "low"}]"#,
        r#"[{"severity": "low"}, {"severity": "critical"}]"#,
    ] {
        let doc = format!(
            r#"{{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{{"name": "a", "bom-ref": "a"}}],
            "vulnerabilities": [{{"id": "CVE-1", "ratings": {ratings}, "affects": [{{"ref": "a"}}]}}]}}"#
        );
        let Ok(custody_evidence::Evidence::Sbom(s)) = parse(Format::Cyclonedx, doc.as_bytes())
        else {
            panic!("{doc}")
        };
        let v = &s.vulnerabilities.unwrap()[0];
        assert_eq!(
            v.severity,
            custody_evidence::vuln::Severity::Critical,
            "{ratings}"
        );
    }
}

/// A SARIF log in which no tool ran, or a run whose tool did not run (no `results`), says
/// nothing: refused, so it can never stand where a run that found something stood. A run
/// that found nothing has an empty `results`.
#[test]
fn a_sarif_log_that_says_nothing_is_refused() {
    let (path, _) = refused(Format::Sarif, r#"{"version": "2.1.0", "runs": []}"#);
    assert_eq!(path, "$.runs");
    for results in ["", r#", "results": null"#] {
        let log = format!(
            r#"{{"version": "2.1.0", "runs": [{{"tool": {{"driver": {{"name": "eslint"}}}}{results}}}]}}"#
        );
        let (path, msg) = refused(Format::Sarif, &log);
        assert_eq!(path, "$.runs[0].results");
        assert!(msg.contains("eslint did not run"), "{msg}");
    }
    parse(
        Format::Sarif,
        br#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "eslint"}}, "results": []}]}"#,
    )
    .unwrap();
}

/// A UTF-8 byte order mark before a JSON report is no reason to refuse it.
#[test]
fn a_byte_order_mark_is_read_past() {
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(br#"{"SchemaVersion": 2, "Results": []}"#);
    parse(Format::Trivy, &bom).unwrap();
}

/// What each report says it is about: a re-scan of the same target replaces the last,
/// What each report says it is about: a re-scan of the same target replaces the last,
/// another target's does not, and a report that does not say replaces nothing.
#[test]
fn each_report_names_its_subject() {
    let subject = |format: Format, doc: &str| parse(format, doc.as_bytes()).unwrap().subject();
    assert_eq!(
        subject(
            Format::Trivy,
            r#"{"SchemaVersion": 2, "ArtifactName": "shop:1.4.2", "Results": [{"Target": "shop:1.4.2 (debian 12)"}]}"#
        ),
        "shop:1.4.2"
    );
    // A Trivy report with no result scanned nothing, whatever it names; so says nothing.
    assert_eq!(
        subject(
            Format::Trivy,
            r#"{"SchemaVersion": 2, "ArtifactName": "shop:1.4.2", "Results": []}"#
        ),
        ""
    );
    assert_eq!(subject(Format::Trivy, r#"{"SchemaVersion": 2}"#), "");
    assert_eq!(
        subject(
            Format::Grype,
            r#"{"matches": [], "source": {"type": "image", "target": {"userInput": "alpine:3.19"}}}"#
        ),
        "alpine:3.19"
    );
    assert_eq!(
        subject(
            Format::Grype,
            r#"{"matches": [], "source": {"type": "directory", "target": "./src"}}"#
        ),
        "./src"
    );
    assert_eq!(
        subject(
            Format::Osv,
            r#"{"results": [{"source": {"path": "/b/package-lock.json"}, "packages": []}, {"source": {"path": "/a/Cargo.lock"}, "packages": []}]}"#
        ),
        r#"["/a/Cargo.lock","/b/package-lock.json"]"#
    );
    assert_eq!(
        subject(
            Format::Cyclonedx,
            r#"{"bomFormat": "CycloneDX", "specVersion": "1.6", "metadata": {"component": {"name": "shop", "version": "1.4.2"}}}"#
        ),
        "shop@1.4.2"
    );
    assert_eq!(
        subject(
            Format::Spdx,
            r#"{"spdxVersion": "SPDX-2.3", "name": "shop-1.4.2"}"#
        ),
        "shop-1.4.2"
    );
    // A test report is about its suites and the very cases it ran, whatever their order:
    // two pytest runs (both suites named "pytest") of other tests are about other things.
    let junit = |cases: &str| {
        subject(
            Format::Junit,
            &format!(
                r#"<testsuites><testsuite name="pytest">{cases}</testsuite><testsuite name="empty"/></testsuites>"#
            ),
        )
    };
    let unit = junit(
        r#"<testcase classname="t.unit" name="a"/><testcase classname="t.unit" name="b"><failure/></testcase>"#,
    );
    assert!(unit.starts_with(r#"["pytest"] cases "#), "{unit}");
    assert_eq!(
        unit,
        junit(r#"<testcase classname="t.unit" name="b"/><testcase classname="t.unit" name="a"/>"#)
    );
    assert_ne!(
        unit,
        junit(r#"<testcase classname="t.integration" name="a"/>"#)
    );
    assert_eq!(junit(""), "", "a report that ran nothing says nothing");
    // A skipped case did not run: a rerun that skips the failing case is about other cases.
    assert_ne!(
        unit,
        junit(
            r#"<testcase classname="t.unit" name="a"/><testcase classname="t.unit" name="b"><skipped/></testcase>"#
        )
    );
    assert_eq!(junit(r#"<testcase name="a"><skipped/></testcase>"#), "");
    // Names are listed unambiguously: one suite named "a, b" is not suites a and b.
    assert_ne!(
        subject(
            Format::Junit,
            r#"<testsuites><testsuite name="a, b"><testcase name="x"/></testsuite></testsuites>"#
        ),
        subject(
            Format::Junit,
            r#"<testsuites><testsuite name="a"><testcase name="x"/></testsuite><testsuite name="b"><testcase name="x"/></testsuite></testsuites>"#
        ),
    );
    assert_eq!(
        subject(
            Format::Sarif,
            r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "semgrep"}}, "results": []}, {"tool": {"driver": {"name": "bandit"}}, "results": []}]}"#
        ),
        r#"["bandit","semgrep"]"#
    );
}

/// A score and a vector given together: the worse counts; a v3 vector written without its
/// prefix is read as v3.1; a score written where the vector goes is read as a score.
#[test]
fn the_worse_of_a_score_and_its_vector_counts() {
    let trivy = |cvss: &str| {
        let doc = format!(
            r#"{{"SchemaVersion": 2, "Results": [{{"Target": "t", "Vulnerabilities": [{{"VulnerabilityID": "CVE-1",
            "PkgName": "p", "Severity": "UNKNOWN", "CVSS": {{"nvd": {cvss}}}}}]}}]}}"#
        );
        let Ok(custody_evidence::Evidence::Vulnerabilities(r)) =
            parse(Format::Trivy, doc.as_bytes())
        else {
            panic!("{doc}")
        };
        r.vulnerabilities[0].severity
    };
    use custody_evidence::vuln::Severity;
    let critical = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
    assert_eq!(
        trivy(&format!(r#"{{"V3Score": 2.0, "V3Vector": "{critical}"}}"#)),
        Severity::Critical
    );
    assert_eq!(
        trivy(&format!(
            r#"{{"V3Vector": "{}"}}"#,
            critical.trim_start_matches("CVSS:3.1/")
        )),
        Severity::Critical
    );
    // A v2 vector counts by the score beside it.
    assert_eq!(
        trivy(r#"{"V3Score": 9.8, "V3Vector": "AV:N/AC:L/Au:N/C:C/I:C/A:C"}"#),
        Severity::Critical
    );
    let garbage = r#"{"SchemaVersion": 2, "Results": [{"Target": "t", "Vulnerabilities": [{"VulnerabilityID": "CVE-1",
        "PkgName": "p", "Severity": "UNKNOWN", "CVSS": {"nvd": {"V3Score": 9.8, "V3Vector": "garbage"}}}]}]}"#;
    let (path, msg) = refused(Format::Trivy, garbage);
    assert_eq!(path, "$.Results[0].Vulnerabilities[0]");
    assert!(msg.contains("neither v2 nor v3/v4"), "{msg}");
    // A v2 vector alone is scored as v2 (10.0 here).
    assert_eq!(
        trivy(r#"{"V3Vector": "AV:N/AC:L/Au:N/C:C/I:C/A:C"}"#),
        Severity::Critical
    );
    let osv_severity = |report: &str| {
        let Ok(custody_evidence::Evidence::Vulnerabilities(r)) =
            parse(Format::Osv, report.as_bytes())
        else {
            panic!("{report}")
        };
        r.vulnerabilities[0].severity
    };
    // OSV: the Ubuntu database's label.
    let ubuntu = r#"{"results": [{"packages": [{"package": {"name": "p", "version": "1", "ecosystem": "Ubuntu"},
        "vulnerabilities": [{"id": "UBUNTU-CVE-1", "severity": [{"type": "Ubuntu", "score": "critical"}]}]}]}]}"#;
    assert_eq!(osv_severity(ubuntu), Severity::Critical);
    // OSV: a score where the vector goes.
    let osv = r#"{"results": [{"packages": [{"package": {"name": "p", "version": "1", "ecosystem": "npm"},
        "vulnerabilities": [{"id": "GHSA-1", "severity": [{"type": "CVSS_V3", "score": "9.8"}]}]}]}]}"#;
    assert_eq!(osv_severity(osv), Severity::Critical);
}

/// A SARIF run whose tool did not finish says nothing.
#[test]
fn a_run_that_did_not_finish_is_refused() {
    let (path, msg) = refused(
        Format::Sarif,
        r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "bandit"}},
        "invocations": [{"executionSuccessful": false}], "results": []}]}"#,
    );
    assert_eq!(path, "$.runs[0].invocations");
    assert!(msg.contains("bandit did not finish"), "{msg}");
    for invocation in ["{}", r#"{"executionSuccessful": null}"#] {
        let log = format!(
            r#"{{"version": "2.1.0", "runs": [{{"tool": {{"driver": {{"name": "bandit"}}}}, "invocations": [{invocation}], "results": []}}]}}"#
        );
        let (_, msg) = refused(Format::Sarif, &log);
        assert!(msg.contains("whether bandit finished is unknown"), "{msg}");
    }
}

#[test]
fn bytes_that_are_not_utf8_are_refused_even_where_custody_reads_nothing() {
    // In a field no reader looks at: still not JSON any other tool would accept.
    let mut report = br#"{"bomFormat": "CycloneDX", "specVersion": "1.5", "x-junk": ""#.to_vec();
    let at = report.len();
    report.extend_from_slice(b"\xfe\xfe\"}");
    match parse(Format::Cyclonedx, &report) {
        Err(e @ EvidenceError::Malformed { .. }) => {
            assert_eq!(e.location(), Some(&Location::Input));
            assert!(
                e.to_string().contains(&format!("byte {at} is not UTF-8")),
                "{e}"
            );
            assert!(e.to_string().contains("(0xfe, on line 1;"), "{e}");
        }
        other => panic!("accepted or wrong error: {other:?}"),
    }
    // The same document in UTF-8 is read.
    let good = br#"{"bomFormat": "CycloneDX", "specVersion": "1.5", "x-junk": "\u00fe"}"#;
    assert!(parse(Format::Cyclonedx, good).is_ok());
}
