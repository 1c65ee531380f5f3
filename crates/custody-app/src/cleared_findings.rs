//! A report that replaces another and clears findings the other had: a re-scan after a
//! fix, or a hand-edited "clean" report attached by whoever may attach evidence. The gates
//! read the newest report of each type, format and subject (`policy/content.rs`), so such
//! a report is what lets a release through; custody cannot tell the two apart, so it says
//! so, loudly, for a person to confirm (the alert names both reports, who attached each,
//! and what was cleared).

use custody_evidence::Summary;
use custody_store::Store;
use serde_json::json;

use crate::AppResult;
use crate::alerts::Alert;
use crate::app::App;
use crate::events::{Event, EventBody};
use crate::records::{ArtifactRecord, EvidenceRecord, kind};

/// What `newer` no longer reports that `older` did: ("2 critical vulnerabilities", …),
/// and whether any of it was critical or high (or a failing test).
pub fn cleared(older: &Summary, newer: &Summary) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut serious = false;
    // `what` as (one, more than one): "1 failing test", "2 failing tests".
    let mut fewer = |what: (&str, &str), before: u64, after: u64, grave: bool| {
        if before > after {
            let n = before - after;
            out.push(format!("{n} {}", if n == 1 { what.0 } else { what.1 }));
            serious |= grave;
        }
    };
    if let Some(before) = &older.vulnerabilities {
        let after = newer.vulnerabilities.unwrap_or_default();
        // At or above each severity, so that a finding raised to a graver one clears
        // nothing; and with a fix, which the rules may ask for (a fix version removed
        // turns a "fixable critical" into one a rule may let through).
        let at_least = |v: &custody_evidence::VulnerabilityTotals, n: usize| {
            [v.critical, v.high, v.medium, v.low]
                .iter()
                .take(n)
                .fold((0, 0), |(all, fix), c| (all + c.total, fix + c.with_fix))
        };
        for (n, what, grave) in [
            (1, "critical", true),
            (2, "critical or high", true),
            (3, "critical, high or medium", false),
            (4, "critical, high, medium or low", false),
        ] {
            let (b, a) = (at_least(before, n), at_least(&after, n));
            if b.0 > a.0 {
                let (one, more) = (
                    format!("{what} vulnerability"),
                    format!("{what} vulnerabilities"),
                );
                fewer((&one, &more), b.0, a.0, grave);
                break;
            }
            if b.1 > a.1 {
                let (one, more) = (
                    format!("fix of a {what} vulnerability"),
                    format!("fixes of {what} vulnerabilities"),
                );
                fewer((&one, &more), b.1, a.1, grave);
                break;
            }
        }
    }
    if let Some(before) = &older.tests {
        let after = newer.tests.unwrap_or_default();
        fewer(
            ("failing test", "failing tests"),
            before.failed + before.errored,
            after.failed + after.errored,
            true,
        );
    }
    if let Some(before) = &older.findings {
        let after = newer.findings.unwrap_or_default();
        fewer(
            ("error-level finding", "error-level findings"),
            before.error,
            after.error,
            true,
        );
        fewer(
            ("warning-level finding", "warning-level findings"),
            before.warning,
            after.warning,
            false,
        );
    }
    if let Some(before) = &older.licences {
        let after = newer.licences.as_ref().map_or(0, |l| l.without_licence);
        fewer(
            (
                "component without a licence",
                "components without a licence",
            ),
            before.without_licence,
            after,
            false,
        );
    }
    (out, serious)
}

