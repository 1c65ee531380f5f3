//! CycloneDX 1.4–1.6 JSON: components (nested ones flattened) and vulnerabilities.
//!
//! A vulnerability becomes one finding per `affects[]` entry, whose `ref` names a
//! component's `bom-ref` (a ref naming no component is reported with the ref as the
//! package name). Aliases are `references[].id`; CVSS comes from `ratings[]` whose method
//! is `CVSSv3`, `CVSSv31` or `CVSSv4` (score, else the vector), the label from any rating's
//! `severity`; fixed versions are the `affects[].versions[]` marked `unaffected` with a
//! single version (CycloneDX has no separate "fixed in" field).

use super::{Component, Sbom, SbomFormat, finish};
use crate::json::{self, bounded_or_null};
use crate::vuln::{self, CvssInput, Vulnerability, rate, tidy};
use crate::{EvidenceError, Format};
use serde::Deserialize;
use std::collections::HashMap;

/// How deeply `components` may nest inside components.
const MAX_NESTING: usize = 32;

/// Parses a CycloneDX 1.4, 1.5 or 1.6 JSON document.
pub fn parse(bytes: &[u8]) -> Result<Sbom, EvidenceError> {
    let doc: Document = json::from_slice(Format::Cyclonedx, bytes)?;
    if doc.bom_format != "CycloneDX" {
        return Err(EvidenceError::at_path(
            Format::Cyclonedx,
            "$.bomFormat",
            format!("{:?} is not \"CycloneDX\"", doc.bom_format),
        ));
    }
    if !matches!(doc.spec_version.as_str(), "1.4" | "1.5" | "1.6") {
        return Err(EvidenceError::at_path(
            Format::Cyclonedx,
            "$.specVersion",
            format!(
                "specVersion {:?} is not one custody reads (1.4, 1.5, 1.6)",
                doc.spec_version
            ),
        ));
    }
    let mut components = Vec::new();
    let mut by_ref: HashMap<String, usize> = HashMap::new();
    let mut stack: Vec<(RawComponent, usize)> =
        doc.components.into_iter().rev().map(|c| (c, 0)).collect();
    // Depth-first without recursion, so a deeply nested document cannot exhaust the stack.
    while let Some((c, depth)) = stack.pop() {
        if depth > MAX_NESTING {
            return Err(EvidenceError::at_path(
                Format::Cyclonedx,
                "$.components",
                format!("components nest deeper than {MAX_NESTING}"),
            ));
        }
        stack.extend(c.components.into_iter().rev().map(|n| (n, depth + 1)));
        if let Some(r) = c.bom_ref {
            by_ref.insert(r, components.len());
        }
        components.push(Component {
            name: c.name,
            version: c.version.filter(|s| !s.is_empty()),
            purl: c.purl.filter(|s| !s.is_empty()),
            licence: expression(c.licenses),
        });
    }
    let vulnerabilities = match doc.vulnerabilities {
        None => None,
        Some(list) => {
            let mut out = Vec::new();
            for (n, v) in list.into_iter().enumerate() {
                normalise(v, &components, &by_ref, &mut out).map_err(|e| {
                    EvidenceError::at_path(Format::Cyclonedx, format!("$.vulnerabilities[{n}]"), e)
                })?;
            }
            Some(vuln::finish(out))
        }
    };
    let subject = doc
        .metadata
        .and_then(|m| m.component)
        .map(|c| match c.version {
            Some(v) if !v.is_empty() => format!("{}@{v}", c.name),
            _ => c.name,
        });
    Ok(Sbom {
        format: SbomFormat::Cyclonedx,
        spec_version: doc.spec_version,
        subject: subject.filter(|s| !s.is_empty()),
        components: finish(components),
        vulnerabilities,
    })
}

