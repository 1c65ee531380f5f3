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

use crate::summary::TestTotals;
use crate::{EvidenceError, Format, Location, MAX_LISTED, bounded_text, first_line};
use quick_xml::Reader;
use quick_xml::errors::{Error as XmlError, IllFormedError, SyntaxError};
use quick_xml::events::{BytesStart, Event};
use serde::{Deserialize, Serialize};

/// The most `<testsuite>` elements one report may hold.
pub const MAX_SUITES: usize = 100_000;

/// How deeply elements may nest.
const MAX_DEPTH: usize = 256;

/// A JUnit report, normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestReport {
    /// The suites in document order, each with the counts of its own `<testcase>`s (a
    /// nested suite's cases count in the nested suite only).
    pub suites: Vec<TestSuite>,
    /// The first [`MAX_LISTED`] failing or erroring cases, in document order.
    pub failing: Vec<FailedCase>,
    /// How many more failing or erroring cases there are beyond `failing`.
    pub failing_unlisted: u64,
    /// Where the file's own count attributes disagree with the counted cases, and other
    /// oddities that did not stop the reading (at most [`MAX_LISTED`]).
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

/// What a `<testsuite>` or `<testsuites>` says about itself.
#[derive(Default)]
struct Claimed {
    counts: Vec<(&'static str, u64)>,
}

impl Claimed {
    /// Failures and errors claimed beyond `counted` (`[tests, failures, errors, skipped]`).
    fn unseen_failures(&self, counted: [u64; 4]) -> u64 {
        let claimed = |key: &str| self.counts.iter().find(|(k, _)| *k == key).map(|c| c.1);
        let failures = claimed("failures").unwrap_or(0);
        let errors = claimed("errors").unwrap_or(0);
        (failures.saturating_add(errors)).saturating_sub(counted[1] + counted[2])
    }
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

impl CaseSum {
    fn add(&mut self, suite: &str, class: &str, name: &str) {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for part in [suite, class, name] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        let d: [u8; 32] = h.finalize().into();
        for (i, half) in self.halves.iter_mut().enumerate() {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&d[i * 16..(i + 1) * 16]);
            *half = half.wrapping_add(u128::from_be_bytes(bytes));
        }
        self.count += 1;
    }

