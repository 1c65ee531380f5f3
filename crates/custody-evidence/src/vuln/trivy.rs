//! Trivy JSON (`trivy … --format json`, schema version 2): one finding per
//! `Results[].Vulnerabilities[]` entry.
//!
//! Package from `PkgName`, `InstalledVersion`, `PkgIdentifier.PURL` and the result's
//! `Type` (ecosystem); CVSS from every source in `CVSS` (`V3Score`/`V3Vector`,
//! `V40Score`/`V40Vector`), the highest winning; the label from `Severity`; fixed versions
//! from `FixedVersion` (Trivy joins several with `, `). Trivy names no aliases.

use super::{CvssInput, Vulnerability, VulnerabilityReport, finish, rate, tidy};
use crate::json::{self, bounded_or_null};
use crate::{EvidenceError, Format};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Parses a Trivy JSON report.
pub fn parse(bytes: &[u8]) -> Result<VulnerabilityReport, EvidenceError> {
    let doc: Document = json::from_slice(Format::Trivy, bytes)?;
    if doc.schema_version != 2 {
        return Err(EvidenceError::at_path(
            Format::Trivy,
            "$.SchemaVersion",
            format!(
                "schema version {} is not 2 (custody reads Trivy's schema version 2)",
                doc.schema_version
            ),
        ));
    }
    // A report with no result scanned nothing, whatever artifact it names: it says nothing
    // that could replace a scan that did.
    let target = match doc.results.is_empty() {
        true => None,
        false => doc.artifact_name.filter(|s| !s.is_empty()),
    };
    let mut out = Vec::new();
    for (r, result) in doc.results.into_iter().enumerate() {
        for (n, v) in result.vulnerabilities.into_iter().enumerate() {
            let inputs = v.cvss.values().flat_map(|c| {
                [
                    CvssInput {
                        score: c.v2_score,
                        vector: c.v2_vector.as_deref(),
                    },
                    CvssInput {
                        score: c.v3_score,
                        vector: c.v3_vector.as_deref(),
                    },
                    CvssInput {
                        score: c.v40_score,
                        vector: c.v40_vector.as_deref(),
                    },
                ]
                .into_iter()
                .filter(|i| i.score.is_some() || i.vector.is_some())
            });
            let (severity, cvss) =
                rate(inputs, [v.severity.as_deref().unwrap_or("")]).map_err(|e| {
                    EvidenceError::at_path(
                        Format::Trivy,
                        format!("$.Results[{r}].Vulnerabilities[{n}]"),
                        e,
                    )
                })?;
            let fixed = v
                .fixed_version
                .as_deref()
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect();
            out.push(Vulnerability {
                id: v.id,
                aliases: Vec::new(),
                package: v.pkg_name,
                version: v.installed_version.filter(|s| !s.is_empty()),
                ecosystem: result.kind.clone().filter(|s| !s.is_empty()),
                purl: v
                    .pkg_identifier
                    .and_then(|p| p.purl)
                    .filter(|s| !s.is_empty()),
                severity,
                cvss,
                fixed_versions: tidy(fixed, ""),
            });
        }
    }
    Ok(VulnerabilityReport {
        format: Format::Trivy,
        tool: None,
        target,
        vulnerabilities: finish(out),
    })
}

#[derive(Deserialize)]
#[serde(expecting = "a Trivy report object")]
struct Document {
    #[serde(rename = "SchemaVersion")]
    schema_version: u64,
    #[serde(default, rename = "ArtifactName")]
    artifact_name: Option<String>,
    #[serde(default, rename = "Results", deserialize_with = "bounded_or_null")]
    results: Vec<ResultObject>,
}

#[derive(Deserialize)]
#[serde(expecting = "a result object")]
struct ResultObject {
    #[serde(default, rename = "Type")]
    kind: Option<String>,
    #[serde(
        default,
        rename = "Vulnerabilities",
        deserialize_with = "bounded_or_null"
    )]
    vulnerabilities: Vec<Record>,
}

#[derive(Deserialize)]
#[serde(expecting = "a vulnerability object")]
struct Record {
    #[serde(rename = "VulnerabilityID")]
    id: String,
    #[serde(rename = "PkgName")]
    pkg_name: String,
    #[serde(default, rename = "PkgIdentifier")]
    pkg_identifier: Option<PkgIdentifier>,
    #[serde(default, rename = "InstalledVersion")]
    installed_version: Option<String>,
    #[serde(default, rename = "FixedVersion")]
    fixed_version: Option<String>,
    #[serde(default, rename = "Severity")]
    severity: Option<String>,
    #[serde(default, rename = "CVSS")]
    cvss: BTreeMap<String, Cvss>,
}

#[derive(Deserialize)]
#[serde(expecting = "a PkgIdentifier object")]
struct PkgIdentifier {
    #[serde(default, rename = "PURL")]
    purl: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a CVSS object")]
struct Cvss {
    #[serde(default, rename = "V2Vector")]
    v2_vector: Option<String>,
    #[serde(default, rename = "V2Score")]
    v2_score: Option<f64>,
    #[serde(default, rename = "V3Vector")]
    v3_vector: Option<String>,
    #[serde(default, rename = "V3Score")]
    v3_score: Option<f64>,
    #[serde(default, rename = "V40Vector")]
    v40_vector: Option<String>,
    #[serde(default, rename = "V40Score")]
    v40_score: Option<f64>,
}
