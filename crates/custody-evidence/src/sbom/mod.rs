//! Software bills of materials: CycloneDX 1.4–1.6 JSON and SPDX 2.2/2.3 JSON, read into
//! the same [`Sbom`]: every component with its name, version, purl and licence as one
//! SPDX expression.
//!
//! Licences: CycloneDX `licenses[]` entries are `{"license": {"id" | "name"}}` or
//! `{"expression"}`; several entries all apply, so they are joined with `AND` (the
//! stricter reading: a policy must accept each). A `name` that is not an SPDX id is kept
//! as written, so the licence rules report it as not an SPDX expression. SPDX packages
//! use `licenseConcluded`, else `licenseDeclared`; `NOASSERTION` and `NONE` are no
//! licence. What a component's licence means for a policy is [`crate::licence`]'s job.
//!
//! Refused: a document that is not the format (`bomFormat` must be `CycloneDX` and
//! `specVersion` 1.4, 1.5 or 1.6; `spdxVersion` must be `SPDX-2.2` or `SPDX-2.3`), so
//! `[]` or `{"hello": "world"}` is not an SBOM; a component without a name; wrong types.

mod cyclonedx;
mod spdx;

pub use cyclonedx::parse as parse_cyclonedx;
pub use spdx::parse as parse_spdx;

use crate::Format;
use crate::summary::LicenceTotals;
use crate::vuln::Vulnerability;
use serde::{Deserialize, Serialize};

/// Which SBOM format a document was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SbomFormat {
    /// CycloneDX JSON.
    Cyclonedx,
    /// SPDX JSON.
    Spdx,
}

impl From<SbomFormat> for Format {
    fn from(f: SbomFormat) -> Format {
        match f {
            SbomFormat::Cyclonedx => Format::Cyclonedx,
            SbomFormat::Spdx => Format::Spdx,
        }
    }
}

/// An SBOM, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sbom {
    /// CycloneDX or SPDX.
    pub format: SbomFormat,
    /// The document's `specVersion` / `spdxVersion`, as written (`1.6`, `SPDX-2.3`).
    pub spec_version: String,
    /// What it describes, when it says: CycloneDX's `metadata.component` (`name@version`),
    /// SPDX's document `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Every component (CycloneDX, nested ones included) or package (SPDX), sorted by
    /// name, version, purl, licence; exact duplicates dropped.
    pub components: Vec<Component>,
    /// A CycloneDX document's `vulnerabilities`, one per affected component, when it has
    /// that key (`Some(vec![])` is a scan that found nothing); `None` for SPDX or a
    /// CycloneDX document without the key.
    pub vulnerabilities: Option<Vec<Vulnerability>>,
}

/// One component or package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Component {
    /// Its name.
    pub name: String,
    /// Its version, if given.
    pub version: Option<String>,
    /// Its package URL, if given.
    pub purl: Option<String>,
    /// Its licence as one SPDX expression as the document wrote it; `None` when it
    /// declares none (or only NOASSERTION / NONE).
    pub licence: Option<String>,
}

impl Sbom {
    /// Its licences: the distinct expressions and the components without one.
    pub fn licence_totals(&self) -> LicenceTotals {
        let mut t = LicenceTotals::default();
        t.add(&self.components);
        t
    }
}

/// Sorts components into their recorded order and drops exact duplicates.
fn finish(mut components: Vec<Component>) -> Vec<Component> {
    components.sort();
    components.dedup();
    components
}
