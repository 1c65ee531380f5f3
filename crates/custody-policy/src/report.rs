//! What a report says, as a decision records it: counts for everything, and by name only
//! the findings an environment's rules could count against the release, a bounded few.
//!
//! [`ReportFacts::read`] is the one place a parsed report (`custody_evidence::Evidence`)
//! becomes facts: pure, so the application calls it while gathering a decision's facts
//! and the recorded facts then replay alone. Facts stay small whatever the report's size:
//! a 20,000-component SBOM whose licences all pass is two counts.
//!
//! The findings listed are chosen by the rules of the environment the facts are gathered
//! for (a vulnerability above the allowed severity, a licence the lists deny), so the
//! same facts evaluated under those rules decide exactly as the whole report would; under
//! other rules (a backtest) they show what those rules found then, not what new ones would.

use std::collections::HashMap;

use custody_evidence::Evidence;
use custody_evidence::junit::TestReport;
use custody_evidence::sarif::{FindingReport, Level};
use custody_evidence::sbom::Component;
use custody_evidence::vuln::{Severity, Vulnerability};
use serde::{Deserialize, Serialize};

use crate::rules::{EvidenceRules, FindingRule, LicenceRule, severity_name};

/// Findings listed by name per report and kind, at most (the rest are counted).
pub const MAX_LISTED_FINDINGS: usize = 100;
/// Failing test cases, and static-analysis results, named per report, at most.
pub const MAX_NAMED_EXAMPLES: usize = 10;
/// Packages named per denied licence, at most.
pub const MAX_PACKAGES_PER_LICENCE: usize = 10;

/// What one report says, as far as the rules care.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportFacts {
    /// The format custody read it as (`junit`, `trivy`, …, `dsse`).
    pub format: String,
    /// The report's digest (`sha256:…`), as stored.
    pub digest: String,
    /// What the report is about, as its writer names it (its suites, tools, scanned
    /// target or described component; empty when it does not say, and in facts recorded
    /// before custody kept it): a later report replaces an earlier one of the same type
    /// and format only when this is the same.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// Test results, from JUnit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<TestFacts>,
    /// Static-analysis results, from SARIF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<FindingFacts>,
    /// Vulnerabilities, from a scan or a CycloneDX document that lists them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulnerabilities: Option<VulnerabilityFacts>,
    /// Licences, from an SBOM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licences: Option<LicenceFacts>,
}

/// Test cases counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFacts {
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
    /// The first failing cases, as `suite/case: message`.
    pub failing: Vec<String>,
}

/// Static-analysis results per level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingFacts {
    /// Level `error`.
    pub error: u64,
    /// Level `warning`.
    pub warning: u64,
    /// Level `note`.
    pub note: u64,
    /// Level `none`.
    pub none: u64,
    /// A few results of each level over its limit, as `level rule at file:line: message`.
    pub examples: Vec<String>,
}

/// Vulnerabilities of one severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityCount {
    /// All of them.
    pub total: u64,
    /// Those with a known fixed version.
    pub fixable: u64,
}

/// Vulnerabilities found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VulnerabilityFacts {
    /// Critical.
    pub critical: SeverityCount,
    /// High.
    pub high: SeverityCount,
    /// Medium.
    pub medium: SeverityCount,
    /// Low.
    pub low: SeverityCount,
    /// Without a severity.
    pub unknown: SeverityCount,
    /// The findings that count under the rule, worst first (at most
    /// [`MAX_LISTED_FINDINGS`]).
    pub counted: Vec<VulnerabilityFact>,
    /// How many more count beyond `counted`.
    pub unlisted: u64,
}

/// One vulnerability in one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VulnerabilityFact {
    /// Its id (`CVE-…`, `GHSA-…`).
    pub id: String,
    /// Its other ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The package.
    pub package: String,
    /// The installed version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `critical`, `high`, `medium`, `low` or `unknown`.
    pub severity: String,
    /// The first version that fixes it, if one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_in: Option<String>,
}

/// Licences found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenceFacts {
    /// Components.
    pub components: u64,
    /// Distinct licence expressions.
    pub licences: u64,
    /// Components without a licence.
    pub without_licence: u64,
    /// Each licence the rules deny, with the packages that carry it (at most
    /// [`MAX_LISTED_FINDINGS`]).
    pub denied: Vec<LicenceFact>,
    /// How many more denied licences there are beyond `denied`.
    pub unlisted: u64,
}

/// A licence expression the rules deny, and where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenceFact {
    /// The expression as written (`None`: the packages declare none).
    pub licence: Option<String>,
    /// The packages that carry it, as `name@version` (at most
    /// [`MAX_PACKAGES_PER_LICENCE`]).
    pub packages: Vec<String>,
    /// How many more packages carry it.
    pub more_packages: u64,
}

impl ReportFacts {
    /// What `evidence` (read from the report with digest `digest`) says, as far as the
    /// environment's `rules` care.
    pub fn read(rules: &EvidenceRules, evidence: &Evidence, digest: &str) -> ReportFacts {
        let mut facts = ReportFacts {
            format: evidence.format().name().to_owned(),
            digest: digest.to_owned(),
            subject: evidence.subject(),
            ..ReportFacts::default()
        };
        match evidence {
            Evidence::Tests(r) => facts.tests = Some(tests(r)),
            Evidence::Findings(r) => {
                facts.findings = Some(findings(
                    r,
                    &rules.static_analysis.clone().unwrap_or_default(),
                ))
            }
            Evidence::Vulnerabilities(r) => {
                facts.vulnerabilities = Some(vulnerabilities(rules, &r.vulnerabilities))
            }
            Evidence::Sbom(s) => {
                facts.licences = Some(licences(rules.licences.as_ref(), &s.components));
                if let Some(v) = &s.vulnerabilities {
                    facts.vulnerabilities = Some(vulnerabilities(rules, v));
                }
            }
        }
        facts
    }
}

