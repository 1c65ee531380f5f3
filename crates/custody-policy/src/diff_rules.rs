//! What a new policy version changes in an environment's evidence rules (tests, static
//! analysis, vulnerabilities, licences, reproducible builds, the deploy gate's standing),
//! each change marked looser or stricter, for [`crate::diff`].

use std::cmp::Reverse;
use std::collections::BTreeSet;

use crate::diff::{Changes, limit};
use crate::rules::{EvidenceRules, FindingRule, StandingMode, TestRule, severity_name};

/// The changes from `b` to `a` in environment `env`.
pub(crate) fn evidence_rules(out: &mut Changes, env: &str, b: &EvidenceRules, a: &EvidenceRules) {
    tests(out, env, b.tests.as_ref(), a.tests.as_ref());
    findings(
        out,
        env,
        b.static_analysis.as_ref(),
        a.static_analysis.as_ref(),
    );
    vulnerabilities(out, env, b, a);
    licences(out, env, b, a);
    // More agreeing builders is stricter; none required is the loosest.
    out.ranked(Reverse(b.reproducible), Reverse(a.reproducible), || {
        let show = |n: Option<u32>| n.map_or_else(|| "none".into(), |n| n.to_string());
        format!(
            "{env}: agreeing rebuilds required {} (was {})",
            show(a.reproducible),
            show(b.reproducible)
        )
    });
    let warns = |r: &EvidenceRules| r.standing == StandingMode::Warn;
    out.ranked(warns(b), warns(a), || {
        format!(
            "{env}: when evidence rules fail after certification the deploy gate {}",
            if warns(a) { "only warns" } else { "denies" }
        )
    });
}

fn tests(out: &mut Changes, env: &str, b: Option<&TestRule>, a: Option<&TestRule>) {
    match (b, a) {
        (None, None) => {}
        (Some(_), None) => out.looser(format!("{env}: test reports are no longer read")),
        (None, Some(_)) => out.stricter(format!("{env}: test reports are now read")),
        (Some(b), Some(a)) => {
            out.ranked(Reverse(b.min_tests), Reverse(a.min_tests), || {
                format!(
                    "{env}: at least {} test cases (was {})",
                    a.min_tests, b.min_tests
                )
            });
            out.ranked(b.allow_failures, a.allow_failures, || {
                format!(
                    "{env}: failing tests {} allowed",
                    if a.allow_failures {
                        "are now"
                    } else {
                        "are no longer"
                    }
                )
            });
        }
    }
}

fn findings(out: &mut Changes, env: &str, b: Option<&FindingRule>, a: Option<&FindingRule>) {
    let (b, a) = match (b, a) {
        (None, None) => return,
        (Some(_), None) => {
            return out.looser(format!("{env}: static analysis is no longer read"));
        }
        (None, Some(_)) => return out.stricter(format!("{env}: static analysis is now read")),
        (Some(b), Some(a)) => (b, a),
    };
    for (level, before, after) in [
        ("error", b.max_error, a.max_error),
        ("warning", b.max_warning, a.max_warning),
        ("note", b.max_note, a.max_note),
    ] {
        out.ranked(limit(before), limit(after), || {
            let show = |n: Option<u64>| n.map_or_else(|| "any number".into(), |n| n.to_string());
            format!(
                "{env}: {} {level}-level findings allowed (was {})",
                show(after),
                show(before)
            )
        });
    }
}

fn vulnerabilities(out: &mut Changes, env: &str, b: &EvidenceRules, a: &EvidenceRules) {
    let (b, a) = (b.vulnerability_rule(), a.vulnerability_rule());
    // Severities order most severe first, so allowing a smaller one allows worse; none
    // allowed (no maximum) is the strictest.
    out.ranked(
        b.max_severity.map(Reverse),
        a.max_severity.map(Reverse),
        || {
            let show =
                |s: Option<custody_evidence::vuln::Severity>| s.map_or("none", severity_name);
            format!(
                "{env}: vulnerabilities up to {} allowed (was {})",
                show(a.max_severity),
                show(b.max_severity)
            )
        },
    );
    out.ranked(b.fixable_only, a.fixable_only, || {
        format!(
            "{env}: vulnerabilities without a fix {}",
            if a.fixable_only {
                "no longer block"
            } else {
                "now block"
            }
        )
    });
    // An unknown severity judged as a less severe one (later in the order) lets more by.
    out.ranked(b.unknown_as, a.unknown_as, || {
        format!(
            "{env}: a vulnerability of unknown severity counts as {} (was {})",
            severity_name(a.unknown_as),
            severity_name(b.unknown_as)
        )
    });
    out.ranked(limit(b.max_age), limit(a.max_age), || {
        let show = |s: Option<crate::Span>| s.map_or_else(|| "any".into(), |s| s.to_string());
        format!(
            "{env}: vulnerability scans up to {} old (was {})",
            show(a.max_age),
            show(b.max_age)
        )
    });
}

fn licences(out: &mut Changes, env: &str, b: &EvidenceRules, a: &EvidenceRules) {
    let (b, a) = match (&b.licences, &a.licences) {
        (None, None) => return,
        (Some(_), None) => return out.looser(format!("{env}: licences are no longer checked")),
        (None, Some(_)) => return out.stricter(format!("{env}: licences are now checked")),
        (Some(b), Some(a)) => (b, a),
    };
    match (&b.allow, &a.allow) {
        (Some(_), None) => out.looser(format!("{env}: every licence not denied is allowed")),
        (None, Some(_)) => out.stricter(format!("{env}: only listed licences are allowed")),
        (Some(before), Some(after)) => {
            let set = |v: &Vec<String>| v.iter().cloned().collect::<BTreeSet<_>>();
            out.sets(&set(before), &set(after), true, |l, added| {
                format!(
                    "{env}: licence {l} {}",
                    if added {
                        "now allowed"
                    } else {
                        "no longer allowed"
                    }
                )
            });
        }
        (None, None) => {}
    }
    let set = |v: &Vec<String>| v.iter().cloned().collect::<BTreeSet<_>>();
    out.sets(&set(&b.deny), &set(&a.deny), false, |l, added| {
        format!(
            "{env}: licence {l} {}",
            if added {
                "now denied"
            } else {
                "no longer denied"
            }
        )
    });
    out.ranked(b.allow_unknown, a.allow_unknown, || {
        format!(
            "{env}: unknown or missing licences {}",
            if a.allow_unknown {
                "now pass"
            } else {
                "no longer pass"
            }
        )
    });
}
