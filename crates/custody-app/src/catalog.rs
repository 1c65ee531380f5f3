//! What is promoted: the policy, artifacts with their builds and provenance, evidence,
//! and signed releases.

use custody_crypto::dsse::Envelope;
use custody_model::Digest;
use custody_policy::KeyPurpose;
use custody_store::Expect;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::{Actor, App, Once, Versioned, event, expect_version, own_scope, write};
use crate::attestations::{
    self, BuildFields, ManifestArtifact, ReadProvenance, envelope_digest, sha256,
};
use crate::events::{self, EventBody, KeyUse};
use crate::records::{ArtifactRecord, BuildSourceRecord, EvidenceRecord, ReleaseRecord, kind};
use crate::{AppError, AppResult};
use custody_store::Store;

/// An artifact to register (the body of `POST /api/v1/artifacts`). Its provenance, if
/// any, was signed by the builder on their own machine or token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterArtifact {
    /// Its name.
    pub name: String,
    /// Its digest (`sha256:…`).
    #[schema(value_type = String)]
    pub digest: Digest,
    /// Its size in bytes, if the caller hashed the file.
    #[serde(default)]
    pub size: Option<u64>,
    /// The build as the builder declares it.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub build: Option<BuildFields>,
    /// Its SLSA provenance, a DSSE envelope signed by a builder key the policy trusts.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub provenance: Option<Envelope>,
}

impl RegisterArtifact {
    /// The registration of `name` at `digest` built as `build` declares, with SLSA v1
    /// provenance written from it and signed by `builder` (the builder's key stays with the
    /// caller; only the envelope travels).
    pub fn signed_by(
        builder: &dyn custody_crypto::Signer,
        name: &str,
        digest: Digest,
        size: Option<u64>,
        build: BuildFields,
    ) -> AppResult<RegisterArtifact> {
        let provenance = attestations::sign_provenance(builder, name, &digest, &build)?;
        Ok(RegisterArtifact {
            name: name.into(),
            digest,
            size,
            build: Some(build),
            provenance: Some(provenance),
        })
    }
}

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

/// A release to record (the body of `POST /api/v1/releases`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordRelease {
    /// The release manifest statement in a DSSE envelope, signed by the release signer.
    #[schema(value_type = Object)]
    pub manifest: Envelope,
}

impl RecordRelease {
    /// The release `name@version` of `artifacts`, its manifest made by `by` at `at` and
    /// signed by `key` (unsigned without one: recorded, but no gate will pass it). The key
    /// stays with the caller; only the envelope travels.
    pub fn signed(
        name: &str,
        version: &str,
        artifacts: &[ManifestArtifact],
        by: &str,
        at: custody_model::Timestamp,
        key: Option<&dyn custody_crypto::Signer>,
    ) -> AppResult<RecordRelease> {
        let manifest = attestations::release_manifest(name, version, artifacts, by, at)?;
        let manifest = match key {
            Some(k) => attestations::sign_release(k, &manifest)?,
            None => attestations::unsigned(&manifest),
        };
        Ok(RecordRelease { manifest })
    }
}

/// A policy bundle to put in force (the body of `PUT /api/v1/policy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyPolicy {
    /// The bundle's files: `custody.toml` and the key files under `keys/`, path → text.
    pub files: std::collections::BTreeMap<String, String>,
}

/// What registering an artifact did.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ArtifactRegistered {
    /// The artifact's digest.
    pub digest: Digest,
    /// What its verified provenance says.
    pub provenance: Option<ReadProvenance>,
    /// Other digests built from the same source and parameters under this name.
    pub discrepancy: Vec<Digest>,
    /// False if nothing was written: it was already registered, identically, or by the
    /// same builder.
    pub created: bool,
    /// The builders whose verified provenance gives this digest (first registration
    /// first): more than one when independent builds agree (reproducible builds).
    #[serde(default)]
    pub agreeing: Vec<String>,
    /// Ledger index of the `artifact.registered` event.
    pub ledger_index: Option<u64>,
}

/// What creating a release did.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ReleaseCreated {
    /// `name@version`.
    pub release: String,
    /// The manifest's digest.
    pub digest: Digest,
    /// The signing key's id, if signed.
    pub signing_key: Option<String>,
    /// Ledger index of the `release.created` event.
    pub ledger_index: u64,
}

/// The source and parameters a verified build declares.
fn build_source(f: &attestations::ReadProvenance) -> events::BuildSource {
    events::BuildSource {
        repository: f.source_repo.clone(),
        commit: f.source_commit.clone(),
        parameters: f.parameters.clone(),
    }
}

