//! The raw reports: each `reports/sha256/<hex>` member must hash to its name, and every
//! report an evidence entry says custody read must be there, of the size the entry
//! recorded; a report no entry names is not one the exporter wrote. Each is then read
//! again, as custody reads reports at attach: where this custody reads it differently
//! from what the entry records, the report says so in a note (a parser may have changed
//! since: the entry records no parser version), not a failure. What guards the recorded
//! reading is custody's signed evidence statement (envelopes.rs): once an entry carries
//! one, every later entry that records reading a report must, so that one cannot be
//! removed to hide a misstated reading.
//!
//! What a decision's facts say a report reads (its test totals, findings, vulnerabilities,
//! licences, under the rules of the decision's policy and environment) is read again
//! from the report itself and must be the same, so the gates a decision replays to were
//! taken on what its evidence says, not on what the server that decided said it says.
//! Where this custody reads the report differently from the entry that named it (a parser
//! changed), a difference is a note, not a failure, as above.

use std::collections::BTreeMap;

use custody_evidence::Evidence;
use custody_policy::ReportFacts;

use super::lineage::Decided;
use super::{Check, Failure, State, fail};
use crate::attestations::sha256;
use crate::audit::format::{REPORTS, report_member};
use crate::evidence::{DSSE, ReportRead};

/// An evidence entry's claim on a report: the entry, the format it was read as, and what
/// was read.
pub(crate) struct Named {
    pub(crate) index: u64,
    pub(crate) format: String,
    pub(crate) read: ReportRead,
    /// Whether the entry carries custody's signed statement of the reading.
    pub(crate) signed: bool,
}

/// The reports named so far (by the hex of their SHA-256), the name of the last member
/// read, and the first entry with a signed statement of its reading.
#[derive(Default)]
pub(crate) struct Reports {
    named: BTreeMap<String, Vec<Named>>,
    last: Option<String>,
    signed_since: Option<u64>,
    /// What the decisions' facts say the reports read, by the hex of their SHA-256 (once
    /// the entries are all in: [`Reports::decided`]).
    decided: Option<BTreeMap<String, Vec<Decided>>>,
}

impl Reports {
    /// An entry that names the report of SHA-256 `hex` (entries come in ledger order): a
    /// failure if it carries no statement of its reading though an earlier entry did.
    pub(crate) fn expect(&mut self, hex: String, named: Named) -> Option<Failure> {
        let refused = match (named.signed, self.signed_since) {
            (true, None) => {
                self.signed_since = Some(named.index);
                None
            }
            (false, Some(first)) => Some(fail(
                Some(named.index),
                Check::Evidence,
                format!(
                    "it records reading a report but carries no evidence statement, though custody signed one for every report it read since entry {first}: the statement was removed, or custody did not write this entry"
                ),
            )),
            _ => None,
        };
        self.named.entry(hex).or_default().push(named);
        refused
    }

    /// Keeps what the decisions' facts say the reports read (called once the entries are
    /// all in; later calls change nothing).
    pub(crate) fn decided(&mut self, readings: impl FnOnce() -> BTreeMap<String, Vec<Decided>>) {
        if self.decided.is_none() {
            self.decided = Some(readings());
        }
    }
}