/// A component's `licenses` as one SPDX expression: each entry, `AND`-ed.
fn expression(licenses: Vec<LicenseChoice>) -> Option<String> {
    let mut parts: Vec<String> = licenses
        .into_iter()
        .filter_map(|l| match (l.expression, l.license) {
            (Some(e), _) => Some(e),
            (None, Some(License { id: Some(id), .. })) => Some(id),
            (
                None,
                Some(License {
                    name: Some(name), ..
                }),
            ) => Some(name),
            _ => None,
        })
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    parts.dedup();
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(
            parts
                .iter()
                .map(|p| {
                    if p.contains(' ') {
                        format!("({p})")
                    } else {
                        p.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" AND "),
        ),
    }
}

/// One CycloneDX vulnerability as findings, one per affected component.
fn normalise(
    v: RawVulnerability,
    components: &[Component],
    by_ref: &HashMap<String, usize>,
    out: &mut Vec<Vulnerability>,
) -> Result<(), String> {
    // Vectors may come without their "CVSS:x.y/" prefix; the method says which it is.
    let vectors: Vec<(Option<f64>, Option<String>)> = v
        .ratings
        .iter()
        .filter_map(|r| {
            let prefix = match r.method.as_deref()? {
                "CVSSv2" => "",
                "CVSSv3" => "CVSS:3.0/",
                "CVSSv31" => "CVSS:3.1/",
                "CVSSv4" => "CVSS:4.0/",
                _ => return None,
            };
            let vector = r.vector.as_deref().map(|x| {
                if x.starts_with("CVSS:") {
                    x.to_owned()
                } else {
                    format!("{prefix}{x}")
                }
            });
            Some((r.score, vector))
        })
        .collect();
    let inputs = vectors.iter().map(|(score, vector)| CvssInput {
        score: *score,
        vector: vector.as_deref(),
    });
    let labels = v.ratings.iter().filter_map(|r| r.severity.as_deref());
    let (severity, cvss) = rate(inputs, labels)?;
    let aliases = tidy(v.references.into_iter().map(|r| r.id).collect(), &v.id);
    let affects = if v.affects.is_empty() {
        vec![Affect::default()]
    } else {
        v.affects
    };
    for a in affects {
        let component = by_ref.get(&a.reference).map(|&i| &components[i]);
        let affected_version = a
            .versions
            .iter()
            .find(|x| x.status.as_deref() == Some("affected"))
            .and_then(|x| x.version.clone());
        let fixed = a
            .versions
            .iter()
            .filter(|x| x.status.as_deref() == Some("unaffected"))
            .filter_map(|x| x.version.clone())
            .collect();
        out.push(Vulnerability {
            id: v.id.clone(),
            aliases: aliases.clone(),
            package: component.map_or_else(|| a.reference.clone(), |c| c.name.clone()),
            version: component
                .and_then(|c| c.version.clone())
                .or(affected_version),
            ecosystem: None,
            purl: component
                .and_then(|c| c.purl.clone())
                .or_else(|| a.reference.starts_with("pkg:").then(|| a.reference.clone())),
            severity,
            cvss: cvss.clone(),
            fixed_versions: tidy(fixed, ""),
        });
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(expecting = "a CycloneDX document object")]
struct Document {
    #[serde(rename = "bomFormat")]
    bom_format: String,
    #[serde(rename = "specVersion")]
    spec_version: String,
    #[serde(default, deserialize_with = "bounded_or_null")]
    components: Vec<RawComponent>,
    #[serde(default, deserialize_with = "json::bounded_option")]
    vulnerabilities: Option<Vec<RawVulnerability>>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
#[serde(expecting = "a metadata object")]
struct Metadata {
    #[serde(default)]
    component: Option<Described>,
}

/// The component an SBOM describes (only its name and version are read).
#[derive(Deserialize)]
#[serde(expecting = "a component object")]
struct Described {
    name: String,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a component object")]
struct RawComponent {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    purl: Option<String>,
    #[serde(default, rename = "bom-ref")]
    bom_ref: Option<String>,
    #[serde(default, deserialize_with = "bounded_or_null")]
    licenses: Vec<LicenseChoice>,
    #[serde(default, deserialize_with = "bounded_or_null")]
    components: Vec<RawComponent>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct LicenseChoice {
    #[serde(default)]
    license: Option<License>,
    #[serde(default)]
    expression: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct License {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a vulnerability object")]
struct RawVulnerability {
    id: String,
    #[serde(default, deserialize_with = "bounded_or_null")]
    references: Vec<Reference>,
    #[serde(default, deserialize_with = "bounded_or_null")]
    ratings: Vec<Rating>,
    #[serde(default, deserialize_with = "bounded_or_null")]
    affects: Vec<Affect>,
}

#[derive(Deserialize)]
#[serde(expecting = "a reference object")]
struct Reference {
    id: String,
}

#[derive(Deserialize)]
#[serde(expecting = "a rating object")]
struct Rating {
    #[serde(default)]
    score: Option<f64>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    vector: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(expecting = "an affects object")]
struct Affect {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(default, deserialize_with = "bounded_or_null")]
    versions: Vec<AffectedVersion>,
}

#[derive(Deserialize)]
#[serde(expecting = "a version object")]
struct AffectedVersion {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    status: Option<String>,
}
