//! custody's evidence reader: the reports a pipeline attaches to an artifact, parsed and
//! normalised so that a policy can decide on what they say.
//!
//! - Test results: JUnit XML as Maven Surefire, pytest, jest-junit and cargo-nextest
//!   write it ([`junit`]).
//! - Static analysis: SARIF 2.1.0 ([`sarif`]).
//! - Vulnerability scans: OSV-Scanner, Grype and Trivy JSON, and the `vulnerabilities` of a
//!   CycloneDX document ([`vuln`]).
//! - SBOMs: CycloneDX 1.4–1.6 JSON and SPDX 2.2/2.3 JSON ([`sbom`]), with licences as SPDX
//!   expressions, and [`licence`] rules (allow and deny lists) to judge them.
//!
//! Each parser is strict about what custody needs (a truncated file, a wrong root, a
//! field of the wrong type is an [`EvidenceError`] naming the line or JSON path) and
//! ignores everything else. Results are plain serde types with stable field names, kept
//! deterministic for signing: sorted where order carries no meaning, and without floats
//! (CVSS scores are tenths). [`Summary`] folds any number of reports into the totals a
//! promotion gate reads.
//!
//! What it does not do: no file or network I/O (callers pass bytes or a reader), no clock,
//! and no trust decisions. Whether a report is signed, by whom, and whether it is about
//! the artifact at hand is decided elsewhere (DSSE verification lives in custody-crypto);
//! this crate only reads what a report says.
//!
//! ```
//! use custody_evidence::{Evidence, Format, Summary, parse};
//!
//! let xml = br#"<testsuite name="shop">
//!   <testcase name="pays"/>
//!   <testcase name="refunds"><failure message="expected 2, got 3">trace</failure></testcase>
//! </testsuite>"#;
//! let evidence = parse(Format::Junit, xml).unwrap();
//! let Evidence::Tests(report) = &evidence else { unreachable!() };
//! assert_eq!(report.failing[0].name, "refunds");
//! assert_eq!(report.failing[0].message, "expected 2, got 3");
//!
//! let summary = Summary::of([&evidence]);
//! let tests = summary.tests.unwrap();
//! assert_eq!((tests.passed, tests.failed), (1, 1));
//!
//! // Truncated: refused, with the line of the element left open.
//! let err = parse(Format::Junit, br#"<testsuite name="shop" tests="1"><testcase name="a""#)
//!     .unwrap_err();
//! assert!(err.to_string().starts_with("junit: line 1: "));
//! ```

mod error;
mod json;
pub mod junit;
pub mod licence;
pub mod sarif;
pub mod sbom;
mod sniff;
mod summary;
pub mod vuln;

pub use error::{EvidenceError, Location};
pub use sniff::sniff;
pub use summary::{
    FindingTotals, LicenceTotals, SeverityCount, Summary, TestTotals, VulnerabilityTotals,
};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Read;
use std::str::FromStr;

/// The largest report custody reads: 256 MiB. Larger input is refused before parsing.
pub const MAX_INPUT_BYTES: u64 = 256 * 1024 * 1024;

/// The most items custody reads from any one list of a report (components, results,
/// vulnerabilities, matches, test cases in a suite): a million.
pub const MAX_ITEMS: usize = 1_000_000;

/// How many failing test cases a [`junit::TestReport`] names (the rest are counted only).
pub const MAX_LISTED: usize = 100;

/// The longest message text kept for a failure or finding, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// A report format custody reads. Its [`fmt::Display`] / [`FromStr`] form is the lowercase
/// name used on the command line and in records (`junit`, `cyclonedx`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JUnit XML test results.
    Junit,
    /// SARIF 2.1.0 static-analysis results.
    Sarif,
    /// OSV-Scanner JSON output.
    Osv,
    /// Grype JSON output.
    Grype,
    /// Trivy JSON output.
    Trivy,
    /// A CycloneDX JSON document (SBOM, with or without vulnerabilities).
    Cyclonedx,
    /// An SPDX JSON document (SBOM).
    Spdx,
}

impl Format {
    /// Every format, in a fixed order.
    pub const ALL: [Format; 7] = [
        Format::Junit,
        Format::Sarif,
        Format::Osv,
        Format::Grype,
        Format::Trivy,
        Format::Cyclonedx,
        Format::Spdx,
    ];

