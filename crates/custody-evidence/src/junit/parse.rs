//! Reading a JUnit document as a stream of XML events: which element is open where, each
//! case's worst verdict and message, and every refusal, each naming its line.

use quick_xml::Reader;
use quick_xml::errors::{Error as XmlError, IllFormedError, SyntaxError};
use quick_xml::events::{BytesStart, Event};

use super::{
    CaseState, CaseSum, Claimed, MAX_SUITES, Open, Outcome, Parser, SuiteState, TestReport,
};
use crate::{EvidenceError, Format, Location, first_line};

/// How deeply elements may nest.
const MAX_DEPTH: usize = 256;

impl<'a> Parser<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
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

    pub(super) fn run(mut self) -> Result<TestReport, EvidenceError> {
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
        self.suites.push(SuiteState::new(name, claimed, line));
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

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}
