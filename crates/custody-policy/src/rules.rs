//! What an environment's evidence must *say*: rules over the content of test reports,
//! static analysis, vulnerability scans and SBOMs, as `custody.toml` declares them.
//!
//! ```toml
//! [[environment]]
//! name = "production"
//! evidence = ["test-results", "vulnerability-scan", "sbom"]
//! standing = "deny"          # or "warn": what the deploy gate does when evidence
//!                            # recorded after certification breaks a rule
//! reproducible = 2           # independent builders that must agree on each digest
//!
//! [environment.tests]
//! min_tests = 100            # test cases counted in its reports (default 1)
//! allow_failures = false     # (default)
//!
//! [environment.static_analysis]
//! max_error = 0              # (default); max_warning, max_note: no limit unless given
//!
//! [environment.vulnerabilities]
//! max_severity = "medium"    # the worst allowed (default "high": no critical ones)
//! fixable_only = true        # only findings with a known fix count (default)
//! unknown_as = "high"        # how a finding without a severity is judged (default)
//! max_age = "24h"            # how old the newest scan may be at promotion
//!
//! [environment.licences]
//! allow = ["MIT", "Apache-2.0", "BSD-3-Clause"]
//! deny = ["GPL-3.0-only"]
//! allow_unknown = false      # (default): no licence, or not SPDX, is denied
//! ```
//!
//! An environment that requires evidence reads it even without these tables: the
//! defaults above apply to every report custody has read (a test report must count at
//! least one case and no failure, static analysis no error, a scan no fixable critical
//! vulnerability); licences need lists, so they are judged only when a table gives them.
//! A table makes its rule explicit: its artifacts must then carry a report of that kind
//! that custody read.

use custody_evidence::licence::LicenceRules;
use custody_evidence::vuln::Severity;

use crate::duration::Span;

/// What test reports must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRule {
    /// Test cases the artifact's reports must count, at least.
    pub min_tests: u64,
    /// Whether failing or erroring cases are allowed.
    pub allow_failures: bool,
}

impl Default for TestRule {
    fn default() -> Self {
        TestRule {
            min_tests: 1,
            allow_failures: false,
        }
    }
}

/// The most static-analysis results allowed per SARIF level (`None`: no limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRule {
    /// Level `error`.
    pub max_error: Option<u64>,
    /// Level `warning`.
    pub max_warning: Option<u64>,
    /// Level `note`.
    pub max_note: Option<u64>,
}

impl Default for FindingRule {
    fn default() -> Self {
        FindingRule {
            max_error: Some(0),
            max_warning: None,
            max_note: None,
        }
    }
}

impl FindingRule {
    /// The limits, by level name: `error`, `warning`, `note`.
    pub fn limits(&self) -> [(&'static str, Option<u64>); 3] {
        [
            ("error", self.max_error),
            ("warning", self.max_warning),
            ("note", self.max_note),
        ]
    }
}

/// Which vulnerabilities block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VulnerabilityRule {
    /// The worst severity allowed (`None`: none at all, `"none"` in the file).
    pub max_severity: Option<Severity>,
    /// Whether only findings with a known fixed version count.
    pub fixable_only: bool,
    /// How a finding without a severity is judged.
    pub unknown_as: Severity,
    /// How old the newest scan may be at promotion.
    pub max_age: Option<Span>,
}

impl Default for VulnerabilityRule {
    fn default() -> Self {
        VulnerabilityRule {
            max_severity: Some(Severity::High),
            fixable_only: true,
            unknown_as: Severity::High,
            max_age: None,
        }
    }
}

impl VulnerabilityRule {
    /// Whether a finding of `severity`, fixable or not, counts against the rule.
    pub fn counts(&self, severity: Severity, fixable: bool) -> bool {
        let severity = if severity == Severity::Unknown {
            self.unknown_as
        } else {
            severity
        };
        // `Severity` orders from most to least severe: Critical < High < …
        let above = self.max_severity.is_none_or(|max| severity < max);
        above && (fixable || !self.fixable_only)
    }

    /// The rule in words: "above high, with a fix".
    pub fn describe(&self) -> String {
        let above = match self.max_severity {
            None => "of any severity".to_owned(),
            Some(max) => format!("above {}", severity_name(max)),
        };
        if self.fixable_only {
            format!("{above} with a known fix")
        } else {
            above
        }
    }
}

/// A severity's lowercase name.
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
        Severity::Unknown => "unknown",
    }
}

/// Which licences pass: SPDX allow and deny lists (see `custody_evidence::licence`).
#[derive(Debug, Clone)]
pub struct LicenceRule {
    /// The lists, compiled.
    pub rules: LicenceRules,
    /// The allow list as written (`None`: every licence not denied).
    pub allow: Option<Vec<String>>,
    /// The deny list as written.
    pub deny: Vec<String>,
    /// Whether no licence, or one that is not SPDX, passes.
    pub allow_unknown: bool,
}

/// What the deploy gate does when a certified release's evidence rules fail later (a new
/// scan, an exception that expired, a tightened policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StandingMode {
    /// It denies the release (the default).
    #[default]
    Deny,
    /// It allows it, saying why it would not.
    Warn,
}

/// An environment's evidence rules, as compiled. `None`: the rule is not given (its
/// default applies to what custody read, see the module doc).
#[derive(Debug, Clone, Default)]
pub struct EvidenceRules {
    /// `[environment.tests]`.
    pub tests: Option<TestRule>,
    /// `[environment.static_analysis]`.
    pub static_analysis: Option<FindingRule>,
    /// `[environment.vulnerabilities]`.
    pub vulnerabilities: Option<VulnerabilityRule>,
    /// `[environment.licences]`.
    pub licences: Option<LicenceRule>,
    /// Distinct trusted builders whose provenance must agree on each artifact's digest.
    pub reproducible: Option<u32>,
    /// What the deploy gate does when the evidence rules fail after certification.
    pub standing: StandingMode,
}

impl EvidenceRules {
    /// The vulnerability rule in force: the one given, else the default.
    pub fn vulnerability_rule(&self) -> VulnerabilityRule {
        self.vulnerabilities.clone().unwrap_or_default()
    }
}
