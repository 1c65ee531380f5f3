//! OSV-Scanner JSON (`osv-scanner --format json`, v1 and v2): one finding per
//! (package, group of aliased records).
//!
//! OSV-Scanner lists every record that matched a package (a GHSA, the ecosystem's own
//! PYSEC/RUSTSEC/GO record, …) and groups the ones that alias each other in
//! `packages[].groups[]`. One group is one vulnerability, so custody reports one finding
//! per group: the id is the group's first id, the aliases every other id and alias of
//! its records. Severity: the worst of the group's `max_severity` (a CVSS score
//! OSV-Scanner computed), the scores of the records' `severity[]` vectors (`CVSS_V2`,
//! `CVSS_V3`, `CVSS_V4`; a number there is a score) and the labels (GHSA's
//! `database_specific.severity`, the Ubuntu database's `severity[]` entry). Fixed versions
//! are the `fixed` events of the records' `affected[]` ranges for this package (`GIT`
//! ranges, whose events are commit hashes, are skipped). A record in no group is its
//! own group.

use super::{CvssInput, Vulnerability, VulnerabilityReport, finish, rate, tidy};
use crate::json::{self, bounded, bounded_or_null, parse_score_tenths};
use crate::{EvidenceError, Format};
use serde::Deserialize;

/// Parses an OSV-Scanner JSON report.
pub fn parse(bytes: &[u8]) -> Result<VulnerabilityReport, EvidenceError> {
    let doc: Document = json::from_slice(Format::Osv, bytes)?;
    let mut paths: Vec<String> = doc
        .results
        .iter()
        .filter_map(|r| r.source.as_ref()?.path.clone())
        .filter(|p| !p.is_empty())
        .collect();
    paths.sort();
    paths.dedup();
    let mut out = Vec::new();
    for (r, result) in doc.results.into_iter().enumerate() {
        for (p, pkg) in result.packages.into_iter().enumerate() {
            // The groups as listed, then every record no group names as a group of its own.
            let mut groups: Vec<(Vec<String>, Option<String>)> = pkg
                .groups
                .into_iter()
                .map(|g| (g.ids, g.max_severity))
                .collect();
            for record in &pkg.vulnerabilities {
                if !groups.iter().any(|(ids, _)| ids.contains(&record.id)) {
                    groups.push((vec![record.id.clone()], None));
                }
            }
            for (ids, score) in &groups {
                let records: Vec<&Record> = pkg
                    .vulnerabilities
                    .iter()
                    .filter(|r| ids.contains(&r.id))
                    .collect();
                let Some(first) = ids.first() else { continue };
                let found =
                    finding(first, ids, &records, score.as_deref(), &pkg.package).map_err(|e| {
                        EvidenceError::at_path(
                            Format::Osv,
                            format!("$.results[{r}].packages[{p}] ({first})"),
                            e,
                        )
                    })?;
                out.push(found);
            }
        }
    }
    Ok(VulnerabilityReport {
        format: Format::Osv,
        tool: None,
        target: (!paths.is_empty()).then(|| serde_json::to_string(&paths).unwrap_or_default()),
        vulnerabilities: finish(out),
    })
}

