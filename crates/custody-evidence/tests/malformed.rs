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
