//! Evidence reports read by custody itself: the raw report a pipeline attaches is parsed
//! here (refused, naming the line or JSON path, when it is not what its format says),
//! kept as a content-addressed blob, and read again from the store whenever a decision
//! gathers its facts, so that what a gate counts is what custody read, never what a
//! client claimed.
//!
//! What custody read is also said in a statement it signs with its attestor key, about
//! the artifact: the in-toto test-result predicate (v0.1) for a test report, custody's
//! evidence predicate (`docs/evidence-statement.md`) for any other, each naming the
//! stored report by its digest.
//!
//! Formats: those `custody_evidence` reads (`junit`, `sarif`, `osv`, `grype`, `trivy`,
//! `cyclonedx`, `spdx`), and `dsse`: an attestation made elsewhere, kept only when one of
//! the keys the policy trusts (its builders' and release keys) signed it. What it does not
//! do: judge the content (the policy's rules do, in `custody_policy`).

use custody_crypto::PublicKey;
use custody_crypto::dsse::{self, Envelope};
use custody_evidence::{Evidence, Format, MAX_INPUT_BYTES, Summary};
use custody_model::Digest;
use custody_policy::{Policy, ReportFacts};
use serde::{Deserialize, Serialize};

use crate::app::{Actor, App};
use crate::{AppError, AppResult};

/// The format name of an attestation made elsewhere.
pub const DSSE: &str = "dsse";

/// What custody read in a report, as the `evidence.attached` event records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRead {
    /// Its size in bytes (the blob named by the evidence digest holds it).
    pub size: u64,
    /// Its media type, as stored.
    pub media_type: String,
    /// What it says, in totals (empty for `dsse`).
    pub summary: Summary,
    /// What it is about, as its writer names it (`custody_evidence::Evidence::subject`;
    /// empty when it does not say): a later report replaces this one for the rules only
    /// when it is of the same type and format and about the same thing.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// For `dsse`: the key ids of the trusted keys whose signatures verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signed_by: Vec<String>,
}

/// A report parsed: the normalised content (none for `dsse`) and what the event records.
pub(crate) struct Parsed {
    pub(crate) evidence: Option<Evidence>,
    pub(crate) read: ReportRead,
}

/// The in-toto test-result predicate, the statement custody signs about a test report.
pub const TEST_RESULT_V0_1: &str = "https://in-toto.io/attestation/test-result/v0.1";

/// custody's evidence predicate, the statement it signs about any other report it read
/// (`docs/evidence-statement.md`).
pub const EVIDENCE_V1: &str = "https://custody.dev/evidence/v1";

/// A report kept, with the predicate of the statement custody signs about it.
pub(crate) struct Kept {
    pub(crate) read: ReportRead,
    pub(crate) predicate_type: &'static str,
    pub(crate) predicate: serde_json::Value,
}

/// What custody says it read in a report of `kind` and `format` stored as `digest`.
fn predicate(
    kind: &str,
    format: &str,
    digest: &Digest,
    parsed: &Parsed,
) -> (&'static str, serde_json::Value) {
    use serde_json::json;
    let report = json!({
        "name": format!("{kind} ({format})"),
        "digest": {"sha256": digest.hex()},
        "mediaType": parsed.read.media_type,
    });
    match &parsed.evidence {
        Some(Evidence::Tests(r)) => {
            let t = r.totals();
            let failed: Vec<String> = r
                .failing
                .iter()
                .map(|c| match &c.classname {
                    Some(class) if !class.is_empty() => format!("{}/{class}.{}", c.suite, c.name),
                    _ => format!("{}/{}", c.suite, c.name),
                })
                .collect();
            let mut p = json!({
                "result": if t.failed + t.errored > 0 { "FAILED" } else { "PASSED" },
                "configuration": [report],
            });
            if !failed.is_empty() {
                p["failedTests"] = json!(failed);
            }
            (TEST_RESULT_V0_1, p)
        }
        _ => {
            let mut p = json!({
                "type": kind,
                "format": format,
                "report": {"digest": {"sha256": digest.hex()}, "mediaType": parsed.read.media_type, "size": parsed.read.size},
                "summary": parsed.read.summary,
            });
            if !parsed.read.signed_by.is_empty() {
                p["signedBy"] = json!(parsed.read.signed_by);
            }
            (EVIDENCE_V1, p)
        }
    }
}

/// The media type a report of `format` is stored as.
fn media_type(format: &str) -> &'static str {
    match format {
        "junit" => "application/xml",
        "sarif" => "application/sarif+json",
        DSSE => "application/vnd.dsse.envelope.v1+json",
        _ => "application/json",
    }
}