fn tests(r: &TestReport) -> TestFacts {
    let t = r.totals();
    TestFacts {
        tests: t.tests,
        passed: t.passed,
        failed: t.failed,
        errored: t.errored,
        skipped: t.skipped,
        failing: r
            .failing
            .iter()
            .take(MAX_NAMED_EXAMPLES)
            .map(|c| {
                let name = match &c.classname {
                    Some(class) if !class.is_empty() => format!("{class}.{}", c.name),
                    _ => c.name.clone(),
                };
                match c.message.is_empty() {
                    true => format!("{}/{name}", c.suite),
                    false => format!("{}/{name}: {}", c.suite, c.message),
                }
            })
            .chain((r.unseen_failures > 0).then(|| {
                format!(
                    "{} more failures or errors its attributes claim without the test cases",
                    r.unseen_failures
                )
            }))
            .collect(),
    }
}

fn findings(r: &FindingReport, rule: &FindingRule) -> FindingFacts {
    let t = r.totals();
    let mut facts = FindingFacts {
        error: t.error,
        warning: t.warning,
        note: t.note,
        none: t.none,
        examples: Vec::new(),
    };
    for (name, max) in rule.limits() {
        let (level, count) = match name {
            "error" => (Level::Error, t.error),
            "warning" => (Level::Warning, t.warning),
            _ => (Level::Note, t.note),
        };
        if max.is_some_and(|max| count > max) {
            let examples = r.findings.iter().filter(|f| f.level == level);
            for f in examples.take(MAX_NAMED_EXAMPLES) {
                let place = match (&f.uri, f.line) {
                    (Some(uri), Some(line)) => format!(" at {uri}:{line}"),
                    (Some(uri), None) => format!(" at {uri}"),
                    _ => String::new(),
                };
                facts.examples.push(format!(
                    "{name} {}{place}: {}",
                    f.rule_id.as_deref().unwrap_or("(no rule)"),
                    f.message
                ));
            }
        }
    }
    facts
}

fn vulnerabilities(rules: &EvidenceRules, list: &[Vulnerability]) -> VulnerabilityFacts {
    let rule = rules.vulnerability_rule();
    let mut facts = VulnerabilityFacts::default();
    let mut counted: Vec<&Vulnerability> = Vec::new();
    for v in list {
        let count = match v.severity {
            Severity::Critical => &mut facts.critical,
            Severity::High => &mut facts.high,
            Severity::Medium => &mut facts.medium,
            Severity::Low => &mut facts.low,
            Severity::Unknown => &mut facts.unknown,
        };
        count.total += 1;
        count.fixable += u64::from(v.fix_available());
        if rule.counts(v.severity, v.fix_available()) {
            counted.push(v);
        }
    }
    // Worst first; the report's own order (sorted by id) breaks ties, so this is stable.
    counted.sort_by_key(|v| v.severity);
    facts.unlisted = counted.len().saturating_sub(MAX_LISTED_FINDINGS) as u64;
    facts.counted = counted
        .into_iter()
        .take(MAX_LISTED_FINDINGS)
        .map(|v| VulnerabilityFact {
            id: v.id.clone(),
            aliases: v.aliases.clone(),
            package: v.package.clone(),
            version: v.version.clone(),
            severity: severity_name(v.severity).to_owned(),
            fixed_in: v.fixed_versions.first().cloned(),
        })
        .collect();
    facts
}

fn licences(rule: Option<&LicenceRule>, components: &[Component]) -> LicenceFacts {
    let mut facts = LicenceFacts {
        components: components.len() as u64,
        ..LicenceFacts::default()
    };
    // Each distinct expression is judged once, however many components carry it.
    let mut judged: HashMap<Option<&str>, Option<usize>> = HashMap::new();
    let mut denied: Vec<LicenceFact> = Vec::new();
    for c in components {
        let licence = c.licence.as_deref();
        if licence.is_none() {
            facts.without_licence += 1;
        }
        let slot = *judged.entry(licence).or_insert_with(|| {
            let allowed = rule.is_none_or(|r| r.rules.evaluate(licence).allowed);
            (!allowed).then(|| {
                denied.push(LicenceFact {
                    licence: licence.map(str::to_owned),
                    packages: Vec::new(),
                    more_packages: 0,
                });
                denied.len() - 1
            })
        });
        if let Some(i) = slot {
            let fact = &mut denied[i];
            if fact.packages.len() < MAX_PACKAGES_PER_LICENCE {
                fact.packages.push(match &c.version {
                    Some(v) => format!("{}@{v}", c.name),
                    None => c.name.clone(),
                });
            } else {
                fact.more_packages += 1;
            }
        }
    }
    facts.licences = judged.keys().filter(|k| k.is_some()).count() as u64;
    facts.unlisted = denied.len().saturating_sub(MAX_LISTED_FINDINGS) as u64;
    denied.truncate(MAX_LISTED_FINDINGS);
    facts.denied = denied;
    facts
}