/// The key of the record of the digests built from `f`'s source and parameters: the hash
/// of the source as a JSON value (keys sorted), as it always was (records written before
/// name their builds by it).
pub(crate) fn build_source_key(f: &attestations::ReadProvenance) -> AppResult<String> {
    serde_json::to_value(build_source(f))
        .and_then(|v| serde_json::to_vec(&v))
        .map(|bytes| sha256(&bytes).to_string())
        .map_err(|e| AppError::invalid(e.to_string()))
}

impl<S: Store> App<S> {
    /// Registers an artifact with its build and provenance. Provenance produced elsewhere
    /// must verify with a trusted builder key and be about this digest (and agree with the
    /// declared build, if one is given); with a builder key, custody writes and signs it
    /// from the declared build. A second digest from the same source and parameters is
    /// recorded as a provenance discrepancy.
    pub async fn register_artifact(
        &self,
        actor: &Actor,
        new: &RegisterArtifact,
    ) -> AppResult<ArtifactRegistered> {
        crate::limits::label("artifact name", &new.name, crate::limits::MAX_NAME)?;
        if let Some(build) = &new.build {
            crate::limits::build(build)?;
        }
        self.permit(actor, crate::Permission::Register).await?;
        let policy = self.policy().await?;
        policy
            .check_artifact_name(&new.name)
            .map_err(AppError::Denied)?;
        let digest = new.digest.clone();
        let envelope = new.provenance.clone();
        let facts = match &envelope {
            None => None,
            Some(env) => {
                // Every builder key custody has trusted; the keyring then says whether the
                // one that signed is trusted now.
                let ring = self.keyring().await?;
                let keys = ring.candidates(KeyPurpose::Builder);
                let read = attestations::read_provenance(env, &keys, &digest)?;
                ring.counts(&read.signing_key, KeyPurpose::Builder, actor.now)
                    .map_err(|why| {
                        AppError::denied(format!("the provenance does not count: {why}"))
                    })?;
                if !read.subject_matches {
                    return Err(AppError::denied(format!(
                        "the provenance is about another artifact: no subject has digest {digest}"
                    )));
                }
                // The builder says what it built by name too: provenance for `tools` does
                // not make this digest a `shop`.
                if read.subject_name.as_deref() != Some(new.name.as_str()) {
                    return Err(AppError::denied(format!(
                        "the provenance names digest {digest} {:?}, not {:?}: register it under the name its builder gave it",
                        read.subject_name.as_deref().unwrap_or_default(),
                        new.name
                    )));
                }
                if let Some(build) = &new.build {
                    if build.builder_id != read.builder_id || build.source_repo != read.source_repo
                    {
                        return Err(AppError::denied(format!(
                            "the provenance says builder {:?} built {:?}, but the build declares builder {:?} and {:?}",
                            read.builder_id, read.source_repo, build.builder_id, build.source_repo
                        )));
                    }
                }
                Some(read)
            }
        };

        let keys_by_id: std::collections::BTreeMap<String, custody_crypto::PublicKey> = self
            .keyring()
            .await?
            .candidates(KeyPurpose::Builder)
            .into_iter()
            .map(|k| (k.key_id().to_string(), k))
            .collect();
        self.retrying(|| async {
            let existing: Option<Versioned<ArtifactRecord>> =
                self.get(kind::ARTIFACT, &digest.to_string()).await?;
            if let Some(existing) = existing {
                if existing.value.name != new.name {
                    return Err(AppError::denied(format!(
                        "digest {digest} is already registered as {:?}, not {:?}",
                        existing.value.name, new.name
                    )));
                }
                return match &facts {
                    Some(read) => self.rebuilt(actor, existing, read, envelope.as_ref(), &keys_by_id).await,
                    None => Ok(ArtifactRegistered {
                        digest: digest.clone(),
                        provenance: existing.value.provenance_facts,
                        discrepancy: Vec::new(),
                        created: false,
                        agreeing: Vec::new(),
                        ledger_index: Some(existing.log_index),
                    }),
                };
            }
            let signed_with: Vec<KeyUse> = facts
                .as_ref()
                .and_then(|f| keys_by_id.get(&f.signing_key))
                .map(KeyUse::of)
                .into_iter()
                .collect();
            let record = ArtifactRecord {
                name: new.name.clone(),
                digest: digest.clone(),
                size: new.size,
                registered_by: actor.principal.clone(),
                registered_at: actor.now,
                build: new.build.clone(),
                provenance: envelope.clone(),
                provenance_facts: facts.clone(),
                evidence: Vec::new(),
                rebuilds: Vec::new(),
            };
            let mut events = vec![event(
                actor,
                EventBody::ArtifactRegistered(events::ArtifactRegistered {
                    artifact: events::ArtifactName {
                        name: new.name.clone(),
                        digest: digest.clone(),
                        size: new.size,
                    },
                    artifacts: vec![digest.clone()],
                    build: new.build.clone(),
                    provenance: envelope.clone(),
                    builder_id: facts.as_ref().map(|f| f.builder_id.clone()),
                    keys: signed_with.clone(),
                    source: facts.as_ref().map(|f| events::SourceRef {
                        repository: f.source_repo.clone(),
                        commit: f.source_commit.clone(),
                    }),
                }),
            )?];
            let mut state = vec![write(kind::ARTIFACT, &digest.to_string(), &record, Expect::Absent)?];
            let mut discrepancy = Vec::new();
            if let Some(f) = &facts {
                let source = build_source(f);
                let key = build_source_key(f)?;
                let seen: Option<Versioned<BuildSourceRecord>> = self.get(kind::BUILD_SOURCE, &key).await?;
                let mut sources = seen.as_ref().map(|s| s.value.clone()).unwrap_or_default();
                let digests = sources.digests.entry(new.name.clone()).or_default();
                discrepancy = digests.iter().filter(|d| **d != digest).cloned().collect();
                digests.push(digest.clone());
                if !discrepancy.is_empty() {
                    events.push(event(
                        actor,
                        EventBody::ProvenanceDiscrepancy(events::ProvenanceDiscrepancy {
                            artifact: new.name.clone(),
                            artifacts: digests.clone(),
                            source,
                            message: format!("{} built from the same source and parameters gave {} different digests", new.name, digests.len()),
                        }),
                    )?);
                }
                state.push(write(kind::BUILD_SOURCE, &key, &sources, expect_version(&seen))?);
            }
            let appended = self.append(events, state, None).await?;
            Ok(ArtifactRegistered {
                digest: digest.clone(),
                provenance: facts.clone(),
                discrepancy,
                created: true,
                agreeing: facts.iter().map(|f| f.builder_id.clone()).collect(),
                ledger_index: Some(appended.first_index),
            })
        })
        .await
    }

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

