//! Grype JSON (`grype -o json`): one finding per `matches[]` entry.
//!
//! Package from `artifact` (name, version, type as the ecosystem, purl); aliases from
//! `relatedVulnerabilities[].id`; CVSS from `vulnerability.cvss[]`, else from the related
//! records' (NVD's); the label from `vulnerability.severity`; fixed versions from
//! `vulnerability.fix.versions` when `fix.state` is `fixed`.

use super::{CvssInput, Vulnerability, VulnerabilityReport, finish, rate, tidy};
use crate::json::{self, bounded, bounded_or_null};
use crate::{EvidenceError, Format};
use serde::Deserialize;

/// Parses a Grype JSON report.
pub fn parse(bytes: &[u8]) -> Result<VulnerabilityReport, EvidenceError> {
    let doc: Document = json::from_slice(Format::Grype, bytes)?;
    let mut out = Vec::with_capacity(doc.matches.len());
    for (n, m) in doc.matches.into_iter().enumerate() {
        let v = m.vulnerability;
        let at = |e: String| EvidenceError::at_path(Format::Grype, format!("$.matches[{n}]"), e);
        let own = v.cvss.iter().map(Cvss::input);
        let (mut severity, mut cvss) =
            rate(own, [v.severity.as_deref().unwrap_or("")]).map_err(at)?;
        if cvss.is_none() {
            // No score of its own (e.g. a GHSA record): NVD's, through the related records.
            let related = m
                .related
                .iter()
                .flat_map(|r| r.cvss.iter().map(Cvss::input));
            if let (s, Some(c)) = rate(related, []).map_err(at)? {
                (severity, cvss) = (s, Some(c));
            }
        }
        let fixed = match v.fix {
            Some(Fix {
                state: Some(s),
                versions,
            }) if s == "fixed" => versions,
            _ => Vec::new(),
        };
        let aliases = m.related.into_iter().map(|r| r.id).collect();
        let artifact = m.artifact;
        out.push(Vulnerability {
            aliases: tidy(aliases, &v.id),
            id: v.id,
            package: artifact.name,
            version: artifact.version.filter(|s| !s.is_empty()),
            ecosystem: artifact.kind.filter(|s| !s.is_empty()),
            purl: artifact.purl.filter(|s| !s.is_empty()),
            severity,
            cvss,
            fixed_versions: tidy(fixed, ""),
        });
    }
    let tool = doc.descriptor.map(|d| match d.version {
        Some(v) => format!("{} {v}", d.name),
        None => d.name,
    });
    // Grype names an image by what was asked for (`userInput`), a directory or file by
    // its path (a string).
    let target = doc.source.and_then(|s| match s.target {
        Some(serde_json::Value::String(t)) => Some(t),
        Some(serde_json::Value::Object(o)) => o
            .get("userInput")
            .or_else(|| o.get("name"))
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        _ => None,
    });
    Ok(VulnerabilityReport {
        format: Format::Grype,
        tool,
        target: target.filter(|s| !s.is_empty()),
        vulnerabilities: finish(out),
    })
}

#[derive(Deserialize)]
#[serde(expecting = "a Grype report object")]
struct Document {
    #[serde(deserialize_with = "bounded")]
    matches: Vec<Match>,
    #[serde(default)]
    descriptor: Option<Descriptor>,
    #[serde(default)]
    source: Option<Source>,
}

#[derive(Deserialize)]
#[serde(expecting = "a source object")]
struct Source {
    #[serde(default)]
    target: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(expecting = "a descriptor object")]
struct Descriptor {
    name: String,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a match object")]
struct Match {
    vulnerability: Record,
    #[serde(
        default,
        rename = "relatedVulnerabilities",
        deserialize_with = "bounded_or_null"
    )]
    related: Vec<Related>,
    artifact: Artifact,
}

#[derive(Deserialize)]
#[serde(expecting = "a vulnerability object")]
struct Record {
    id: String,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default, deserialize_with = "bounded_or_null")]
    cvss: Vec<Cvss>,
    #[serde(default)]
    fix: Option<Fix>,
}

#[derive(Deserialize)]
#[serde(expecting = "a related vulnerability object")]
struct Related {
    id: String,
    #[serde(default, deserialize_with = "bounded_or_null")]
    cvss: Vec<Cvss>,
}

#[derive(Deserialize)]
#[serde(expecting = "a cvss object")]
struct Cvss {
    #[serde(default)]
    vector: Option<String>,
    #[serde(default)]
    metrics: Option<Metrics>,
}

impl Cvss {
    /// Every version counts: v2, v3 and v4 vectors are scored, and the base score given
    /// beside them (see the module doc of `vuln`).
    fn input(&self) -> CvssInput<'_> {
        CvssInput {
            score: self.metrics.as_ref().and_then(|m| m.base_score),
            vector: self.vector.as_deref(),
        }
    }
}

#[derive(Deserialize)]
#[serde(expecting = "a metrics object")]
struct Metrics {
    #[serde(default, rename = "baseScore")]
    base_score: Option<f64>,
}

#[derive(Deserialize)]
#[serde(expecting = "a fix object")]
struct Fix {
    #[serde(default)]
    state: Option<String>,
    #[serde(default, deserialize_with = "bounded_or_null")]
    versions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "an artifact object")]
struct Artifact {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    purl: Option<String>,
}