/// Whether `hex` is a report member's name: 64 lowercase hex digits.
fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl State {
    /// One raw report member.
    pub(super) fn report_file(&mut self, name: &str, bytes: &[u8]) {
        let hex = name.strip_prefix(REPORTS).unwrap_or(name).to_owned();
        let failures = &mut self.report.failures;
        if !is_sha256_hex(&hex) {
            failures.push(fail(
                None,
                Check::Format,
                format!("{name}: not a report's name ({REPORTS} and the 64 lowercase hex digits of its SHA-256)"),
            ));
            return;
        }
        match &self.reports.last {
            Some(last) if *last == hex => {
                failures.push(fail(
                    None,
                    Check::Format,
                    format!("{name} is in the bundle twice"),
                ));
                return;
            }
            // Out of place, but read like any other (its entries are not told it is gone),
            // and the next compared with it: one report moved is one failure.
            Some(last) if *last > hex => failures.push(fail(
                None,
                Check::Format,
                format!(
                    "{name} comes after {}: the reports are not in ascending order of their names",
                    report_member(last)
                ),
            )),
            _ => {}
        }
        self.reports.last = Some(hex.clone());
        let computed = sha256(bytes).hex();
        let named = self.reports.named.remove(&hex).unwrap_or_default();
        let first = named.first().map(|n| n.index);
        if computed != hex {
            // The decisions that read it cannot be confirmed: it was altered (failed here).
            self.decided_unread(&hex, "which the bundle holds altered");
            let failures = &mut self.report.failures;
            failures.push(fail(
                first,
                Check::Report,
                format!(
                    "{name}: its bytes hash to sha256:{computed}, not the digest it is named by: the report was altered, or put under another's name"
                ),
            ));
            return;
        }
        if named.is_empty() {
            failures.push(fail(
                None,
                Check::Report,
                format!(
                    "{name}: no verified evidence entry in the bundle names this report, and an export carries only the reports its entries name: the entry that named it was removed or altered, or the report was added"
                ),
            ));
            return;
        }
        self.report.checked.reports += 1;
        let size = bytes.len() as u64;
        // The report as read in each format, for the decisions' facts below; and whether
        // this custody reads it otherwise than an entry recorded (a parser changed).
        let mut read: Vec<(String, Option<Evidence>)> = Vec::new();
        let mut drifted = false;
        for n in named {
            if n.read.size != size {
                failures.push(fail(
                    Some(n.index),
                    Check::Report,
                    format!(
                        "{name} is {size} bytes; the entry recorded a report of {}",
                        n.read.size
                    ),
                ));
                continue;
            }
            if n.format == DSSE {
                continue;
            }
            let again = match crate::evidence::parse(&[], &n.format, bytes) {
                Ok(p) => {
                    if !read.iter().any(|(f, _)| *f == n.format) {
                        read.push((n.format.clone(), p.evidence));
                    }
                    p.read
                }
                Err(e) => {
                    drifted = true;
                    self.report.notes.push(format!(
                        "entry {}: this custody no longer reads its {} report sha256:{hex} ({e}); the custody that recorded it did",
                        n.index, n.format
                    ));
                    continue;
                }
            };
            if again.summary != n.read.summary || again.subject != n.read.subject {
                drifted = true;
                let said = |r: &ReportRead| {
                    serde_json::json!({"summary": r.summary, "subject": r.subject}).to_string()
                };
                self.report.notes.push(format!(
                    "entry {}: this custody reads its {} report sha256:{hex} as {}, where the entry records {} (custody's reading of {} may have changed since; or the entry does not say what was read: check its evidence statement)",
                    n.index,
                    n.format,
                    said(&again),
                    said(&n.read),
                    n.format
                ));
            }
        }
        let decided = self
            .reports
            .decided
            .as_mut()
            .and_then(|d| d.remove(&hex))
            .unwrap_or_default();
        for d in decided {
            self.decided_reading(&hex, bytes, &d, &mut read, drifted);
        }
    }

    /// The decisions that read the report `hex`, not confirmed: `why` says of the report.
    fn decided_unread(&mut self, hex: &str, why: &str) {
        let decided = self.reports.decided.as_mut().and_then(|d| d.remove(hex));
        for d in decided.unwrap_or_default() {
            self.report.checked.facts_unconfirmed += 1;
            self.report.notes.push(format!(
                "entry {}: decision {} read its {} report sha256:{hex}, {why}: what the decision says it reads is not confirmed",
                d.index, d.decision, d.facts.format
            ));
        }
    }

    /// What decision `d` says the report `hex` reads, against what it reads under the
    /// rules of the decision's policy and environment.
    fn decided_reading(
        &mut self,
        hex: &str,
        bytes: &[u8],
        d: &Decided,
        read: &mut Vec<(String, Option<Evidence>)>,
        drifted: bool,
    ) {
        // A policy the bundle does not hold, or that does not compile: the replay of the
        // decision says so.
        let Some(policy) = self
            .policies
            .by_digest(&d.policy)
            .and_then(|v| v.policy.clone())
        else {
            return;
        };
        let format = &d.facts.format;
        if !read.iter().any(|(f, _)| f == format) {
            let parsed = crate::evidence::parse(&[], format, bytes).ok();
            read.push((format.clone(), parsed.and_then(|p| p.evidence)));
        }
        let Some(evidence) = read
            .iter()
            .find(|(f, _)| f == format)
            .and_then(|(_, e)| e.as_ref())
        else {
            self.report.checked.facts_unconfirmed += 1;
            self.report.notes.push(format!(
                "entry {}: decision {} read its {format} report sha256:{hex}, which this custody does not read as {format}: what the decision says it reads is not confirmed",
                d.index, d.decision
            ));
            return;
        };
        let again =
            crate::evidence::report_facts(&policy, &d.environment, evidence, &d.facts.digest);
        if again == d.facts {
            self.report.checked.facts_rederived += 1;
            return;
        }
        let said = |f: &ReportFacts| serde_json::to_string(f).unwrap_or_default();
        let what = format!(
            "decision {} says its {format} report sha256:{hex} reads {}, where under the rules of policy {} for {} the report in the bundle reads {}",
            d.decision,
            said(&d.facts),
            d.policy,
            d.environment,
            said(&again)
        );
        if drifted {
            self.report.checked.facts_unconfirmed += 1;
            self.report.notes.push(format!(
                "entry {}: {what} (this custody reads the report otherwise than the custody that recorded it: see the note on its evidence entry)",
                d.index
            ));
        } else {
            self.report.failures.push(fail(
                Some(d.index),
                Check::Decision,
                format!("{what}: the decision was taken on a misstatement of its evidence"),
            ));
        }
    }

    /// After the last member: every report named but not in the bundle, and every
    /// decision's reading of a report the bundle does not hold (a certifying decision's
    /// facts must name the reports their entries attached: lineage.rs).
    pub(super) fn reports_done(&mut self) {
        let unread: Vec<String> = self
            .reports
            .decided
            .as_ref()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default();
        for hex in unread {
            self.decided_unread(
                &hex,
                "which is not in the bundle (a scoped bundle carries the reports of its own entries only)",
            );
        }
        for (hex, named) in std::mem::take(&mut self.reports.named) {
            for n in named {
                self.report.failures.push(fail(
                    Some(n.index),
                    Check::Report,
                    format!(
                        "the report sha256:{hex} it names is not in the bundle ({}): it was removed, or the bundle was exported by a custody that did not carry reports",
                        report_member(&hex)
                    ),
                ));
            }
        }
    }
}