    /// Records a release from its manifest envelope, signed elsewhere (by a release signer
    /// on their own machine or token): the statement must be a custody release manifest
    /// whose subjects are exactly its artifacts, and the same rules as
    /// [`App::create_release`] apply. A signature by a builder key is refused. With an
    /// idempotency key, a retry (even with the manifest signed again, at another time)
    /// returns the first result.
    pub async fn record_release(
        &self,
        actor: &Actor,
        request: &RecordRelease,
        idempotency_key: Option<&str>,
    ) -> AppResult<ReleaseCreated> {
        self.permit(actor, crate::Permission::Release).await?;
        let envelope = &request.manifest;
        let payload = envelope
            .unverified_payload()
            .map_err(|_| AppError::invalid("the manifest envelope's payload is not base64"))?;
        let statement = custody_crypto::statement::Statement::from_json(&payload)?;
        if statement.predicate_type() != attestations::RELEASE_MANIFEST_V1 {
            return Err(AppError::invalid(format!(
                "the envelope holds a {} statement, not a release manifest ({})",
                statement.predicate_type(),
                attestations::RELEASE_MANIFEST_V1
            )));
        }
        let predicate = statement.predicate();
        let field = |k: &str| {
            predicate
                .get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| AppError::invalid(format!("the release manifest has no {k}")))
        };
        let (name, version) = (field("name")?, field("version")?);
        crate::limits::label("the release's name", &name, crate::limits::MAX_NAME)?;
        crate::limits::label("the release's version", &version, crate::limits::MAX_NAME)?;
        // What identifies the request: the release, not when its manifest was signed.
        let request = json!({"release": format!("{name}@{version}"), "artifacts": predicate.get("artifacts"), "actor": actor.principal});
        if let Some(key) = idempotency_key {
            if let Some((mut done, index)) = self
                .replayed::<ReleaseCreated>(&own_scope("release", actor), key, &request)
                .await?
            {
                done.ledger_index = index;
                return Ok(done);
            }
        }
        let artifacts: Vec<ManifestArtifact> =
            serde_json::from_value(predicate.get("artifacts").cloned().unwrap_or_default())
                .map_err(|e| AppError::invalid(format!("the release manifest's artifacts: {e}")))?;
        let mut named: Vec<(String, Digest)> = artifacts
            .iter()
            .map(|a| (a.name.clone(), a.digest.clone()))
            .collect();
        // Every subject must name a digest custody identifies artifacts by (sha256 or
        // sha512); one it cannot check is refused, never ignored.
        let mut subjects: Vec<(String, Digest)> = Vec::new();
        for s in statement.subjects() {
            let d = s.digest.digest().ok_or_else(|| {
                AppError::invalid(format!(
                    "the release manifest's subject {:?} has no sha256 or sha512 digest; every subject must name an artifact custody can check",
                    s.name
                ))
            })?;
            subjects.push((s.name.clone(), d));
        }
        named.sort();
        subjects.sort();
        if named != subjects {
            return Err(AppError::invalid(
                "the release manifest's subjects are not exactly its artifacts",
            ));
        }
        let policy = self.policy().await?;
        policy
            .check_release(&name, &version)
            .map_err(AppError::Denied)?;
        if artifacts.is_empty() {
            return Err(AppError::invalid(
                "a release needs at least one --artifact NAME=DIGEST",
            ));
        }
        for a in &artifacts {
            crate::limits::label("an artifact's name", &a.name, crate::limits::MAX_NAME)?;
            policy
                .check_artifact_name(&a.name)
                .map_err(AppError::Denied)?;
            let record: ArtifactRecord = self
                .require(kind::ARTIFACT, &a.digest.to_string(), || {
                    format!("artifact {}={} is not registered: an unknown digest cannot enter a release", a.name, a.digest)
                })
                .await
                .map_err(|e| AppError::Denied(e.to_string()))?
                .value;
            if record.name != a.name {
                return Err(AppError::denied(format!(
                    "digest mismatch: {} is registered as {:?}, not {:?}",
                    a.digest, record.name, a.name
                )));
            }
            if record.provenance_facts.is_none() {
                return Err(AppError::denied(format!(
                    "artifact {} ({}) has no verified provenance: an unsigned artifact cannot enter a release",
                    a.name, a.digest
                )));
            }
        }
        let ring = self.keyring().await?;
        let builder_keys = ring.candidates(KeyPurpose::Builder);
        if !envelope.signatures.is_empty()
            && !builder_keys.is_empty()
            && let Ok(v) = custody_crypto::dsse::verify(envelope, &builder_keys, 1)
        {
            return Err(AppError::denied(format!(
                "the release is signed by builder key {}; a release must be signed by a different key (separation of signing duties)",
                v.key_ids()
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )));
        }
        // The first signature by a key trusted now to sign releases (the keyring's rule:
        // the ledger records it now).
        let release_keys = ring.candidates(KeyPurpose::ReleaseSigner);
        let signing_key = if release_keys.is_empty() {
            None
        } else {
            custody_crypto::dsse::verify(envelope, &release_keys, 1)
                .ok()
                .and_then(|v| {
                    v.key_ids()
                        .iter()
                        .map(ToString::to_string)
                        .find(|k| ring.counts(k, KeyPurpose::ReleaseSigner, actor.now).is_ok())
                })
        };
        let signed_with: Vec<KeyUse> = signing_key
            .as_ref()
            .and_then(|k| release_keys.iter().find(|p| &p.key_id().to_string() == k))
            .map(KeyUse::of)
            .into_iter()
            .collect();
        let digest = sha256(&payload);
        let id = format!("{name}@{version}");
        let record = ReleaseRecord {
            name: name.clone(),
            version: version.clone(),
            digest: digest.clone(),
            artifacts: artifacts.clone(),
            manifest: envelope.clone(),
            created_by: actor.principal.clone(),
            created_at: actor.now,
        };
        if self.store.state(kind::RELEASE, &id).await?.is_some() {
            return Err(AppError::invalid(format!(
                "release {id} already exists; releases are immutable: create a new version"
            )));
        }
        let created = ReleaseCreated {
            release: id.clone(),
            digest: digest.clone(),
            signing_key: signing_key.clone(),
            ledger_index: 0,
        };
        let state = vec![write(kind::RELEASE, &id, &record, Expect::Absent)?];
        let once = idempotency_key.map(|key| Once {
            scope: own_scope("release", actor),
            key,
            request: &request,
        });
        let events = vec![event(
            actor,
            EventBody::ReleaseCreated(events::ReleaseCreated {
                release: id.clone(),
                digest: digest.clone(),
                artifacts: artifacts.iter().map(|a| a.digest.clone()).collect(),
                manifest: envelope.clone(),
                manifest_digest: envelope_digest(envelope),
                keys: signed_with,
            }),
        )?];
        let appended = match self
            .append_once(events, state, once, &created)
            .await
            .map_err(|e| match e {
                AppError::Store(custody_store::StoreError::Conflict { .. }) => {
                    AppError::invalid(format!("release {id} already exists"))
                }
                other => other,
            })? {
            Ok(appended) => appended,
            Err((mut done, index)) => {
                done.ledger_index = index;
                return Ok(done);
            }
        };
        Ok(ReleaseCreated {
            ledger_index: appended.first_index,
            ..created
        })
    }
}
