//! JUnit reports from real tools, one test per file with the exact counts, and damaged
//! ones refused at the right line.

#![allow(clippy::unwrap_used, reason = "test code")]

use custody_evidence::junit::{Outcome, TestReport};
use custody_evidence::{Evidence, EvidenceError, Format, Location, Summary, TestTotals, parse};

fn read(name: &str) -> TestReport {
    let path = format!("{}/testdata/junit/{name}", env!("CARGO_MANIFEST_DIR"));
    match parse(Format::Junit, &std::fs::read(path).unwrap()).unwrap() {
        Evidence::Tests(r) => r,
        other => panic!("not a test report: {other:?}"),
    }
}

fn totals(
    suites: u64,
    tests: u64,
    passed: u64,
    failed: u64,
    errored: u64,
    skipped: u64,
) -> TestTotals {
    TestTotals {
        suites,
        tests,
        passed,
        failed,
        errored,
        skipped,
    }
}

fn refused(xml: &str) -> (u64, String) {
    match parse(Format::Junit, xml.as_bytes()) {
        Err(e @ EvidenceError::Malformed { .. }) => match e.location() {
            Some(Location::Line(n)) => (*n, e.to_string()),
            other => panic!("no line in {e}: {other:?}"),
        },
        other => panic!("accepted or wrong error: {other:?}"),
    }
}

