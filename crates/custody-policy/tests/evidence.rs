//! The gates over what tests, static analysis and vulnerability scans say, from reports
//! real tools wrote (the evidence crate's test data) and hand-made ones: failing tests,
//! error-level results and fixable critical vulnerabilities block, each naming the
//! findings; exceptions waive a finding only while they are in force.
//!
//! Here: tests and static analysis, and evidence given as a digest alone;
//! `evidence/vulnerabilities.rs` the vulnerability gate and the exceptions that waive its
//! findings.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod fixture;
#[path = "evidence/vulnerabilities.rs"]
mod vulnerabilities;

use custody_policy::{Status, evaluate};
use fixture::reports::*;
use fixture::{HOUR, NOW, passing_facts};

#[test]
fn a_failing_test_blocks_by_default_where_evidence_is_required() {
    let (policy, k) = rules_policy("");
    let facts = passing_facts(&policy, &k, 2);
    // Facts without reports custody read (as every decision before it did): no new gate.
    let d = evaluate(&policy, &facts);
    assert!(d.allowed);
    assert!(d.gates.iter().all(|g| g.gate.name() != "tests"));

    let failing = with(
        &policy,
        facts.clone(),
        "test-results",
        &report("junit/pytest.xml"),
        NOW - HOUR,
    );
    let d = evaluate(&policy, &failing);
    fails(
        &d,
        "tests",
        &[
            "service-0",
            "3 of 6 tests failed",
            "1 with errors",
            "test_shop.test_refunds: AssertionError: refund total is wrong",
        ],
    );

    let passing = with(
        &policy,
        facts.clone(),
        "test-results",
        &junit(PASSING_JUNIT),
        NOW - HOUR,
    );
    let d = evaluate(&policy, &passing);
    assert!(d.allowed, "{d:#?}");
    assert_eq!(gate(&d, "tests").reason, "6/6 tests passed");

    // The newest report of the same tests decides: a rerun that passes replaces the
    // failure; a passing report of other tests does not hide it.
    let fail_ab = junit(
        r#"<testsuite name="pytest"><testcase classname="t" name="a"/><testcase classname="t" name="b"><failure message="flaky"/></testcase></testsuite>"#,
    );
    let pass_ab = junit(
        r#"<testsuite name="pytest"><testcase classname="t" name="b"/><testcase classname="t" name="a"/></testsuite>"#,
    );
    let flaky = with(&policy, facts.clone(), "test-results", &fail_ab, NOW - HOUR);
    fails(
        &evaluate(&policy, &flaky),
        "tests",
        &["1 of 2 tests failed"],
    );
    let rerun = with(&policy, flaky, "test-results", &pass_ab, NOW - HOUR / 2);
    assert!(evaluate(&policy, &rerun).allowed);
    let other_tests = with(
        &policy,
        failing.clone(),
        "test-results",
        &junit(PASSING_JUNIT),
        NOW - HOUR / 2,
    );
    fails(
        &evaluate(&policy, &other_tests),
        "tests",
        &["3 of 6 tests failed"],
    );
    // Newest by when it was recorded, not by where it sits in the list: an older failure
    // listed after the passing rerun does not take its place.
    let rerun_first = with(&policy, facts.clone(), "test-results", &pass_ab, NOW - HOUR);
    let listed_late = with(
        &policy,
        rerun_first,
        "test-results",
        &fail_ab,
        NOW - 2 * HOUR,
    );
    assert!(evaluate(&policy, &listed_late).allowed);
    // Errors count as failures: a report with errors alone, or as many errors as
    // failures, blocks all the same.
    for (xml, said) in [
        (
            r#"<testsuite name="s" tests="2"><testcase name="a"/><testcase name="b"><error message="boom"/></testcase></testsuite>"#,
            "1 of 2 tests failed, 1 with errors",
        ),
        (
            r#"<testsuite name="s" tests="3"><testcase name="a"/><testcase name="b"><failure message="x"/></testcase><testcase name="c"><error message="y"/></testcase></testsuite>"#,
            "2 of 3 tests failed, 1 with errors",
        ),
    ] {
        let errored = with(
            &policy,
            facts.clone(),
            "test-results",
            &junit(xml),
            NOW - HOUR,
        );
        fails(&evaluate(&policy, &errored), "tests", &[said]);
    }
    // A report with no test case is no evidence of testing.
    let empty = with(
        &policy,
        facts,
        "test-results",
        &junit(r#"<testsuite tests="3" failures="0"/>"#),
        NOW - HOUR,
    );
    fails(
        &evaluate(&policy, &empty),
        "tests",
        &["count 0 test cases run, fewer than the 1 required"],
    );
}

#[test]
fn a_newer_piece_recorded_by_its_digest_alone_does_not_hide_a_failing_report() {
    let (policy, k) = rules_policy("");
    let facts = passing_facts(&policy, &k, 1);
    let mut hidden = with(
        &policy,
        facts,
        "test-results",
        &report("junit/pytest.xml"),
        NOW - HOUR,
    );
    // A later test-results piece that came as a digest alone (nothing custody read).
    for a in &mut hidden.release.artifacts {
        a.evidence.push(custody_policy::EvidenceFacts {
            kind: "test-results".into(),
            at: NOW - HOUR / 2,
            report: None,
            read: Some(false),
        });
    }
    fails(
        &evaluate(&policy, &hidden),
        "tests",
        &["service-0", "3 of 6 tests failed"],
    );
}

#[test]
fn a_tests_table_sets_the_minimum_and_needs_a_report() {
    let (policy, k) = rules_policy("[environment.tests]\nmin_tests = 4\nallow_failures = true\n");
    let facts = passing_facts(&policy, &k, 1);
    fails(
        &evaluate(&policy, &facts),
        "tests",
        &["service-0 has no test report custody has read"],
    );
    let few = with(
        &policy,
        facts.clone(),
        "test-results",
        &junit(PASSING_JUNIT),
        NOW - HOUR,
    );
    fails(
        &evaluate(&policy, &few),
        "tests",
        &["count 3 test cases run, fewer than the 4 required"],
    );
    // Failures allowed here: pytest's 6 cases, 4 of them run (2 skipped, 3 not passing),
    // are enough.
    let pytest = with(
        &policy,
        facts,
        "test-results",
        &report("junit/pytest.xml"),
        NOW - HOUR,
    );
    assert!(evaluate(&policy, &pytest).allowed);
    // Exactly the minimum is enough.
    let (three, k) = rules_policy("[environment.tests]\nmin_tests = 3\n");
    let exactly = fresh(&three, &k, "test-results", &junit(PASSING_JUNIT));
    assert!(
        evaluate(&three, &exactly).allowed,
        "{:#?}",
        evaluate(&three, &exactly)
    );
}

#[test]
fn error_level_static_analysis_blocks_by_default_and_tables_set_limits() {
    let (policy, k) = rules_policy("");
    let facts = fresh(
        &policy,
        &k,
        "static-analysis",
        &report("sarif/bandit.sarif"),
    );
    fails(
        &evaluate(&policy, &facts),
        "static-analysis",
        &[
            "2 error-level results, more than the 0 allowed",
            "error B602 at vulnerable.py:8",
        ],
    );

    let (policy, k) =
        rules_policy("[environment.static_analysis]\nmax_error = 2\nmax_warning = 1\n");
    let facts = fresh(
        &policy,
        &k,
        "static-analysis",
        &report("sarif/bandit.sarif"),
    );
    let d = evaluate(&policy, &facts);
    fails(
        &d,
        "static-analysis",
        &[
            "2 warning-level results, more than the 1 allowed",
            // Bandit's results without a level are warnings, as SARIF says.
            "warning B301 at vulnerable.py:11",
            "warning B307 at vulnerable.py:18",
        ],
    );
    assert!(!gate(&d, "static-analysis").reason.contains("error-level"));
    assert!(
        !gate(&d, "static-analysis").reason.contains("B403"),
        "a note is no warning"
    );
}

/// A finding's example names its place as far as the report gives it, and a level at its
/// limit names none (nothing is over it).
#[test]
fn examples_name_a_findings_place_and_only_levels_over_their_limit() {
    let sarif = serde_json::json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "t"}}, "results": [
        {"ruleId": "R1", "level": "error", "message": {"text": "in a file"},
         "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a.py"}}}]},
        {"ruleId": "R2", "level": "error", "message": {"text": "at a line"},
         "locations": [{"physicalLocation": {"artifactLocation": {"uri": "b.py"}, "region": {"startLine": 7}}}]},
        {"level": "error", "message": {"text": "nowhere"}}
    ]}]});
    let sarif = custody_evidence::parse(
        custody_evidence::Format::Sarif,
        &serde_json::to_vec(&sarif).unwrap(),
    )
    .unwrap();
    let (policy, _) = rules_policy("");
    let rules = &policy.environment("production").unwrap().rules;
    let read = custody_policy::ReportFacts::read(rules, &sarif, "sha256:abcd");
    assert_eq!(
        read.findings.unwrap().examples,
        [
            // The parser orders findings; the order here is its.
            "error (no rule): nowhere",
            "error R1 at a.py: in a file",
            "error R2 at b.py:7: at a line",
        ]
    );
    // Bandit's two warnings at a limit of two: counted, no example.
    let (policy, _) =
        rules_policy("[environment.static_analysis]\nmax_error = 2\nmax_warning = 2\n");
    let rules = &policy.environment("production").unwrap().rules;
    let read =
        custody_policy::ReportFacts::read(rules, &report("sarif/bandit.sarif"), "sha256:abcd");
    let findings = read.findings.unwrap();
    assert_eq!((findings.error, findings.warning), (2, 2));
    assert!(findings.examples.is_empty(), "{:?}", findings.examples);
}

