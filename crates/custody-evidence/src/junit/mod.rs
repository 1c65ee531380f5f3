//! JUnit XML test results, read as a stream.
//!
//! One reader for the dialects real pipelines emit: Maven Surefire and Gradle
//! (`<testsuite>` root, `<properties>`, `<system-out>`, `<flakyFailure>`/`<rerunFailure>`),
//! pytest `--junitxml` and jest-junit (`<testsuites>` root), cargo-nextest (`<testsuites>`
//! with one `<testsuite>` per binary), and nested `<testsuite>`s (PHPUnit). Elements and
//! attributes custody does not need are ignored.
//!
//! Counting: **the `<testcase>` elements are counted, never the attributes.** A suite's
//! `tests`/`failures`/`errors`/`skipped` attributes are what the writer claims; the test
//! cases are what the file holds. When they disagree (a file cut short and repaired, a
//! hand-edited report, a tool that writes totals only) the counted figures stand and the
//! report carries a warning naming the suite, with one exception that only makes a report
//! fail: failures or errors a suite claims beyond the failing cases it holds count as
//! failed ([`TestReport::unseen_failures`]), since a report that says it failed did. A
//! count attribute that is not a whole number is refused. A case's outcome is its worst child:
//! `<error>` over `<failure>` over `<skipped>`; a case with none of them passed
//! (`<flakyFailure>` and friends record retries of a case that finally passed).
//!
//! Refused: an empty document, a root other than `<testsuites>`/`<testsuite>`, an element
//! left open at the end (a truncated file), mismatched tags, a `<testcase>` without a
//! `name`, text or a second element after the root, nesting deeper than 256 elements,
//! more than [`MAX_SUITES`] suites, a DOCTYPE with an internal subset, and a reference to
//! any entity but XML's five predefined ones (custody processes no DTD, so it refuses
//! what it would otherwise read without what the entity stands for). A file with zero test
//! cases is a valid report (whether that is acceptable is the policy's call).
//!
//! This file holds the report's types and the reader's state; `parse.rs` reads the XML
//! events (refusing what is listed above) and `count.rs` counts each case into its suites
//! and checks what the suites claim against those counts.

use crate::EvidenceError;
use crate::summary::TestTotals;
use quick_xml::Reader;
use serde::{Deserialize, Serialize};

mod count;
mod parse;

/// The most `<testsuite>` elements one report may hold.
pub const MAX_SUITES: usize = 100_000;

/// A JUnit report, normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReport {
    /// The suites in document order, each with the counts of its own `<testcase>`s (a
    /// nested suite's cases count in the nested suite only).
    pub suites: Vec<TestSuite>,
    /// The first [`MAX_LISTED`](crate::MAX_LISTED) failing or erroring cases, in document
    /// order.
    pub failing: Vec<FailedCase>,
    /// How many more failing or erroring cases there are beyond `failing`.
    pub failing_unlisted: u64,
    /// Where the file's own count attributes disagree with the counted cases, and other
    /// oddities that did not stop the reading (at most [`MAX_LISTED`](crate::MAX_LISTED)).
    pub warnings: Vec<String>,
    /// Failures and errors the file's attributes claim beyond the failing cases it holds
    /// (the most any one element claims so): counted as failed test cases.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unseen_failures: u64,
    /// Which test cases it ran, whatever their order: SHA-256 of each case's suite, class
    /// and name, summed (hex; empty when it ran none; skipped cases did not run). Two runs of the same tests have the
    /// same; a run of other tests (another pytest run, named "pytest" too) has another.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cases_digest: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One `<testsuite>`'s counted test cases.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestSuite {
    /// Its `name` attribute (empty if it has none).
    pub name: String,
    /// Test cases in it.
    pub tests: u64,
    /// Of which failed (`<failure>`).
    pub failures: u64,
    /// Of which errored (`<error>`).
    pub errors: u64,
    /// Of which were skipped (`<skipped>`).
    pub skipped: u64,
}

/// Why a case did not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It ran and passed.
    Passed,
    /// Skipped, disabled or expected to fail.
    Skipped,
    /// An assertion failed.
    Failure,
    /// It could not run or crashed (setup error, panic outside an assertion).
    Error,
}

/// A failing or erroring test case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedCase {
    /// The name of the suite it is in.
    pub suite: String,
    /// Its `classname` attribute, if any.
    pub classname: Option<String>,
    /// Its `name` attribute.
    pub name: String,
    /// `failure` or `error`.
    pub outcome: Outcome,
    /// The first line of the failure's `message` attribute, else of its text (at most
    /// [`crate::MAX_MESSAGE_CHARS`] characters); empty when it has neither.
    pub message: String,
}

impl TestReport {
    /// The totals over every suite.
    pub fn totals(&self) -> TestTotals {
        let mut t = TestTotals::default();
        t.add_report(self);
        t
    }
}

/// Parses JUnit XML.
pub fn parse(bytes: &[u8]) -> Result<TestReport, EvidenceError> {
    Parser::new(bytes).run()
}

/// An element the parser is inside of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// `<testsuites>`.
    Suites,
    /// `<testsuite>`: its index in `Parser::suites`.
    Suite(usize),
    /// `<testcase>`.
    Case,
    /// `<failure>`, `<error>` or `<skipped>` of the current case.
    Verdict(Outcome),
    /// Anything else (properties, system-out, …): ignored with its content.
    Other,
}

/// A suite while it is being read.
struct SuiteState {
    counted: TestSuite,
    /// Cases in it and in suites nested in it, to check its attributes against.
    deep: [u64; 4],
    claimed: Claimed,
    line: u64,
}

impl SuiteState {
    /// A suite named `name`, begun at `line`, with nothing counted yet.
    fn new(name: String, claimed: Claimed, line: u64) -> Self {
        SuiteState {
            counted: TestSuite {
                name,
                ..TestSuite::default()
            },
            deep: [0; 4],
            claimed,
            line,
        }
    }
}

/// What a `<testsuite>` or `<testsuites>` says about itself.
#[derive(Default)]
struct Claimed {
    counts: Vec<(&'static str, u64)>,
}

/// A case while it is being read.
struct CaseState {
    classname: Option<String>,
    name: String,
    outcome: Outcome,
    message: String,
    /// The text of the verdict element, kept until its first line is complete.
    text: Option<String>,
}

struct Parser<'a> {
    bytes: &'a [u8],
    reader: Reader<&'a [u8]>,
    /// (byte offset, line there): lines are counted incrementally, once over the input.
    mark: (usize, u64),
    stack: Vec<(Open, String, u64)>,
    suites: Vec<SuiteState>,
    /// The suite of the root `<testsuites>` for cases directly under it.
    loose_suite: Option<usize>,
    root: Option<(String, Claimed)>,
    root_done: bool,
    case: Option<CaseState>,
    cases: CaseSum,
    report: TestReport,
}

/// An order-independent digest of the cases read: each case's SHA-256, summed as two
/// 128-bit halves (wrapping). Kept as a sum, not a list, so a million cases cost nothing.
#[derive(Default)]
struct CaseSum {
    halves: [u128; 2],
    count: u64,
}
