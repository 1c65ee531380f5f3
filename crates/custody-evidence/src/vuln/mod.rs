//! Vulnerability scans: OSV-Scanner, Grype and Trivy JSON (and, through
//! [`crate::sbom::parse_cyclonedx`], a CycloneDX document's `vulnerabilities`), each
//! normalised to the same [`Vulnerability`].
//!
//! Severity is decided the same way for every scanner, as the worst of what the report
//! says of the finding (a finding is as severe as its most severe reading):
//! 1. the highest CVSS base score the report gives for it (v2, v3.x or v4.0; a number, or
//!    computed from a vector with the `cvss` crate), mapped by the CVSS qualitative
//!    ranges: 9.0–10.0 critical, 7.0–8.9 high, 4.0–6.9 medium, 0.1–3.9 low (0.0, "none",
//!    counts as low);
//! 2. the scanner's own labels (`CRITICAL`, `High`, GHSA's `MODERATE`, …);
//! 3. unknown when neither says anything. A label no scanner writes, a score outside
//!    0–10 or a vector that does not parse is refused rather than read as unknown.
//!
//! The score is kept in tenths (`98` for 9.8) with its vector, so nothing recorded is a
//! float. A fix is available exactly when `fixed_versions` is not empty.

mod grype;
mod osv;
mod trivy;

pub use grype::parse as parse_grype;
pub use osv::parse as parse_osv;
pub use trivy::parse as parse_trivy;

use crate::Format;
use crate::summary::VulnerabilityTotals;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// A vulnerability report, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VulnerabilityReport {
    /// The format it was read from: `osv`, `grype`, `trivy` or `cyclonedx`.
    pub format: Format,
    /// The scanner's name and version when the report says (e.g. `grype 0.74.0`).
    pub tool: Option<String>,
    /// What was scanned, as the report names it (Trivy's `ArtifactName`, Grype's source
    /// target, OSV-Scanner's source paths), when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// One entry per (vulnerability, affected package), sorted (by id, then aliases,
    /// package, version, …), exact duplicates dropped.
    pub vulnerabilities: Vec<Vulnerability>,
}

impl VulnerabilityReport {
    /// The totals per severity, with and without a fix.
    pub fn totals(&self) -> VulnerabilityTotals {
        let mut t = VulnerabilityTotals::default();
        t.add(&self.vulnerabilities);
        t
    }
}

/// A vulnerability in one package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Vulnerability {
    /// Its id as the scanner reports it (CVE-…, GHSA-…, PYSEC-…, …).
    pub id: String,
    /// Other ids for the same vulnerability, sorted, distinct, without `id`.
    pub aliases: Vec<String>,
    /// The affected package's name.
    pub package: String,
    /// The installed version, if known.
    pub version: Option<String>,
    /// The package's ecosystem or type as the scanner names it (`npm`, `PyPI`, `deb`, …).
    pub ecosystem: Option<String>,
    /// The package URL, when the report gives one.
    pub purl: Option<String>,
    /// How bad it is (see the module doc for how it is decided).
    pub severity: Severity,
    /// The CVSS score the severity came from, if it came from one.
    pub cvss: Option<Cvss>,
    /// Versions that fix it, sorted, distinct; empty when no fix is known.
    pub fixed_versions: Vec<String>,
}

impl Vulnerability {
    /// Whether a fixed version is known.
    pub fn fix_available(&self) -> bool {
        !self.fixed_versions.is_empty()
    }
}

/// A severity in CVSS's qualitative terms, plus unknown. Ordered from most to least
/// severe, so `Severity::Critical < Severity::High`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// CVSS 9.0–10.0.
    Critical,
    /// CVSS 7.0–8.9.
    High,
    /// CVSS 4.0–6.9.
    Medium,
    /// CVSS 0.0–3.9.
    Low,
    /// No score and no usable label.
    Unknown,
}

impl Severity {
    /// The CVSS v3/v4 qualitative rating of a base score given in tenths.
    pub fn from_score_tenths(tenths: u16) -> Severity {
        match tenths {
            90.. => Severity::Critical,
            70..=89 => Severity::High,
            40..=69 => Severity::Medium,
            _ => Severity::Low,
        }
    }

    /// A scanner's label, case-insensitive: critical; high/important; medium/moderate;
    /// low/negligible/minor; anything else is unknown.
    pub fn from_label(label: &str) -> Severity {
        Severity::read_label(label).unwrap_or(Severity::Unknown)
    }

    /// A scanner's label as [`Severity::from_label`] reads it, or `None` for a label no
    /// scanner writes (`SEVERE`, `CRIT`, a number): the labels that say "no severity"
    /// (`unknown`, `none`, `info`, `informational`, an empty one) read as unknown.
    pub fn read_label(label: &str) -> Option<Severity> {
        Some(match label.trim().to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" | "important" => Severity::High,
            "medium" | "moderate" => Severity::Medium,
            "low" | "negligible" | "minor" => Severity::Low,
            "" | "unknown" | "none" | "info" | "informational" => Severity::Unknown,
            _ => return None,
        })
    }
}