/// What custody read from a report names the report (its format and digest), and a failing
/// test by its suite, its class when it has one, and its message.
#[test]
fn facts_read_from_a_report_name_it_and_its_failing_tests() {
    let (policy, _) = rules_policy("");
    let rules = &policy.environment("production").unwrap().rules;
    let xml = r#"<testsuite name="shop"><testcase classname="" name="bare"><failure message="boom"/></testcase><testcase classname="cart.Total" name="sums"><failure message="off by one"/></testcase><testcase classname="x" name="quiet"><failure/></testcase></testsuite>"#;
    let read = custody_policy::ReportFacts::read(rules, &junit(xml), "sha256:abcd");
    assert_eq!(read.format, custody_evidence::Format::Junit.name());
    assert_eq!(read.digest, "sha256:abcd");
    // Counts by severity, each with how many have a fix.
    let vulns = custody_policy::ReportFacts::read(rules, &scan(), "sha256:abcd")
        .vulnerabilities
        .unwrap();
    assert_eq!(
        (vulns.critical.total, vulns.critical.fixable),
        (2, 1),
        "{vulns:?}"
    );
    assert_eq!((vulns.high.total, vulns.high.fixable), (1, 1), "{vulns:?}");
    // Components, those without a licence, and the distinct licences.
    let sbom = custody_policy::ReportFacts::read(
        rules,
        &sbom(&[
            ("a", Some("MIT")),
            ("b", None),
            ("c", None),
            ("d", Some("MIT")),
        ]),
        "sha256:abcd",
    )
    .licences
    .unwrap();
    assert_eq!(
        (sbom.components, sbom.without_licence, sbom.licences),
        (4, 2, 1),
        "{sbom:?}"
    );
    let failing = read.tests.unwrap().failing;
    assert_eq!(
        failing,
        [
            "shop/bare: boom",
            "shop/cart.Total.sums: off by one",
            "shop/x.quiet"
        ]
    );
}

