//! The parts of an `[[environment]]` that are more than names and lists: its freeze
//! windows and its evidence rules (`[environment.tests]`, `[environment.static_analysis]`,
//! `[environment.vulnerabilities]`, `[environment.licences]`, `reproducible`, `standing`),
//! compiled with every mistake at its line.

use custody_evidence::licence::LicenceRules;
use custody_evidence::vuln::Severity;
use serde::Deserialize;
use toml::Spanned;

use crate::compile::Errors;
use crate::duration::Span;
use crate::policy::Freeze;
use crate::rules::{
    EvidenceRules, FindingRule, LicenceRule, StandingMode, TestRule, VulnerabilityRule,
};

/// A freeze window as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FreezeDoc {
    from: String,
    until: String,
    reason: String,
}

/// `[environment.tests]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestsDoc {
    min_tests: Option<u64>,
    allow_failures: Option<bool>,
}

/// `[environment.static_analysis]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FindingsDoc {
    max_error: Option<u64>,
    max_warning: Option<u64>,
    max_note: Option<u64>,
}

/// `[environment.vulnerabilities]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VulnerabilitiesDoc {
    max_severity: Option<Spanned<String>>,
    fixable_only: Option<bool>,
    unknown_as: Option<Spanned<String>>,
    max_age: Option<Spanned<String>>,
}

/// `[environment.licences]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LicencesDoc {
    allow: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    #[serde(default)]
    allow_unknown: bool,
}

/// An environment's evidence rules as written (borrowed from its `[[environment]]`).
pub(crate) struct RulesDoc<'d> {
    pub(crate) tests: Option<&'d Spanned<TestsDoc>>,
    pub(crate) static_analysis: Option<&'d Spanned<FindingsDoc>>,
    pub(crate) vulnerabilities: Option<&'d Spanned<VulnerabilitiesDoc>>,
    pub(crate) licences: Option<&'d Spanned<LicencesDoc>>,
    pub(crate) reproducible: Option<&'d Spanned<u32>>,
    pub(crate) standing: Option<&'d Spanned<String>>,
}

/// The freeze windows, each `[from, until)` with a reason, at most ten years long.
pub(crate) fn freezes(docs: &[Spanned<FreezeDoc>], errors: &mut Errors<'_>) -> Vec<Freeze> {
    let mut freezes = Vec::new();
    for f in docs {
        let doc = f.get_ref();
        let time = |t: &str| {
            t.parse::<custody_model::Timestamp>()
                .map(|t| t.unix_seconds())
                .map_err(|m| format!("freeze window: {m}"))
        };
        match (time(&doc.from), time(&doc.until)) {
            (Ok(from), Ok(until)) if until.saturating_sub(from) > Span::MAX.seconds_i64() => {
                errors.at(
                    f.span(),
                    format!(
                        "a freeze window is longer than {}, the longest span custody accepts (about ten years)",
                        Span::MAX
                    ),
                )
            }
            (Ok(from), Ok(until)) if from < until && !doc.reason.trim().is_empty() => {
                freezes.push(Freeze {
                    from,
                    until,
                    reason: doc.reason.clone(),
                })
            }
            (Ok(_), Ok(_)) => errors.at(
                f.span(),
                "a freeze window needs `from` before `until` and a `reason`",
            ),
            (Err(m), _) | (_, Err(m)) => errors.at(f.span(), m),
        }
    }
    freezes
}

/// A severity by its lowercase name; `none` (nothing allowed) is `Ok(None)` where
/// `none_ok`.
fn severity(
    value: &Spanned<String>,
    key: &str,
    none_ok: bool,
    errors: &mut Errors<'_>,
) -> Option<Option<Severity>> {
    let parsed = match value.get_ref().as_str() {
        "critical" => Some(Severity::Critical),
        "high" => Some(Severity::High),
        "medium" => Some(Severity::Medium),
        "low" => Some(Severity::Low),
        "none" if none_ok => None,
        other => {
            let choices = if none_ok {
                "critical, high, medium, low or none"
            } else {
                "critical, high, medium or low"
            };
            errors.at(
                value.span(),
                format!("{key} {other:?} is not a severity: use {choices}"),
            );
            return None;
        }
    };
    Some(parsed)
}