/// The keys a `dsse` attestation may be signed by: the policy's builder and release keys.
fn trusted_keys(policy: &Policy) -> Vec<PublicKey> {
    policy
        .builders()
        .iter()
        .map(|b| b.key.clone())
        .chain(policy.release_keys().cloned())
        .collect()
}

/// The evidence types the policy's rules read: the formats each may come in, and the
/// content its report must hold (none for an attestation).
fn carries(kind: &str) -> Option<(&'static [&'static str], Option<&'static str>)> {
    Some(match kind {
        "test-results" => (&["junit"], Some("tests")),
        "static-analysis" => (&["sarif"], Some("findings")),
        "vulnerability-scan" => (
            &["osv", "grype", "trivy", "cyclonedx"],
            Some("vulnerabilities"),
        ),
        "sbom" => (&["cyclonedx", "spdx"], Some("licences")),
        "attestation" => (&["dsse"], None),
        _ => return None,
    })
}

/// Whether evidence of type `kind` may come in `format`. The types the policy's rules
/// read are fixed to the formats that say what those rules read: a test report is never a
/// vulnerability scan or an SBOM, however it is labelled. Any other (custom) type takes
/// any format.
pub(crate) fn kind_accepts(kind: &str, format: &str) -> AppResult<()> {
    let Some((formats, _)) = carries(kind) else {
        return Ok(());
    };
    if formats.contains(&format) {
        return Ok(());
    }
    let hint = match format {
        "sarif" => "record it as --kind static-analysis (custody reads a SARIF file's results by rule and level, not as vulnerabilities), or attach the scanner's own JSON (osv, grype, trivy)".to_owned(),
        _ => format!("record it under a type of its own (--kind NAME), or attach the {kind} report itself"),
    };
    Err(AppError::invalid(format!(
        "{kind} evidence is read from {}, not {format}: a report in {format} says nothing a rule over {kind} reads\nhint: {hint}",
        formats.join(", ")
    )))
}

/// Whether a report of type `kind`, read as `read`, holds what the rules over that type
/// read: a piece that says nothing about them would otherwise stand where a report
/// should (a CycloneDX SBOM listing no vulnerabilities is no vulnerability scan).
pub(crate) fn kind_holds(kind: &str, format: &str, read: &ReportRead) -> AppResult<()> {
    let Some((_, Some(content))) = carries(kind) else {
        return Ok(());
    };
    if holds(&read.summary).contains(&content) {
        // An SBOM that lists no component says nothing about licences, yet would stand
        // where one that listed a denied licence stood.
        if content == "licences"
            && read
                .summary
                .licences
                .as_ref()
                .is_some_and(|l| l.components == 0)
        {
            return Err(AppError::invalid(format!(
                "this {format} SBOM lists no components, so it says nothing an sbom rule reads\nhint: attach the SBOM of what the artifact contains"
            )));
        }
        return Ok(());
    }
    Err(AppError::invalid(format!(
        "this {format} report holds no {content}, so it is no {kind} evidence{}",
        match (kind, format) {
            ("vulnerability-scan", "cyclonedx") =>
                "\nhint: a CycloneDX scan result lists `vulnerabilities` (an empty array when the scan found none); attach an SBOM without them as --kind sbom",
            _ => "",
        }
    )))
}

/// What a report read as `summary` holds that the policy's rules read.
pub(crate) fn holds(summary: &Summary) -> Vec<&'static str> {
    [
        ("tests", summary.tests.is_some()),
        ("findings", summary.findings.is_some()),
        ("vulnerabilities", summary.vulnerabilities.is_some()),
        ("licences", summary.licences.is_some()),
    ]
    .into_iter()
    .filter(|(_, held)| *held)
    .map(|(name, _)| name)
    .collect()
}

/// What a report of `format` may hold (for evidence recorded before custody kept what
/// each report holds).
pub(crate) fn may_hold(format: &str) -> &'static [&'static str] {
    match format {
        "junit" => &["tests"],
        "sarif" => &["findings"],
        "osv" | "grype" | "trivy" => &["vulnerabilities"],
        "spdx" => &["licences"],
        "cyclonedx" => &["licences", "vulnerabilities"],
        _ => &[],
    }
}

