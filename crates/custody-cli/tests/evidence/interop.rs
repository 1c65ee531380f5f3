//! What custody read is a statement it signs: checked by securesystemslib and
//! in-toto-attestation, naming the stored report, and refused with one changed byte.

use std::fs;

use serde_json::Value;

use super::common::*;
use super::{JUNIT_FAILING, TRIVY_CRITICAL, World};

/// What custody read is a statement it signs about the artifact: for a test report the
/// in-toto test-result predicate, which securesystemslib verifies with the attestor's
/// public key and in-toto-attestation parses strictly; for a scan custody's own evidence
/// predicate naming the stored report. A changed byte fails the Python verifier too.
#[test]
fn evidence_statements_verify_and_validate_with_the_python_references() {
    let w = World::new();
    let digest = w.build("1.0.0");
    expect_code(
        &w.attest(&digest, "junit", "test-results", JUNIT_FAILING),
        0,
    );
    expect_code(
        &w.attest(&digest, "trivy", "vulnerability-scan", TRIVY_CRITICAL),
        0,
    );
    let history: Value = serde_json::from_str(&w.ok(
        &["history", "--json", "--type", "evidence.attached"],
        "auditor",
    ))
    .unwrap();
    let events: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event"])
        .collect();
    assert_eq!(events.len(), 2, "{history:#}");
    let attestor = w.data.join("keys/attestor.pub");
    for (event, predicate_type) in events.iter().zip([
        "https://in-toto.io/attestation/test-result/v0.1",
        "https://custody.dev/evidence/v1",
    ]) {
        let envelope = w.root.join("statement.json");
        fs::write(&envelope, event["statement"].to_string()).unwrap();
        let verified = run(python_script("sslib_verify.py")
            .arg(&envelope)
            .arg("1")
            .arg(&attestor));
        expect_code(&verified, 0);
        let payload: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                event["statement"]["payload"].as_str().unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(payload["predicateType"], predicate_type);
        assert_eq!(
            payload["subject"][0]["digest"]["sha256"],
            digest.strip_prefix("sha256:").unwrap()
        );
        if predicate_type.contains("test-result") {
            let out = run(python_script("test_result_validate.py").arg(&envelope));
            expect_code(&out, 0);
            let said = stdout(&out);
            assert!(said.starts_with("FAILED\n"), "{said}");
            assert!(
                said.contains("shop.CartTest/shop.CartTest.refunds"),
                "{said}"
            );
            // The report it names is the one recorded, and can be fetched back as it was.
            let report = event["evidence"].as_str().unwrap();
            assert_eq!(
                payload["predicate"]["configuration"][0]["digest"]["sha256"],
                report.strip_prefix("sha256:").unwrap()
            );
            let back = w.root.join("back.xml");
            w.ok(
                &["report", report, "--out", back.to_str().unwrap()],
                "auditor",
            );
            assert_eq!(fs::read_to_string(&back).unwrap(), JUNIT_FAILING);
            let missing = format!("sha256:{}", "0".repeat(64));
            expect_refusal(&w.run(&["report", &missing], "auditor"), 2, "no report");
        } else {
            assert_eq!(
                payload["predicate"]["summary"]["vulnerabilities"]["critical"]["total"],
                1
            );
        }
        // One changed byte of the payload: securesystemslib refuses it.
        let mut tampered = event["statement"].clone();
        let text = tampered["payload"].as_str().unwrap().to_owned();
        let flipped = if text.starts_with('e') { "f" } else { "e" };
        tampered["payload"] = Value::String(format!("{flipped}{}", &text[1..]));
        fs::write(&envelope, tampered.to_string()).unwrap();
        expect_code(
            &run(python_script("sslib_verify.py")
                .arg(&envelope)
                .arg("1")
                .arg(&attestor)),
            REFUSED,
        );
    }
}
