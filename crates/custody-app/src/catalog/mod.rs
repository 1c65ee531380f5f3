//! What is promoted: the policy, artifacts with their builds and provenance, evidence,
//! and signed releases.

use custody_crypto::dsse::Envelope;
use custody_model::Digest;
use custody_policy::KeyPurpose;
use custody_store::Expect;
use serde::{Deserialize, Serialize};

use crate::app::{Actor, App, Versioned, event, expect_version, write};
use crate::attestations::{self, BuildFields, ReadProvenance, sha256};
use crate::events::{self, EventBody, KeyUse};
use crate::records::{ArtifactRecord, BuildSourceRecord, kind};
use crate::{AppError, AppResult};
use custody_store::Store;

mod evidence;
mod release;

pub use evidence::*;
pub use release::*;

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
}
