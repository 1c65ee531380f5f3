//! The totals a promotion gate reads, folded from any number of reports.
//!
//! Folding is a few additions per finding (and one set insertion per distinct licence),
//! so summarising a handful of reports costs microseconds; the bench `summary` keeps it
//! so. Every type here is plain integers and sorted sets: deterministic to serialise.

use crate::Evidence;
use crate::MAX_LISTED;
use crate::junit::TestReport;
use crate::sarif::{FindingReport, Level};
use crate::sbom::Component;
use crate::vuln::{Severity, Vulnerability};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Totals over some reports; a section is `None` when no report of that kind was given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// From JUnit reports.
    pub tests: Option<TestTotals>,
    /// From SARIF reports.
    pub findings: Option<FindingTotals>,
    /// From vulnerability scans, and CycloneDX documents with `vulnerabilities`.
    pub vulnerabilities: Option<VulnerabilityTotals>,
    /// From SBOMs.
    pub licences: Option<LicenceTotals>,
}

impl Summary {
    /// The totals over `evidence`.
    pub fn of<'a>(evidence: impl IntoIterator<Item = &'a Evidence>) -> Summary {
        let mut s = Summary::default();
        for e in evidence {
            s.add(e);
        }
        s
    }

    /// Adds one report.
    pub fn add(&mut self, evidence: &Evidence) {
        match evidence {
            Evidence::Tests(r) => self
                .tests
                .get_or_insert_with(Default::default)
                .add_report(r),
            Evidence::Findings(r) => self
                .findings
                .get_or_insert_with(Default::default)
                .add_report(r),
            Evidence::Vulnerabilities(r) => {
                self.vulnerabilities
                    .get_or_insert_with(Default::default)
                    .add(&r.vulnerabilities);
            }
            Evidence::Sbom(s) => {
                self.licences
                    .get_or_insert_with(Default::default)
                    .add(&s.components);
                if let Some(v) = &s.vulnerabilities {
                    self.vulnerabilities
                        .get_or_insert_with(Default::default)
                        .add(v);
                }
            }
        }
    }
}

/// Test cases counted over JUnit reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestTotals {
    /// Suites.
    pub suites: u64,
    /// Test cases.
    pub tests: u64,
    /// Of which passed.
    pub passed: u64,
    /// Of which failed.
    pub failed: u64,
    /// Of which errored.
    pub errored: u64,
    /// Of which were skipped.
    pub skipped: u64,
}

impl TestTotals {
    pub(crate) fn add_report(&mut self, r: &TestReport) {
        for s in &r.suites {
            self.suites += 1;
            self.tests += s.tests;
            self.failed += s.failures;
            self.errored += s.errors;
            self.skipped += s.skipped;
            self.passed += s.tests.saturating_sub(s.failures + s.errors + s.skipped);
        }
        // Failures the report claims without the cases: failed tests all the same.
        self.tests += r.unseen_failures;
        self.failed += r.unseen_failures;
    }
}

/// SARIF results per level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingTotals {
    /// All results.
    pub total: u64,
    /// Level `error`.
    pub error: u64,
    /// Level `warning`.
    pub warning: u64,
    /// Level `note`.
    pub note: u64,
    /// Level `none`.
    pub none: u64,
}

impl FindingTotals {
    pub(crate) fn add_report(&mut self, r: &FindingReport) {
        for f in &r.findings {
            self.total += 1;
            match f.level {
                Level::Error => self.error += 1,
                Level::Warning => self.warning += 1,
                Level::Note => self.note += 1,
                Level::None => self.none += 1,
            }
        }
    }
}

/// Vulnerabilities of one severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCount {
    /// All of them.
    pub total: u64,
    /// Those with a known fixed version.
    pub with_fix: u64,
    /// Those without one.
    pub without_fix: u64,
}

/// Vulnerabilities per severity, with and without a fix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VulnerabilityTotals {
    /// All findings.
    pub total: u64,
    /// Critical.
    pub critical: SeverityCount,
    /// High.
    pub high: SeverityCount,
    /// Medium.
    pub medium: SeverityCount,
    /// Low.
    pub low: SeverityCount,
    /// Unknown.
    pub unknown: SeverityCount,
}

impl VulnerabilityTotals {
    pub(crate) fn add(&mut self, list: &[Vulnerability]) {
        for v in list {
            self.total += 1;
            let count = match v.severity {
                Severity::Critical => &mut self.critical,
                Severity::High => &mut self.high,
                Severity::Medium => &mut self.medium,
                Severity::Low => &mut self.low,
                Severity::Unknown => &mut self.unknown,
            };
            count.total += 1;
            if v.fix_available() {
                count.with_fix += 1;
            } else {
                count.without_fix += 1;
            }
        }
    }
}

/// Licences found in SBOMs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenceTotals {
    /// Components.
    pub components: u64,
    /// The distinct licence expressions, sorted.
    pub licences: BTreeSet<String>,
    /// Components without a licence.
    pub without_licence: u64,
    /// The first [`MAX_LISTED`] of those (name@version), sorted.
    pub without_licence_names: BTreeSet<String>,
}

impl LicenceTotals {
    pub(crate) fn add(&mut self, components: &[Component]) {
        for c in components {
            self.components += 1;
            match &c.licence {
                Some(l) => {
                    if !self.licences.contains(l) {
                        self.licences.insert(l.clone());
                    }
                }
                None => {
                    self.without_licence += 1;
                    let name = match &c.version {
                        Some(v) => format!("{}@{v}", c.name),
                        None => c.name.clone(),
                    };
                    self.without_licence_names.insert(name);
                    // Keep the smallest names, whatever order the components came in.
                    if self.without_licence_names.len() > MAX_LISTED {
                        self.without_licence_names.pop_last();
                    }
                }
            }
        }
    }
}