/// A CVSS base score.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cvss {
    /// The base score in tenths: 0–100 (98 is 9.8).
    pub score_tenths: u16,
    /// The vector as the report gave it, if it did.
    pub vector: Option<String>,
}

/// A CVSS v3/v4 candidate from a report: a score, a vector, or both.
pub(crate) struct CvssInput<'a> {
    pub(crate) score: Option<f64>,
    pub(crate) vector: Option<&'a str>,
}

impl CvssInput<'_> {
    /// The score: the worse of the report's number and the base score computed from its
    /// vector (a report's 2.0 beside a 9.8 vector is a 9.8). A v3 vector written without
    /// its `CVSS:3.1/` prefix is read as v3.1, one with `Au:` as CVSS v2. Refused: a score
    /// outside 0–10, a vector that does not parse (a finding whose severity cannot be read
    /// must not pass as unknown).
    fn resolve(&self) -> Result<Option<Cvss>, String> {
        // NVD writes v2 vectors in parentheses.
        let vector = self
            .vector
            .map(|v| v.trim().trim_start_matches('(').trim_end_matches(')'))
            .filter(|v| !v.is_empty());
        let given = match self.score {
            Some(s) => Some(
                crate::json::score_tenths(s)
                    .ok_or_else(|| format!("the CVSS score {s} is not between 0 and 10"))?,
            ),
            None => None,
        };
        let computed = match vector {
            None => None,
            Some(v) => {
                let base = if v.starts_with("CVSS:") {
                    cvss::Cvss::from_str(v).map(|c| c.score())
                } else if v.contains("Au:") {
                    // CVSS v2 has Au (authentication); v3 without its prefix has PR and S.
                    cvss::v2::Vector::from_str(v).map(|c| c.score().value())
                } else if v.starts_with("AV:") && v.contains("/S:") {
                    cvss::Cvss::from_str(&format!("CVSS:3.1/{v}")).map(|c| c.score())
                } else {
                    return Err(format!("the CVSS vector {v:?} is neither v2 nor v3/v4"));
                }
                .map_err(|e| format!("the CVSS vector {v:?} does not parse ({e})"))?;
                Some(
                    crate::json::score_tenths(base)
                        .ok_or_else(|| format!("the CVSS vector {v:?} gives no score"))?,
                )
            }
        };
        let Some(score) = given.max(computed) else {
            return Ok(None);
        };
        Ok(Some(Cvss {
            score_tenths: score,
            vector: vector.map(str::to_owned),
        }))
    }
}

/// The worst of what a report says of a finding: the severity of the highest score among
/// `inputs` (v2, v3 or v4, given or computed from a vector) and the worst severity the
/// `labels` name (a "negligible" label beside a 9.8 score is critical); unknown when
/// nothing says. Refused, saying which: a score or vector that cannot be read, or a label
/// no scanner writes.
pub(crate) fn rate<'a>(
    inputs: impl IntoIterator<Item = CvssInput<'a>>,
    labels: impl IntoIterator<Item = &'a str>,
) -> Result<(Severity, Option<Cvss>), String> {
    let mut best: Option<Cvss> = None;
    for input in inputs {
        if let Some(c) = input.resolve()? {
            let better = best.as_ref().is_none_or(|b| {
                c.score_tenths > b.score_tenths
                    || (c.score_tenths == b.score_tenths && c.vector < b.vector)
            });
            if better {
                best = Some(c);
            }
        }
    }
    let mut worst = best.as_ref().map_or(Severity::Unknown, |c| {
        Severity::from_score_tenths(c.score_tenths)
    });
    for label in labels {
        let s = Severity::read_label(label).ok_or_else(|| {
            format!(
                "the severity {label:?} is not one custody reads (critical, high, medium, low, negligible, unknown, …)"
            )
        })?;
        // `Severity` orders Critical first; unknown says nothing.
        if s != Severity::Unknown && (worst == Severity::Unknown || s < worst) {
            worst = s;
        }
    }
    Ok((worst, best))
}

/// Sorts and de-duplicates a list, dropping empty strings and `except`.
pub(crate) fn tidy(mut list: Vec<String>, except: &str) -> Vec<String> {
    list.retain(|s| !s.is_empty() && s != except);
    list.sort();
    list.dedup();
    list
}

/// Sorts a report's findings into their recorded order and drops exact duplicates (the
/// same package found twice at different paths is one fact).
pub(crate) fn finish(mut v: Vec<Vulnerability>) -> Vec<Vulnerability> {
    v.sort();
    v.dedup();
    v
}