impl<S: Store> App<S> {
    /// The alerts an `evidence.attached` event at `index` calls for: one per artifact whose
    /// earlier report of the same type, format and subject it replaces for the gates, when
    /// it reports fewer findings than that one did. None for any other event.
    pub async fn cleared_findings_alerts(
        &self,
        index: u64,
        event: &Event,
    ) -> AppResult<Vec<Alert>> {
        let EventBody::EvidenceAttached(e) = &event.body else {
            return Ok(Vec::new());
        };
        let mut alerts = Vec::new();
        for artifact in &e.artifacts {
            let Some(record) = self
                .get::<ArtifactRecord>(kind::ARTIFACT, &artifact.to_string())
                .await?
            else {
                continue;
            };
            let evidence = &record.value.evidence;
            // This report, and the newest before it that it replaces (a report that does
            // not say what it is about replaces nothing).
            let Some(at) = evidence
                .iter()
                .position(|r| r.digest == e.evidence && r.at == event.at)
            else {
                continue;
            };
            let newer = &evidence[at];
            let replaced = evidence[..at].iter().rev().find(|r| {
                !newer.subject.is_empty()
                    && r.kind == newer.kind
                    && r.format == newer.format
                    && r.subject == newer.subject
            });
            let (Some(older), Some(after)) = (replaced, &newer.summary) else {
                continue;
            };
            let Some(before) = &older.summary else {
                continue;
            };
            let (what, serious) = cleared(before, after);
            if what.is_empty() {
                continue;
            }
            alerts.push(alert(
                index,
                event,
                &record.value.name,
                artifact,
                older,
                newer,
                &what,
                serious,
            ));
        }
        Ok(alerts)
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one alert's parts, each named once"
)]
fn alert(
    index: u64,
    event: &Event,
    name: &str,
    artifact: &custody_model::Digest,
    older: &EvidenceRecord,
    newer: &EvidenceRecord,
    what: &[String],
    serious: bool,
) -> Alert {
    Alert {
        id: format!("findings-cleared:{index}:{artifact}"),
        rule: "findings-cleared".into(),
        severity: if serious { "critical" } else { "warning" }.into(),
        text: format!(
            "{} attached a {} report of {name} ({}) that clears {} the one {} attached at {} reported; the gates now read the new one: confirm it is a genuine re-scan (reports {} and {})",
            newer.by,
            newer.format,
            newer.subject,
            what.join(", "),
            older.by,
            older.at.to_second(),
            older.digest,
            newer.digest,
        ),
        subject: json!({
            "artifacts": [artifact],
            "kind": newer.kind,
            "replaced": older.digest,
            "report": newer.digest,
            "cleared": what,
            "ledger_index": index,
            "at": event.at.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_evidence::{SeverityCount, TestTotals, VulnerabilityTotals};

    fn vulns(critical: u64, low: u64) -> Summary {
        Summary {
            vulnerabilities: Some(VulnerabilityTotals {
                total: critical + low,
                critical: SeverityCount {
                    total: critical,
                    ..Default::default()
                },
                low: SeverityCount {
                    total: low,
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_critical_finding_gone_is_serious_and_a_new_one_is_not_cleared() {
        assert_eq!(
            cleared(&vulns(1, 2), &vulns(0, 2)),
            (vec!["1 critical vulnerability".to_owned()], true)
        );
        assert_eq!(
            cleared(&vulns(0, 2), &vulns(0, 1)),
            (
                vec!["1 critical, high, medium or low vulnerability".to_owned()],
                false
            )
        );
        assert_eq!(cleared(&vulns(1, 0), &vulns(2, 3)), (vec![], false));
        // A report that says nothing about vulnerabilities clears every one.
        assert_eq!(
            cleared(&vulns(1, 0), &Summary::default()).0,
            ["1 critical vulnerability"]
        );
        // A high raised to critical clears nothing; a critical lowered to high does.
        let high = Summary {
            vulnerabilities: Some(VulnerabilityTotals {
                total: 1,
                high: SeverityCount {
                    total: 1,
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(cleared(&high, &vulns(1, 0)), (vec![], false));
        assert_eq!(cleared(&vulns(1, 0), &high).0, ["1 critical vulnerability"]);
        // The same critical, its fix version gone: its fix cleared.
        let mut fixable = vulns(1, 0);
        if let Some(v) = fixable.vulnerabilities.as_mut() {
            v.critical.with_fix = 1;
        }
        assert_eq!(
            cleared(&fixable, &vulns(1, 0)),
            (vec!["1 fix of a critical vulnerability".to_owned()], true)
        );
    }

    #[test]
    fn fixed_tests_are_cleared_failures() {
        let run = |failed| Summary {
            tests: Some(TestTotals {
                tests: 10,
                failed,
                passed: 10 - failed,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            cleared(&run(2), &run(0)),
            (vec!["2 failing tests".to_owned()], true)
        );
        assert_eq!(cleared(&run(0), &run(0)), (vec![], false));
    }
}