    /// The lowercase name, e.g. `junit`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Junit => "junit",
            Format::Sarif => "sarif",
            Format::Osv => "osv",
            Format::Grype => "grype",
            Format::Trivy => "trivy",
            Format::Cyclonedx => "cyclonedx",
            Format::Spdx => "spdx",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name given is not one of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown evidence format {0:?} (expected one of junit, sarif, osv, grype, trivy, cyclonedx, spdx)"
)]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// What one report says, normalised. Serialised with the kind as the single key:
/// `{"tests": {…}}`, `{"findings": {…}}`, `{"vulnerabilities": {…}}`, `{"sbom": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Evidence {
    /// Test results (JUnit).
    Tests(junit::TestReport),
    /// Static-analysis findings (SARIF).
    Findings(sarif::FindingReport),
    /// A vulnerability scan (OSV-Scanner, Grype, Trivy).
    Vulnerabilities(vuln::VulnerabilityReport),
    /// A bill of materials (CycloneDX, SPDX); a CycloneDX one may carry vulnerabilities.
    Sbom(sbom::Sbom),
}

impl Evidence {
    /// The format it was read from.
    pub fn format(&self) -> Format {
        match self {
            Evidence::Tests(_) => Format::Junit,
            Evidence::Findings(_) => Format::Sarif,
            Evidence::Vulnerabilities(r) => r.format,
            Evidence::Sbom(s) => s.format.into(),
        }
    }

    /// What the report is about, as its writer names it: the suites and test cases a
    /// test report ran, the tools of a static analysis, the target a scanner scanned, the
    /// component an SBOM describes; "" when it does not say (or ran nothing, scanned
    /// nothing). A later report of the same format replaces an earlier one only when it is
    /// about the same thing (a re-run, a re-scan); one that does not say replaces nothing.
    pub fn subject(&self) -> String {
        let list = |names: Vec<&str>| serde_json::to_string(&names).unwrap_or_default();
        let text = match self {
            Evidence::Tests(r) if r.cases_digest.is_empty() => String::new(),
            Evidence::Tests(r) => {
                let mut names: Vec<&str> = r
                    .suites
                    .iter()
                    .filter(|s| s.tests > 0)
                    .map(|s| s.name.as_str())
                    .collect();
                names.sort_unstable();
                names.dedup();
                format!("{} cases {}", list(names), &r.cases_digest[..16])
            }
            Evidence::Findings(r) => list(r.tools.iter().map(String::as_str).collect()),
            Evidence::Vulnerabilities(r) => r.target.clone().unwrap_or_default(),
            Evidence::Sbom(s) => s.subject.clone().unwrap_or_default(),
        };
        // Bounded: a report of 100,000 suites names them by their digest.
        if text.chars().count() > MAX_SUBJECT_CHARS {
            use sha2::Digest as _;
            format!(
                "sha256:{}",
                hex::encode(sha2::Sha256::digest(text.as_bytes()))
            )
        } else {
            text
        }
    }
}

/// The longest subject ([`Evidence::subject`]) kept as written.
pub const MAX_SUBJECT_CHARS: usize = 200;

/// Parses a report of the named format from bytes. Input over [`MAX_INPUT_BYTES`] is
/// refused before any parsing.
pub fn parse(format: Format, bytes: &[u8]) -> Result<Evidence, EvidenceError> {
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > MAX_INPUT_BYTES {
        return Err(EvidenceError::TooLarge {
            format,
            size,
            max: MAX_INPUT_BYTES,
        });
    }
    Ok(match format {
        Format::Junit => Evidence::Tests(junit::parse(bytes)?),
        Format::Sarif => Evidence::Findings(sarif::parse(bytes)?),
        Format::Osv => Evidence::Vulnerabilities(vuln::parse_osv(bytes)?),
        Format::Grype => Evidence::Vulnerabilities(vuln::parse_grype(bytes)?),
        Format::Trivy => Evidence::Vulnerabilities(vuln::parse_trivy(bytes)?),
        Format::Cyclonedx => Evidence::Sbom(sbom::parse_cyclonedx(bytes)?),
        Format::Spdx => Evidence::Sbom(sbom::parse_spdx(bytes)?),
    })
}

/// Reads a report from `reader` (at most [`MAX_INPUT_BYTES`]; one byte more is refused
/// as too large without reading further) and parses it as [`parse`] does.
pub fn parse_reader(format: Format, reader: impl Read) -> Result<Evidence, EvidenceError> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| EvidenceError::Read { format, source })?;
    parse(format, &bytes)
}

/// The first line of `text`, trimmed and cut to [`MAX_MESSAGE_CHARS`] (with `…`).
pub(crate) fn first_line(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or("").trim();
    bounded_text(line)
}

/// `text` cut to [`MAX_MESSAGE_CHARS`] characters (with `…` when cut).
pub(crate) fn bounded_text(text: &str) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