#[test]
fn pytest_junitxml() {
    let r = read("pytest.xml");
    assert_eq!(r.totals(), totals(1, 6, 1, 2, 1, 2));
    assert_eq!(r.suites[0].name, "pytest");
    let failing: Vec<_> = r
        .failing
        .iter()
        .map(|f| (f.name.as_str(), f.outcome, f.message.as_str()))
        .collect();
    assert_eq!(
        failing,
        [
            (
                "test_refunds",
                Outcome::Failure,
                "AssertionError: refund total is wrong"
            ),
            (
                "test_ships",
                Outcome::Error,
                "failed on setup with \"RuntimeError: database is down\""
            ),
            ("test_escapes", Outcome::Failure, "assert '<&>' == '<&\">'"),
        ]
    );
    assert_eq!(r.failing[0].classname.as_deref(), Some("test_shop"));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn jest_junit_counts_the_cases_not_the_attributes() {
    // jest-junit writes tests="5" for six <testcase>s (a todo test has no <skipped/>).
    let r = read("jest-junit.xml");
    assert_eq!(r.totals(), totals(1, 6, 3, 2, 0, 1));
    assert_eq!(r.failing.len(), 2);
    assert_eq!(r.failing[0].name, "cart applies coupons");
    assert_eq!(
        r.failing[0].message,
        "Error: expect(received).toEqual(expected) // deep equality"
    );
    assert_eq!(r.failing[1].message, "TypeError: mailer is undefined");
    assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    assert!(
        r.warnings[0].contains("suite \"cart\" (line 3)")
            && r.warnings[0].contains("tests=5 but 6 counted")
    );
    assert!(r.warnings[1].starts_with("<testsuites> \"jest tests\""));
}

#[test]
fn cargo_nextest_junit() {
    let r = read("nextest.xml");
    assert_eq!(r.totals(), totals(1, 3, 1, 2, 0, 0));
    assert_eq!(r.suites[0].name, "ledgerlib");
    assert_eq!(r.failing[0].name, "tests::overflows");
    assert_eq!(
        r.failing[0].message,
        "thread 'tests::overflows' (3026) panicked at src/lib.rs:7:30"
    );
    assert!(r.warnings.is_empty());
}

#[test]
fn maven_surefire() {
    let r = read("surefire.xml");
    assert_eq!(r.totals(), totals(1, 4, 1, 1, 1, 1));
    assert_eq!(r.suites[0].name, "shop.CartTest");
    assert_eq!(
        r.failing[0].message,
        "coupon total expected:<10> but was:<9>"
    );
    assert_eq!(r.failing[1].outcome, Outcome::Error);
    assert_eq!(
        r.failing[1].message,
        "Cannot invoke \"Object.toString()\" because \"mailer\" is null"
    );
}

#[test]
fn a_plain_testsuite_root_nested_suites_and_the_worst_verdict() {
    let xml = r#"<?xml version="1.0"?>
<!-- PHPUnit nests suites -->
<testsuite name="all" tests="4">
  <testsuite name="unit">
    <testcase name="a"/>
    <testcase name="b"><skipped/><failure>expected 1
got 2</failure></testcase>
  </testsuite>
  <testsuite name="integration">
    <testcase name="c"><failure message="first"/><error message="second"/></testcase>
    <testcase name="d"><flakyFailure message="retried"/></testcase>
  </testsuite>
</testsuite>"#;
    let Evidence::Tests(r) = parse(Format::Junit, xml.as_bytes()).unwrap() else {
        panic!()
    };
    let names: Vec<_> = r
        .suites
        .iter()
        .map(|s| (s.name.as_str(), s.tests, s.failures, s.errors))
        .collect();
    assert_eq!(
        names,
        [
            ("all", 0, 0, 0),
            ("unit", 2, 1, 0),
            ("integration", 2, 0, 1)
        ]
    );
    assert_eq!(r.totals(), totals(3, 4, 2, 1, 1, 0));
    assert_eq!(
        (r.failing[0].message.as_str(), r.failing[1].message.as_str()),
        ("expected 1", "second")
    );
    // The outer suite's tests="4" counts its nested suites' cases: it agrees.
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn failures_claimed_without_their_cases_count_and_counts_must_be_numbers() {
    // tests="5" failures="3", but only one passing case: the three failures it claims
    // count as failed (a report that says it failed did), whatever cases it kept.
    let xml = r#"<testsuite name="shop" tests="5" failures="3"><testcase name="a"/></testsuite>"#;
    let Evidence::Tests(r) = parse(Format::Junit, xml.as_bytes()).unwrap() else {
        panic!("not a test report")
    };
    assert_eq!(r.unseen_failures, 3);
    assert_eq!(r.totals(), totals(1, 4, 1, 3, 0, 0));
    // Claimed by the <testsuites> root, or as errors: the same.
    let xml = r#"<testsuites errors="2"><testsuite name="s"><testcase name="a"/><testcase name="b"><error/></testcase></testsuite></testsuites>"#;
    let Evidence::Tests(r) = parse(Format::Junit, xml.as_bytes()).unwrap() else {
        panic!("not a test report")
    };
    assert_eq!(r.unseen_failures, 1);
    // Claims at or below what it holds change nothing.
    let xml =
        r#"<testsuite tests="9" failures="0"><testcase name="a"><failure/></testcase></testsuite>"#;
    let Evidence::Tests(r) = parse(Format::Junit, xml.as_bytes()).unwrap() else {
        panic!("not a test report")
    };
    assert_eq!((r.unseen_failures, r.totals().failed), (0, 1));
    // A count that is not a whole number is refused, naming the attribute and line.
    for (attr, value) in [
        ("tests", "five"),
        ("failures", "-1"),
        ("errors", "1.5"),
        ("skipped", ""),
    ] {
        let xml = format!(
            "<testsuites>\n<testsuite {attr}=\"{value}\"><testcase name=\"a\"/></testsuite></testsuites>"
        );
        let (line, message) = refused(&xml);
        assert_eq!(line, 2, "{message}");
        assert!(
            message.contains(&format!("the {attr} attribute {value:?} is not a count")),
            "{message}"
        );
    }
}

/// What a DTD entity stands for could be a `<failure/>`: custody expands none, so it
/// refuses a report that declares or uses one, naming the line.
#[test]
fn dtd_entities_are_refused() {
    let (line, message) = refused(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE testsuite [<!ENTITY f \"<failure/>\">]>\n<testsuite name=\"s\"><testcase name=\"a\">&f;</testcase></testsuite>",
    );
    assert_eq!(line, 2, "{message}");
    assert!(message.contains("internal DTD subset"), "{message}");
    let (line, message) =
        refused("<testsuite name=\"s\">\n<testcase name=\"a\">&f;</testcase></testsuite>");
    assert_eq!(line, 2, "{message}");
    assert!(
        message.contains("the entity &f; is not one of XML's five"),
        "{message}"
    );
    // A bare DOCTYPE and the five predefined entities are fine.
    parse(
        Format::Junit,
        b"<!DOCTYPE testsuite><testsuite name=\"s\"><testcase name=\"a &amp; b\"/></testsuite>",
    )
    .unwrap();
}

#[test]
fn zero_tests_is_a_valid_report() {
    for xml in [
        "<testsuites/>",
        "<testsuite name=\"empty\"></testsuite>",
        "<testsuite tests=\"3\" failures=\"0\"/>",
    ] {
        let e = parse(Format::Junit, xml.as_bytes()).unwrap();
        assert_eq!(Summary::of([&e]).tests.unwrap().tests, 0, "{xml}");
    }
}

#[test]
fn the_failing_list_is_bounded_and_the_rest_counted() {
    let cases: String = (0..150)
        .map(|i| format!("<testcase name=\"t{i}\"><failure/></testcase>"))
        .collect();
    let Evidence::Tests(r) = parse(
        Format::Junit,
        format!("<testsuite>{cases}</testsuite>").as_bytes(),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        (r.failing.len(), r.failing_unlisted, r.totals().failed),
        (100, 50, 150)
    );
}

#[test]
fn a_truncated_file_is_refused() {
    let (line, msg) = refused(r#"<testsuite name="shop" tests="1"><testcase name="a""#);
    assert_eq!(line, 1);
    assert!(
        msg.starts_with("junit: line 1: ") && msg.contains("truncated"),
        "{msg}"
    );

    let (line, msg) = refused(
        "<testsuites>\n <testsuite name=\"shop\">\n  <testcase name=\"a\">\n   <system-out>log</system-out>",
    );
    assert_eq!(
        (line, msg.as_str()),
        (
            3,
            "junit: line 3: <testcase> is not closed (the file is truncated?)"
        )
    );

    let (line, msg) = refused(
        "<testsuites>\n <testsuite name=\"shop\">\n  <testcase name=\"a\">\n   <failure>boom",
    );
    assert_eq!(
        (line, msg.as_str()),
        (
            4,
            "junit: line 4: <failure> is not closed (the file is truncated?)"
        )
    );

    let (line, msg) = refused("<testsuites>\n<testsuite name=\"s\">\n<testcase name=\"a\"/>\n");
    assert_eq!(
        (line, msg.as_str()),
        (
            2,
            "junit: line 2: <testsuite> is not closed (the file is truncated?)"
        )
    );

    let (line, msg) = refused("<testsuite><testcase name=\"a\"><failure><![CDATA[cut");
    assert_eq!(line, 1);
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn wrong_roots_and_broken_structure_are_refused() {
    let cases: &[(&str, u64, &str)] = &[
        (
            "<html><body/></html>",
            1,
            "the root element is <html>, expected <testsuites> or <testsuite>",
        ),
        ("", 1, "no <testsuites> or <testsuite> element"),
        ("  \n\n  ", 3, "no <testsuites> or <testsuite> element"),
        (
            "<?xml version=\"1.0\"?>\n<testsuite>\n<testcase classname=\"x\"/>\n</testsuite>",
            3,
            "<testcase> has no name attribute",
        ),
        (
            "<testsuite>\n<testcase name=\"a\">\n</testsuite>",
            3,
            "</testsuite> closes <testcase>",
        ),
        (
            "<testsuite/>\n<testsuite/>",
            2,
            "a second element after the root element",
        ),
        (
            "<testsuite/>\ntrailing words",
            2,
            "text outside the root element",
        ),
        (
            "<testsuite><testcase name=\"a\"><testcase name=\"b\"/></testcase></testsuite>",
            1,
            "<testcase> inside <testcase>",
        ),
    ];
    for (xml, line, needle) in cases {
        let (got, msg) = refused(xml);
        assert_eq!(got, *line, "{xml:?}: {msg}");
        assert!(msg.contains(needle), "{xml:?}: {msg}");
    }
}

#[test]
fn deep_nesting_is_refused() {
    let xml = format!("<testsuite>{}", "<a>".repeat(300));
    let (_, msg) = refused(&xml);
    assert!(msg.contains("nest deeper than 256"), "{msg}");
}