/// Evidence given as a report's digest alone (nothing custody read) is evidence of
/// nothing: it never satisfies the environment's required evidence, and the reason says
/// to attach the report itself. Facts recorded before custody kept whether it read a
/// report still count every piece, so old decisions replay as they were decided.
#[test]
fn a_digest_alone_is_not_evidence() {
    let (policy, k) = rules_policy("");
    let legacy = passing_facts(&policy, &k, 1);
    assert!(
        evaluate(&policy, &legacy).allowed,
        "old facts replay as decided"
    );
    let mut unread = legacy.clone();
    for a in &mut unread.release.artifacts {
        for e in &mut a.evidence {
            e.read = Some(false);
        }
    }
    let d = evaluate(&policy, &unread);
    fails(
        &d,
        "evidence",
        &[
            "service-0 has no",
            "only a report's digest was given; attach the report itself",
        ],
    );
    // The same pieces, read by custody: present again. (Here they say nothing the content
    // rules read, so those rules, required here, fail closed.)
    let mut read = unread;
    for a in &mut read.release.artifacts {
        for e in &mut a.evidence {
            e.read = Some(true);
        }
    }
    let d = evaluate(&policy, &read);
    assert_eq!(gate(&d, "evidence").status, Status::Pass, "{d:#?}");
    fails(
        &d,
        "tests",
        &["artifact service-0 has no test report custody has read"],
    );
}
