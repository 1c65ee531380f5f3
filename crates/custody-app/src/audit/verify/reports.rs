//! The raw reports: each `reports/sha256/<hex>` member must hash to its name, and every
//! report an evidence entry says custody read must be there, of the size the entry
//! recorded. Each is then read again, as custody reads reports at attach: where this
//! custody reads it differently from the one that recorded the entry (a parser changed
//! since), the report says so in a note. That is not a failure: the bytes are the ones
//! that were read, since they hash to the digest the proven leaf names.

use std::collections::BTreeMap;

use super::{Check, State, fail};
use crate::attestations::sha256;
use crate::audit::format::{REPORTS, report_member};
use crate::evidence::{DSSE, ReportRead};

/// An evidence entry's claim on a report: the entry, the format it was read as, and what
/// was read.
pub(crate) struct Named {
    pub(crate) index: u64,
    pub(crate) format: String,
    pub(crate) read: ReportRead,
}

/// The reports named so far (by the hex of their SHA-256), and the last one read.
#[derive(Default)]
pub(crate) struct Reports {
    named: BTreeMap<String, Vec<Named>>,
    last: Option<String>,
}

impl Reports {
    /// An entry that names the report of SHA-256 `hex`.
    pub(crate) fn expect(&mut self, hex: String, named: Named) {
        self.named.entry(hex).or_default().push(named);
    }
}

impl State {
    /// One raw report member.
    pub(super) fn report_file(&mut self, name: &str, bytes: &[u8]) {
        let hex = name.strip_prefix(REPORTS).unwrap_or(name).to_owned();
        let failures = &mut self.report.failures;
        if self.reports.last.as_ref().is_some_and(|last| *last >= hex) {
            failures.push(fail(
                None,
                Check::Format,
                format!("{name}: the reports are not in ascending order of their digests, or one is there twice"),
            ));
            return;
        }
        self.reports.last = Some(hex.clone());
        let computed = sha256(bytes).hex();
        let named = self.reports.named.remove(&hex).unwrap_or_default();
        let first = named.first().map(|n| n.index);
        if computed != hex {
            failures.push(fail(
                first,
                Check::Report,
                format!(
                    "{name}: its bytes hash to sha256:{computed}, not the digest it is named by: the report was altered"
                ),
            ));
            return;
        }
        if named.is_empty() {
            self.report.notes.push(format!(
                "{name}: no verified evidence entry in the bundle names this report; it was not read"
            ));
            return;
        }
        self.report.checked.reports += 1;
        let size = bytes.len() as u64;
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
                Ok(p) => p.read,
                Err(e) => {
                    self.report.notes.push(format!(
                        "entry {}: this custody no longer reads its {} report sha256:{hex} ({e}); the custody that recorded it did",
                        n.index, n.format
                    ));
                    continue;
                }
            };
            if again.summary != n.read.summary || again.subject != n.read.subject {
                let said = |r: &ReportRead| {
                    serde_json::json!({"summary": r.summary, "subject": r.subject}).to_string()
                };
                self.report.notes.push(format!(
                    "entry {}: this custody reads its {} report sha256:{hex} as {}, where the custody that recorded it read {} (a parser changed since)",
                    n.index,
                    n.format,
                    said(&again),
                    said(&n.read)
                ));
            }
        }
    }

    /// After the last member: every report named but not in the bundle.
    pub(super) fn reports_done(&mut self) {
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