/// The evidence rules; a mistake is reported at its line and its rule left at its default.
pub(crate) fn rules(doc: RulesDoc<'_>, errors: &mut Errors<'_>) -> EvidenceRules {
    let mut rules = EvidenceRules::default();
    if let Some(t) = doc.tests {
        let d = t.get_ref();
        let default = TestRule::default();
        rules.tests = Some(TestRule {
            min_tests: d.min_tests.unwrap_or(default.min_tests),
            allow_failures: d.allow_failures.unwrap_or(default.allow_failures),
        });
    }
    if let Some(f) = doc.static_analysis {
        let d = f.get_ref();
        if d.max_error.is_none() && d.max_warning.is_none() && d.max_note.is_none() {
            errors.at(
                f.span(),
                "[environment.static_analysis] sets no limit: give max_error, max_warning or max_note",
            );
        }
        rules.static_analysis = Some(FindingRule {
            max_error: d.max_error,
            max_warning: d.max_warning,
            max_note: d.max_note,
        });
    }
    if let Some(v) = doc.vulnerabilities {
        let d = v.get_ref();
        let default = VulnerabilityRule::default();
        let max_severity = match &d.max_severity {
            Some(s) => severity(s, "max_severity", true, errors).unwrap_or(default.max_severity),
            None => default.max_severity,
        };
        let unknown_as = match &d.unknown_as {
            Some(s) => severity(s, "unknown_as", false, errors)
                .flatten()
                .unwrap_or(default.unknown_as),
            None => default.unknown_as,
        };
        let max_age = d.max_age.as_ref().and_then(|s| {
            Span::parse(s.get_ref())
                .map_err(|m| errors.at(s.span(), m))
                .ok()
        });
        rules.vulnerabilities = Some(VulnerabilityRule {
            max_severity,
            fixable_only: d.fixable_only.unwrap_or(default.fixable_only),
            unknown_as,
            max_age,
        });
    }
    if let Some(l) = doc.licences {
        rules.licences = licences(l, errors);
    }
    if let Some(k) = doc.reproducible {
        if *k.get_ref() < 2 {
            errors.at(
                k.span(),
                "reproducible asks how many independent builders must agree on a digest: at least 2 (one build agrees with itself)",
            );
        } else {
            rules.reproducible = Some(*k.get_ref());
        }
    }
    if let Some(s) = doc.standing {
        match s.get_ref().as_str() {
            "deny" => rules.standing = StandingMode::Deny,
            "warn" => rules.standing = StandingMode::Warn,
            other => errors.at(s.span(), format!("standing {other:?} is not deny or warn")),
        }
    }
    rules
}

/// The licence lists, each entry an SPDX licence id (refused at its line otherwise).
fn licences(doc: &Spanned<LicencesDoc>, errors: &mut Errors<'_>) -> Option<LicenceRule> {
    let d = doc.get_ref();
    let mut ok = true;
    let entry_ok = |list: &str, entry: &Spanned<String>, errors: &mut Errors<'_>| {
        let one = [entry.get_ref().as_str()];
        let checked = match list {
            "allow" => LicenceRules::new(Some(&one[..]), &[]),
            _ => LicenceRules::new(None, &one[..]),
        };
        checked
            .map_err(|e| errors.at(entry.span(), e.to_string()))
            .is_ok()
    };
    if let Some(allow) = &d.allow {
        if allow.get_ref().is_empty() {
            errors.at(
                allow.span(),
                "the allow list is empty, which would deny every licence; leave it out to allow all but the denied ones",
            );
            ok = false;
        }
        for entry in allow.get_ref() {
            ok &= entry_ok("allow", entry, errors);
        }
    }
    for entry in &d.deny {
        ok &= entry_ok("deny", entry, errors);
    }
    if d.allow.is_none() && d.deny.is_empty() {
        errors.at(
            doc.span(),
            "[environment.licences] gives neither an allow nor a deny list",
        );
        ok = false;
    }
    let allow: Option<Vec<String>> = d
        .allow
        .as_ref()
        .map(|a| a.get_ref().iter().map(|e| e.get_ref().clone()).collect());
    let deny: Vec<String> = d.deny.iter().map(|e| e.get_ref().clone()).collect();
    if !ok {
        return None;
    }
    let compiled = LicenceRules::new(allow.as_deref(), &deny)
        .map_err(|e| errors.at(doc.span(), e.to_string()))
        .ok()?
        .allow_unknown(d.allow_unknown);
    Some(LicenceRule {
        rules: compiled,
        allow,
        deny,
        allow_unknown: d.allow_unknown,
    })
}