    fn hex(&self) -> String {
        match self.count {
            0 => String::new(),
            _ => format!("{:032x}{:032x}", self.halves[0], self.halves[1]),
        }
    }
}

impl<'a> Parser<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let mut reader = Reader::from_reader(bytes);
        // Tag names must pair up; custody reports mismatches as malformed.
        reader.config_mut().check_end_names = true;
        Parser {
            bytes,
            reader,
            mark: (0, 1),
            stack: Vec::new(),
            suites: Vec::new(),
            loose_suite: None,
            root: None,
            root_done: false,
            case: None,
            cases: CaseSum::default(),
            report: TestReport::default(),
        }
    }

    /// The 1-based line of byte offset `pos` (which only moves forward between calls,
    /// except for errors, which recount from the start once).
    fn line_at(&mut self, pos: u64) -> u64 {
        let pos = usize::try_from(pos)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        if pos < self.mark.0 {
            return 1 + count_newlines(&self.bytes[..pos]);
        }
        self.mark = (
            pos,
            self.mark.1 + count_newlines(&self.bytes[self.mark.0..pos]),
        );
        self.mark.1
    }

    fn err(&mut self, pos: u64, message: impl Into<String>) -> EvidenceError {
        let line = self.line_at(pos);
        EvidenceError::malformed(Format::Junit, Location::Line(line), message)
    }

    fn run(mut self) -> Result<TestReport, EvidenceError> {
        loop {
            let start = self.reader.buffer_position();
            let event = match self.reader.read_event() {
                Ok(e) => e,
                Err(e) => {
                    let pos = self.reader.error_position();
                    let message = self.describe(&e);
                    return Err(self.err(pos, message));
                }
            };
            match event {
                Event::Start(e) => self.open(start, &e, false)?,
                Event::Empty(e) => self.open(start, &e, true)?,
                Event::End(_) => self.close(start)?,
                Event::Text(t) => {
                    let text = t
                        .decode()
                        .map_err(|e| self.err(start, format!("text is not UTF-8: {e}")))?;
                    self.text(start, &text)?;
                }
                Event::CData(t) => {
                    let text = t
                        .decode()
                        .map_err(|e| self.err(start, format!("CDATA is not UTF-8: {e}")))?;
                    self.text(start, &text)?;
                }
                Event::GeneralRef(r) => {
                    let name = r
                        .decode()
                        .map_err(|e| self.err(start, format!("reference is not UTF-8: {e}")))?;
                    let text = match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(t) => t.to_owned(),
                            // What a DTD entity stands for could be a <failure/>: custody
                            // expands none, so it refuses the report rather than read it
                            // without what the entity hides.
                            None => {
                                return Err(self.err(
                                    start,
                                    format!(
                                        "the entity &{name}; is not one of XML's five (&amp; &lt; &gt; &quot; &apos;): custody expands no DTD entity"
                                    ),
                                ));
                            }
                        },
                        Err(e) => {
                            return Err(self.err(start, format!("bad character reference: {e}")));
                        }
                    };
                    self.text(start, &text)?;
                }
                Event::Eof => break,
                // A DOCTYPE with declarations (entities, attribute defaults) would change
                // what the elements say: refused. A bare one says nothing.
                Event::DocType(d) if d.contains(&b'[') => {
                    return Err(self.err(
                        start,
                        "the DOCTYPE declares an internal DTD subset; custody reads JUnit without DTDs (no entities, no defaults)",
                    ));
                }
                // Declarations, comments, processing instructions: nothing to read.
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
        if let Some((_, name, line)) = self.stack.pop() {
            return Err(EvidenceError::malformed(
                Format::Junit,
                Location::Line(line),
                format!("<{name}> is not closed (the file is truncated?)"),
            ));
        }
        if self.root.is_none() {
            let end = self.bytes.len() as u64;
            return Err(self.err(
                end,
                "no <testsuites> or <testsuite> element (the file is empty?)",
            ));
        }
        self.finish_root();
        Ok(self.report)
    }

    /// A person's account of a quick-xml error.
    fn describe(&self, e: &XmlError) -> String {
        let open = self.stack.last().map_or("", |(_, name, _)| name.as_str());
        match e {
            XmlError::Syntax(SyntaxError::UnclosedTag)
            | XmlError::Syntax(SyntaxError::UnclosedSingleQuotedAttributeValue)
            | XmlError::Syntax(SyntaxError::UnclosedDoubleQuotedAttributeValue) => {
                "a tag is cut off before its `>` (the file is truncated?)".to_owned()
            }
            XmlError::Syntax(s) => format!("{s} (the file is truncated?)"),
            XmlError::IllFormed(IllFormedError::MismatchedEndTag { expected, found }) => {
                format!("</{found}> closes <{expected}>")
            }
            XmlError::IllFormed(IllFormedError::UnmatchedEndTag(found)) => {
                format!("</{found}> closes nothing")
            }
            other if open.is_empty() => other.to_string(),
            other => format!("inside <{open}>: {other}"),
        }
    }

    fn open(&mut self, start: u64, e: &BytesStart<'_>, empty: bool) -> Result<(), EvidenceError> {
        let line = self.line_at(start);
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.err(start, format!("elements nest deeper than {MAX_DEPTH}")));
        }
        let local = e.local_name();
        let tag = local.as_ref();
        let parent = self.stack.last().map(|&(open, _, _)| open);
        let open = match (parent, tag) {
            (None, _) if self.root_done => {
                return Err(self.err(start, "a second element after the root element"));
            }
            (None, b"testsuites") => {
                self.root = Some((
                    attr(self, e, start, "name")?.unwrap_or_default(),
                    claims(self, e, start)?,
                ));
                Open::Suites
            }
            (None, b"testsuite") => {
                self.root = Some((String::new(), Claimed::default()));
                Open::Suite(self.new_suite(e, start, line)?)
            }
            (None, other) => {
                let other = String::from_utf8_lossy(other).into_owned();
                return Err(self.err(
                    start,
                    format!("the root element is <{other}>, expected <testsuites> or <testsuite>"),
                ));
            }
            (Some(Open::Suites | Open::Suite(_)), b"testsuite") => {
                Open::Suite(self.new_suite(e, start, line)?)
            }
            (Some(Open::Suites | Open::Suite(_)), b"testcase") => {
                let name = attr(self, e, start, "name")?
                    .ok_or_else(|| self.err(start, "<testcase> has no name attribute"))?;
                let classname = attr(self, e, start, "classname")?;
                self.case = Some(CaseState {
                    classname,
                    name,
                    outcome: Outcome::Passed,
                    message: String::new(),
                    text: None,
                });
                Open::Case
            }
            (Some(Open::Case), b"failure" | b"error" | b"skipped") => {
                let outcome = match tag {
                    b"failure" => Outcome::Failure,
                    b"error" => Outcome::Error,
                    _ => Outcome::Skipped,
                };
                let message = attr(self, e, start, "message")?;
                if let Some(case) = self.case.as_mut() {
                    // The worst verdict wins; its first element supplies the message.
                    if outcome > case.outcome {
                        case.outcome = outcome;
                        case.message = message.as_deref().map(first_line).unwrap_or_default();
                        case.text = (message.is_none() && !empty).then(String::new);
                    }
                }
                Open::Verdict(outcome)
            }
            (Some(Open::Case), b"testcase") => {
                return Err(self.err(start, "<testcase> inside <testcase>"));
            }
            _ => Open::Other,
        };
        let name = String::from_utf8_lossy(tag).into_owned();
        self.stack.push((open, name, line));
        if empty { self.close(start) } else { Ok(()) }
    }

    fn new_suite(
        &mut self,
        e: &BytesStart<'_>,
        start: u64,
        line: u64,
    ) -> Result<usize, EvidenceError> {
        if self.suites.len() >= MAX_SUITES {
            return Err(self.err(
                start,
                format!("more than {MAX_SUITES} <testsuite> elements"),
            ));
        }
        let name = attr(self, e, start, "name")?.unwrap_or_default();
        let claimed = claims(self, e, start)?;
        self.suites.push(SuiteState {
            counted: TestSuite {
                name,
                ..TestSuite::default()
            },
            deep: [0; 4],
            claimed,
            line,
        });
        Ok(self.suites.len() - 1)
    }

    fn close(&mut self, start: u64) -> Result<(), EvidenceError> {
        let Some((open, _, _)) = self.stack.pop() else {
            return Err(self.err(start, "an end tag that closes nothing"));
        };
        match open {
            Open::Case => self.finish_case(),
            Open::Suite(i) => self.finish_suite(i),
            Open::Verdict(_) => {
                if let Some(case) = self.case.as_mut() {
                    if let Some(text) = case.text.take() {
                        case.message = first_line(&text);
                    }
                }
            }
            Open::Suites | Open::Other => {}
        }
        if self.stack.is_empty() {
            self.root_done = true;
        }
        Ok(())
    }

    fn text(&mut self, start: u64, text: &str) -> Result<(), EvidenceError> {
        match self.stack.last() {
            None if !text.trim().is_empty() => {
                // Point at the text itself, not at the whitespace before it.
                let lead = (text.len() - text.trim_start().len()) as u64;
                Err(self.err(start + lead, "text outside the root element"))
            }
            Some((Open::Verdict(_), _, _)) => {
                if let Some(buf) = self.case.as_mut().and_then(|c| c.text.as_mut()) {
                    // Only the first line is kept: stop collecting once it is complete.
                    let has_line = buf.trim_start().contains('\n');
                    if !has_line && buf.len() < 4 * crate::MAX_MESSAGE_CHARS {
                        buf.push_str(text);
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Counts a finished case into the innermost enclosing suite (or the root's).
    fn finish_case(&mut self) {
        let Some(case) = self.case.take() else { return };
        let suite_index = self.stack.iter().rev().find_map(|&(o, _, _)| match o {
            Open::Suite(i) => Some(i),
            _ => None,
        });
        let index = match suite_index {
            Some(i) => i,
            None => *self.loose_suite.get_or_insert_with(|| {
                let name = self.root.as_ref().map(|r| r.0.clone()).unwrap_or_default();
                self.suites.push(SuiteState {
                    counted: TestSuite {
                        name,
                        ..TestSuite::default()
                    },
                    deep: [0; 4],
                    claimed: Claimed::default(),
                    line: 1,
                });
                self.suites.len() - 1
            }),
        };
        let slot = match case.outcome {
            Outcome::Passed => None,
            Outcome::Failure => Some(1),
            Outcome::Error => Some(2),
            Outcome::Skipped => Some(3),
        };
        let suite = &mut self.suites[index].counted;
        // A skipped case did not run: a rerun that skips it is no rerun of it.
        if case.outcome != Outcome::Skipped {
            self.cases.add(
                &suite.name,
                case.classname.as_deref().unwrap_or(""),
                &case.name,
            );
        }
        suite.tests += 1;
        match case.outcome {
            Outcome::Failure => suite.failures += 1,
            Outcome::Error => suite.errors += 1,
            Outcome::Skipped => suite.skipped += 1,
            Outcome::Passed => {}
        }
        // Every open suite (the case's and those around it) counts it for its attributes.
        for &(o, _, _) in &self.stack {
            if let Open::Suite(i) = o {
                self.suites[i].deep[0] += 1;
                if let Some(s) = slot {
                    self.suites[i].deep[s] += 1;
                }
            }
        }
        if matches!(case.outcome, Outcome::Failure | Outcome::Error) {
            if self.report.failing.len() < MAX_LISTED {
                self.report.failing.push(FailedCase {
                    suite: self.suites[index].counted.name.clone(),
                    classname: case.classname,
                    name: bounded_text(&case.name),
                    outcome: case.outcome,
                    message: case.message,
                });
            } else {
                self.report.failing_unlisted += 1;
            }
        }
    }

    fn finish_suite(&mut self, i: usize) {
        let s = &self.suites[i];
        let unseen = s.claimed.unseen_failures(s.deep);
        self.report.unseen_failures = self.report.unseen_failures.max(unseen);
        if let Some(w) = disagreement(&s.claimed, s.deep) {
            let w = format!("suite {:?} (line {}): {w}", s.counted.name, s.line);
            self.warn(w);
        }
    }

    fn finish_root(&mut self) {
        self.report.suites = self.suites.drain(..).map(|s| s.counted).collect();
        self.report.cases_digest = self.cases.hex();
        let t = self.report.totals();
        if let Some((name, claimed)) = self.root.take() {
            let unseen = claimed.unseen_failures([t.tests, t.failed, t.errored, t.skipped]);
            self.report.unseen_failures = self.report.unseen_failures.max(unseen);
            if let Some(w) = disagreement(&claimed, [t.tests, t.failed, t.errored, t.skipped]) {
                self.warn(format!("<testsuites> {name:?}: {w}"));
            }
        }
    }

    fn warn(&mut self, warning: String) {
        if self.report.warnings.len() < MAX_LISTED {
            self.report.warnings.push(warning);
        }
    }
}

/// The attribute `key` of `e`, unescaped; `None` if absent.
fn attr(
    p: &mut Parser<'_>,
    e: &BytesStart<'_>,
    start: u64,
    key: &str,
) -> Result<Option<String>, EvidenceError> {
    match e.try_get_attribute(key) {
        Ok(None) => Ok(None),
        Ok(Some(a)) => match a.normalized_value(quick_xml::XmlVersion::Implicit1_0) {
            Ok(v) => Ok(Some(v.into_owned())),
            Err(err) => Err(p.err(start, format!("attribute {key}: {err}"))),
        },
        Err(err) => Err(p.err(start, format!("bad attributes: {err}"))),
    }
}

/// The count attributes a suite element carries, as written.
fn claims(p: &mut Parser<'_>, e: &BytesStart<'_>, start: u64) -> Result<Claimed, EvidenceError> {
    let mut claimed = Claimed::default();
    for key in ["tests", "failures", "errors", "skipped"] {
        if let Some(v) = attr(p, e, start, key)? {
            let n = v.trim().parse::<u64>().map_err(|_| {
                p.err(
                    start,
                    format!("the {key} attribute {v:?} is not a count of test cases"),
                )
            })?;
            claimed.counts.push((key, n));
        }
    }
    Ok(claimed)
}

/// How the claimed counts differ from `[tests, failures, errors, skipped]` counted, if
/// they do.
fn disagreement(claimed: &Claimed, counted: [u64; 4]) -> Option<String> {
    let mut diffs = Vec::new();
    for (key, value) in &claimed.counts {
        let i = match *key {
            "tests" => 0,
            "failures" => 1,
            "errors" => 2,
            _ => 3,
        };
        if *value != counted[i] {
            diffs.push(format!("{key}={value} but {} counted", counted[i]));
        }
    }
    (!diffs.is_empty()).then(|| {
        format!(
            "its attributes disagree with its <testcase> elements ({}); the counted figures stand",
            diffs.join(", ")
        )
    })
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}