/// What `evidence`, the report named `digest`, says under `policy`'s rules for
/// `environment` (the default rules where the policy has no such environment): what a
/// decision's facts hold of it, then and when an auditor reads the report again.
pub(crate) fn report_facts(
    policy: &Policy,
    environment: &str,
    evidence: &Evidence,
    digest: &str,
) -> ReportFacts {
    let default = custody_policy::EvidenceRules::default();
    let rules = policy
        .environment(environment)
        .map_or(&default, |e| &e.rules);
    ReportFacts::read(rules, evidence, digest)
}

/// Parses `bytes` as a report of `format` (input over the evidence reader's bound is
/// refused before parsing); a `dsse` envelope must verify with one of `trusted`. Every
/// refusal is [`AppError::Invalid`], naming the line or JSON path at fault.
pub(crate) fn parse(trusted: &[PublicKey], format: &str, bytes: &[u8]) -> AppResult<Parsed> {
    let size = bytes.len() as u64;
    if size > MAX_INPUT_BYTES {
        return Err(AppError::invalid(format!(
            "the {format} report is {size} bytes, more than the {MAX_INPUT_BYTES} custody reads"
        )));
    }
    if format == DSSE {
        let envelope: Envelope = serde_json::from_slice(bytes)
            .map_err(|e| AppError::invalid(format!("dsse: not a DSSE envelope ({e})")))?;
        let verified = dsse::verify(&envelope, trusted, 1).map_err(|e| {
            AppError::invalid(format!(
                "dsse: the envelope is not signed by a key the policy trusts ({e})"
            ))
        })?;
        let signed_by = verified.key_ids().iter().map(ToString::to_string).collect();
        return Ok(Parsed {
            evidence: None,
            read: ReportRead {
                size,
                media_type: media_type(format).into(),
                summary: Summary::default(),
                subject: String::new(),
                signed_by,
            },
        });
    }
    let parsed_format: Format = format
        .parse()
        .map_err(|e: custody_evidence::UnknownFormat| AppError::invalid(format!("{e}, or dsse")))?;
    let evidence = custody_evidence::parse(parsed_format, bytes)
        .map_err(|e| AppError::invalid(e.to_string()))?;
    let summary = Summary::of([&evidence]);
    let subject = evidence.subject();
    Ok(Parsed {
        evidence: Some(evidence),
        read: ReportRead {
            size,
            media_type: media_type(format).into(),
            summary,
            subject,
            signed_by: Vec::new(),
        },
    })
}

/// Parsed reports kept at most, counted in the bytes of their source (the cache is
/// cleared when it would hold more): a decision reads each report it weighs, and so
/// does every re-check and the metrics, so a 20 MB SBOM is parsed once, not per decision.
const REPORT_BYTES_KEPT: u64 = 256 << 20;

/// Parsed stored reports by digest (a blob never changes under its digest), and the
/// source bytes they were parsed from, summed.
#[derive(Default)]
pub(crate) struct ReportCache {
    parsed: std::collections::HashMap<Digest, std::sync::Arc<Evidence>>,
    bytes: u64,
}

impl<S: custody_store::Store> App<S> {
    /// The stored report `digest` of `format`, parsed (`None` for `dsse`: an
    /// attestation carries no content the rules count). The report is read whole from the
    /// store, checked against its name, and parsed again, once, then kept: a stored report
    /// that no longer parses, or is missing, is an integrity failure (it was parsed before
    /// its event was appended).
    pub(crate) async fn stored_report(
        &self,
        format: &str,
        digest: &Digest,
    ) -> AppResult<Option<std::sync::Arc<Evidence>>> {
        if format == DSSE {
            return Ok(None);
        }
        if let Some(kept) = self
            .reports
            .lock()
            .ok()
            .and_then(|c| c.parsed.get(digest).cloned())
        {
            return Ok(Some(kept));
        }
        let bytes = self.store.read_blob(digest).await?.ok_or_else(|| {
            AppError::Integrity(format!(
                "the {format} report {digest} the ledger names is missing from the store"
            ))
        })?;
        let parsed = parse(&[], format, &bytes).map_err(|e| {
            AppError::Integrity(format!(
                "the stored {format} report {digest} no longer reads: {e}"
            ))
        })?;
        let Some(evidence) = parsed.evidence.map(std::sync::Arc::new) else {
            return Ok(None);
        };
        if let Ok(mut cache) = self.reports.lock() {
            let size = bytes.len() as u64;
            if cache.bytes + size > REPORT_BYTES_KEPT {
                *cache = ReportCache::default();
            }
            cache.bytes += size;
            cache.parsed.insert(digest.clone(), evidence.clone());
        }
        Ok(Some(evidence))
    }