/// One group of records about one package, normalised.
fn finding(
    id: &str,
    ids: &[String],
    records: &[&Record],
    group_score: Option<&str>,
    pkg: &Package,
) -> Result<Vulnerability, String> {
    let mut aliases: Vec<String> = ids.to_vec();
    let mut fixed = Vec::new();
    for r in records {
        aliases.extend(r.aliases.iter().cloned());
        for a in r
            .affected
            .iter()
            .filter(|a| a.package.as_ref().is_none_or(|p| p.name == pkg.name))
        {
            for range in a.ranges.iter().filter(|r| r.kind.as_deref() != Some("GIT")) {
                fixed.extend(range.events.iter().filter_map(|e| e.fixed.clone()));
            }
        }
    }
    // A group score that is given must be a score: one that is not would pass as unknown.
    let group_score = group_score.map(str::trim).filter(|s| !s.is_empty());
    let group_tenths = match group_score {
        Some(text) => Some(parse_score_tenths(text).ok_or_else(|| {
            format!("the group's max_severity {text:?} is not a CVSS score between 0 and 10")
        })?),
        None => None,
    };
    // The group's score, every record's vector (or score written where the vector goes)
    // and label: the worst counts.
    let group = group_tenths.map(|tenths| CvssInput {
        score: Some(f64::from(tenths) / 10.0),
        vector: None,
    });
    let vectors = records
        .iter()
        .flat_map(|r| r.severity.iter())
        .filter(|s| matches!(s.kind.as_deref(), Some("CVSS_V2" | "CVSS_V3" | "CVSS_V4")))
        // Some databases write the base score itself where the vector goes.
        .map(|s| match s.score.trim().parse::<f64>() {
            Ok(score) => CvssInput {
                score: Some(score),
                vector: None,
            },
            Err(_) => CvssInput {
                score: None,
                vector: Some(s.score.as_str()),
            },
        });
    // GHSA's label, and the Ubuntu database's (its `severity[]` entry of type `Ubuntu`
    // carries a label where the vector goes).
    let labels = records
        .iter()
        .filter_map(|r| {
            r.database_specific
                .as_ref()
                .and_then(|d| d.severity.as_ref()?.as_str())
        })
        .chain(
            records
                .iter()
                .flat_map(|r| r.severity.iter())
                .filter(|s| s.kind.as_deref() == Some("Ubuntu"))
                .map(|s| s.score.as_str()),
        );
    let (severity, cvss) = rate(group.into_iter().chain(vectors), labels)?;
    let purl = records
        .iter()
        .flat_map(|r| r.affected.iter())
        .filter_map(|a| a.package.as_ref())
        .find(|p| p.name == pkg.name)
        .and_then(|p| p.purl.clone())
        .map(|p| match &pkg.version {
            Some(v) if !p.contains('@') && !v.is_empty() => format!("{p}@{v}"),
            _ => p,
        });
    Ok(Vulnerability {
        id: id.to_owned(),
        aliases: tidy(aliases, id),
        package: pkg.name.clone(),
        version: pkg.version.clone().filter(|s| !s.is_empty()),
        ecosystem: pkg.ecosystem.clone().filter(|s| !s.is_empty()),
        purl,
        severity,
        cvss,
        fixed_versions: tidy(fixed, ""),
    })
}

#[derive(Deserialize)]
#[serde(expecting = "an OSV-Scanner report object")]
struct Document {
    #[serde(deserialize_with = "bounded_or_null")]
    results: Vec<SourceResult>,
}

#[derive(Deserialize)]
#[serde(expecting = "a result object")]
struct SourceResult {
    #[serde(default)]
    source: Option<ScannedSource>,
    #[serde(default, deserialize_with = "bounded_or_null")]
    packages: Vec<PackageResult>,
}

#[derive(Deserialize)]
#[serde(expecting = "a source object")]
struct ScannedSource {
    #[serde(default)]
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a package result object")]
struct PackageResult {
    package: Package,
    #[serde(default, deserialize_with = "bounded_or_null")]
    vulnerabilities: Vec<Record>,
    #[serde(default, deserialize_with = "bounded_or_null")]
    groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
#[serde(expecting = "a group object")]
struct RawGroup {
    #[serde(deserialize_with = "bounded")]
    ids: Vec<String>,
    #[serde(default)]
    max_severity: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a package object")]
struct Package {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    ecosystem: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "an OSV record object")]
struct Record {
    id: String,
    #[serde(default, deserialize_with = "bounded_or_null")]
    aliases: Vec<String>,
    #[serde(default, deserialize_with = "bounded_or_null")]
    affected: Vec<Affected>,
    #[serde(default, deserialize_with = "bounded_or_null")]
    severity: Vec<SeverityEntry>,
    #[serde(default)]
    database_specific: Option<DatabaseSpecific>,
}

#[derive(Deserialize)]
#[serde(expecting = "an affected object")]
struct Affected {
    #[serde(default)]
    package: Option<AffectedPackage>,
    #[serde(default, deserialize_with = "bounded_or_null")]
    ranges: Vec<Range>,
}

#[derive(Deserialize)]
#[serde(expecting = "a package object")]
struct AffectedPackage {
    name: String,
    #[serde(default)]
    purl: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a range object")]
struct Range {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "bounded_or_null")]
    events: Vec<Event>,
}

#[derive(Deserialize)]
#[serde(expecting = "an event object")]
struct Event {
    #[serde(default)]
    fixed: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a severity object")]
struct SeverityEntry {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    score: String,
}

#[derive(Deserialize)]
#[serde(expecting = "a database_specific object")]
struct DatabaseSpecific {
    /// A label in GHSA records; other databases put other things here, so anything but a
    /// string is ignored.
    #[serde(default)]
    severity: Option<serde_json::Value>,
}
