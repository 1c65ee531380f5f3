//! Evidence about an artifact: a test report, a vulnerability scan, an SBOM…, signed or
//! not, attached and recorded.

use custody_model::Digest;
use custody_store::{Expect, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::{Actor, App, Once, Versioned, event, own_scope, write};
use crate::attestations::{self};
use crate::events::{self, EventBody, KeyUse};
use crate::records::{ArtifactRecord, EvidenceRecord, kind};
use crate::{AppError, AppResult};

/// Evidence to attach to an artifact (the body of
/// `POST /api/v1/artifacts/{digest}/evidence`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachEvidence {
    /// Its type, e.g. `test-results`. The types the policy's rules read take only their
    /// formats (test-results: junit; vulnerability-scan: sarif, osv, grype, trivy,
    /// cyclonedx; sbom: cyclonedx, spdx; attestation: dsse); other types take any.
    pub kind: String,
    /// Its format, e.g. `junit`.
    pub format: String,
    /// The report's digest.
    #[schema(value_type = String)]
    pub digest: Digest,
    /// The report itself, base64 (standard alphabet): custody parses it (refusing it when
    /// it is not what `format` says), keeps it under `digest` (which must be its SHA-256)
    /// and derives what it says. Without it only the digest is recorded, which is
    /// evidence of nothing: it counts neither as the environment's required evidence nor
    /// for any rule over what evidence says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

impl AttachEvidence {
    /// Evidence of type `kind` and `format` with the report `bytes` themselves.
    pub fn with_report(kind: &str, format: &str, bytes: &[u8]) -> AttachEvidence {
        use base64::Engine as _;
        use sha2::Digest as _;
        AttachEvidence {
            kind: kind.into(),
            format: format.into(),
            digest: Digest::sha256(sha2::Sha256::digest(bytes).into()),
            report: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    }
}

impl<S: Store> App<S> {
    /// Attaches evidence (test results, a vulnerability scan, an SBOM…) to an artifact.
    /// With an idempotency key, a retry returns the first ledger index and adds nothing.
    pub async fn attest(
        &self,
        actor: &Actor,
        artifact: &Digest,
        evidence: &AttachEvidence,
        idempotency_key: Option<&str>,
    ) -> AppResult<u64> {
        self.permit(actor, crate::Permission::Attest).await?;
        let (evidence_kind, format, file_digest) = (
            evidence.kind.as_str(),
            evidence.format.as_str(),
            &evidence.digest,
        );
        let request = json!({"artifact": artifact, "kind": evidence_kind, "format": format, "evidence": file_digest, "actor": actor.principal});
        if let Some(key) = idempotency_key {
            if let Some(((), index)) = self
                .replayed::<()>(&own_scope("attest", actor), key, &request)
                .await?
            {
                return Ok(index);
            }
        }
        let well_formed = !evidence_kind.is_empty()
            && evidence_kind.len() <= 64
            && evidence_kind.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && evidence_kind
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !well_formed {
            return Err(AppError::invalid(format!(
                "evidence type {evidence_kind:?} must be lowercase letters, digits and '-' (like test-results), at most 64"
            )));
        }
        crate::limits::label("evidence format", format, crate::limits::MAX_LABEL)?;
        crate::evidence::kind_accepts(evidence_kind, format)?;
        let kept = match &evidence.report {
            Some(report) => Some(
                self.keep_report(actor, evidence_kind, format, file_digest, report)
                    .await?,
            ),
            None => None,
        };
        let read = kept.as_ref().map(|k| k.read.clone());
        self.retrying(|| async {
            let mut record: Versioned<ArtifactRecord> = self
                .require(kind::ARTIFACT, &artifact.to_string(), || {
                    format!("no artifact {artifact} is registered\nhint: register it first with `custody artifact register`")
                })
                .await?;
            let evidence = EvidenceRecord {
                kind: evidence_kind.into(),
                format: format.into(),
                digest: file_digest.clone(),
                by: actor.principal.clone(),
                at: actor.now,
                read: read.is_some(),
                // An attestation's summary is empty: it says nothing the page could show.
                summary: read
                    .as_ref()
                    .map(|r| r.summary.clone())
                    .filter(|s| *s != custody_evidence::Summary::default()),
                subject: read.as_ref().map(|r| r.subject.clone()).unwrap_or_default(),
            };
            record.value.evidence.push(evidence.clone());
            // What custody read, signed about the artifact (its name as registered).
            let statement = match &kept {
                Some(k) => Some(attestations::sign_statement(
                    self.attestor.as_ref(),
                    &record.value.name,
                    artifact,
                    k.predicate_type,
                    k.predicate.clone(),
                )?),
                None => None,
            };
            let state = vec![write(kind::ARTIFACT, &artifact.to_string(), &record.value, Expect::Version(record.version))?];
            let once = idempotency_key.map(|key| Once { scope: own_scope("attest", actor), key, request: &request });
            let events = vec![event(
                actor,
                EventBody::EvidenceAttached(events::EvidenceAttached {
                    artifacts: vec![artifact.clone()],
                    kind: evidence_kind.into(),
                    format: format.into(),
                    evidence: file_digest.clone(),
                    report: read.clone(),
                    keys: statement
                        .iter()
                        .map(|_| KeyUse::of(self.attestor.public_key()))
                        .collect(),
                    statement,
                }),
            )?];
            let appended = match self.append_once(events, state, once, &()).await? {
                Ok(appended) => appended,
                Err(((), index)) => return Ok(index),
            };
            Ok(appended.first_index)
        })
        .await
    }
}