    /// What each piece of `evidence` says, in totals (`None` for one custody did not read,
    /// or an attestation): as its record keeps it, or, for a record made before records
    /// kept it, read again from the stored report.
    pub async fn evidence_summaries(
        &self,
        evidence: &[crate::records::EvidenceRecord],
    ) -> AppResult<Vec<Option<Summary>>> {
        let mut out = Vec::with_capacity(evidence.len());
        for e in evidence {
            out.push(match (&e.summary, e.read) {
                (Some(s), _) => Some(s.clone()),
                (None, true) => self
                    .stored_report(&e.format, &e.digest)
                    .await?
                    .map(|r| Summary::of([&*r])),
                (None, false) => None,
            });
        }
        Ok(out)
    }

    /// The stored report `digest`, as it was attached (an auditor checks it hashes to the
    /// digest the ledger names).
    pub async fn report(&self, digest: &Digest) -> AppResult<bytes::Bytes> {
        self.store.read_blob(digest).await?.ok_or_else(|| {
            AppError::NotFound(format!(
                "no report {digest} is stored\nhint: `custody history --type evidence.attached` lists the reports evidence names (`evidence`)"
            ))
        })
    }

    /// What the stored report `digest` of `format` says under `policy`'s rules for
    /// `environment` (the default rules where the policy has no such environment).
    pub(crate) async fn report_facts(
        &self,
        policy: &Policy,
        environment: &str,
        format: &str,
        digest: &Digest,
    ) -> AppResult<ReportFacts> {
        let name = digest.to_string();
        Ok(match self.stored_report(format, digest).await? {
            Some(evidence) => report_facts(policy, environment, &evidence, &name),
            None => ReportFacts {
                format: format.to_owned(),
                digest: name,
                ..ReportFacts::default()
            },
        })
    }

    /// The vulnerabilities an `evidence.attached` event's report lists (none when custody
    /// did not read it, or it counted none: a clean scan is not read again).
    pub async fn reported_vulnerabilities(
        &self,
        attached: &crate::events::EvidenceAttached,
    ) -> AppResult<Vec<custody_evidence::vuln::Vulnerability>> {
        let counted = attached
            .report
            .as_ref()
            .and_then(|r| r.summary.vulnerabilities.as_ref())
            .is_some_and(|v| v.total > 0);
        if !counted {
            return Ok(Vec::new());
        }
        Ok(
            match self
                .stored_report(&attached.format, &attached.evidence)
                .await?
                .as_deref()
            {
                Some(Evidence::Vulnerabilities(r)) => r.vulnerabilities.clone(),
                Some(Evidence::Sbom(s)) => s.vulnerabilities.clone().unwrap_or_default(),
                _ => Vec::new(),
            },
        )
    }

    /// Reads the base64 `report` attached as `kind` evidence in `format` with digest
    /// `digest`, parses it and keeps it as a blob (before the append whose event names it,
    /// so an event never names a missing report). Refused, with nothing kept, when it is
    /// not base64, does not hash to `digest`, does not parse, or holds nothing the rules
    /// over `kind` read.
    pub(crate) async fn keep_report(
        &self,
        actor: &Actor,
        kind: &str,
        format: &str,
        digest: &Digest,
        report: &str,
    ) -> AppResult<Kept> {
        use base64::Engine as _;
        use sha2::Digest as _;
        // Bound the decoded size by the encoded one before decoding anything.
        let most = MAX_INPUT_BYTES.div_ceil(3) * 4;
        if report.len() as u64 > most {
            return Err(AppError::invalid(format!(
                "the {format} report is larger than the {MAX_INPUT_BYTES} bytes custody reads"
            )));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(report)
            .map_err(|e| AppError::invalid(format!("report: not base64 ({e})")))?;
        let actual = Digest::sha256(sha2::Sha256::digest(&bytes).into());
        if &actual != digest {
            return Err(AppError::invalid(format!(
                "the report's SHA-256 is {actual}, not the digest {digest} given"
            )));
        }
        let trusted = match format {
            DSSE => trusted_keys(&*self.policy().await?),
            _ => Vec::new(),
        };
        let parsed = parse(&trusted, format, &bytes)?;
        kind_holds(kind, format, &parsed.read)?;
        let (predicate_type, predicate) = predicate(kind, format, digest, &parsed);
        self.store
            .put_blob(&parsed.read.media_type, bytes.into(), actor.now)
            .await?;
        Ok(Kept {
            read: parsed.read,
            predicate_type,
            predicate,
        })
    }
}
