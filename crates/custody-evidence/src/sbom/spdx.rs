//! SPDX 2.2 / 2.3 JSON documents.

use super::{Component, Sbom, SbomFormat, finish};
use crate::json::{self, bounded_or_null};
use crate::{EvidenceError, Format};
use serde::Deserialize;

/// Parses an SPDX 2.2 or 2.3 JSON document.
pub fn parse(bytes: &[u8]) -> Result<Sbom, EvidenceError> {
    let doc: Document = json::from_slice(Format::Spdx, bytes)?;
    if !matches!(doc.spdx_version.as_str(), "SPDX-2.2" | "SPDX-2.3") {
        return Err(EvidenceError::at_path(
            Format::Spdx,
            "$.spdxVersion",
            format!("{:?} is not SPDX-2.2 or SPDX-2.3", doc.spdx_version),
        ));
    }
    let components = doc
        .packages
        .into_iter()
        .map(|p| {
            let purl = p
                .external_refs
                .into_iter()
                .find(|r| r.reference_type == "purl")
                .map(|r| r.reference_locator);
            Component {
                name: p.name,
                version: p.version_info.filter(|s| !s.is_empty()),
                purl,
                licence: known(p.license_concluded).or_else(|| known(p.license_declared)),
            }
        })
        .collect();
    Ok(Sbom {
        format: SbomFormat::Spdx,
        spec_version: doc.spdx_version,
        subject: doc.name.filter(|s| !s.is_empty()),
        components: finish(components),
        vulnerabilities: None,
    })
}

/// A licence field's value, unless it says nothing (absent, empty, NOASSERTION, NONE).
fn known(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_owned())
        .filter(|v| !matches!(v.as_str(), "" | "NOASSERTION" | "NONE"))
}

#[derive(Deserialize)]
#[serde(expecting = "an SPDX document object")]
struct Document {
    #[serde(rename = "spdxVersion")]
    spdx_version: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "bounded_or_null")]
    packages: Vec<Package>,
}

#[derive(Deserialize)]
#[serde(expecting = "a package object")]
struct Package {
    name: String,
    #[serde(default, rename = "versionInfo")]
    version_info: Option<String>,
    #[serde(default, rename = "licenseConcluded")]
    license_concluded: Option<String>,
    #[serde(default, rename = "licenseDeclared")]
    license_declared: Option<String>,
    #[serde(default, rename = "externalRefs", deserialize_with = "bounded_or_null")]
    external_refs: Vec<ExternalRef>,
}

#[derive(Deserialize)]
#[serde(expecting = "an externalRef object")]
struct ExternalRef {
    #[serde(rename = "referenceType")]
    reference_type: String,
    #[serde(rename = "referenceLocator")]
    reference_locator: String,
}
