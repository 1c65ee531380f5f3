//! Reproducible builds: a second, independent build that gives a registered digest again
//! is agreeing evidence, recorded beside the first (an environment may require k builders
//! to agree, `reproducible = k`). A build that gives another digest from the same source
//! and parameters is the opposite, a provenance discrepancy (see `catalog.rs`).
//!
//! Invariants:
//! - A rebuild is recorded only with provenance that verified with a builder key the
//!   keyring trusts now, about this digest under the name it was registered with (the
//!   checks `register_artifact` makes before it gets here).
//! - A rebuild is of the same source repository, commit and parameters as the first
//!   verified build; provenance of other source for the same digest is refused.
//! - One builder agrees once: a builder (by `builder.id` and signing key) that already
//!   built the digest adds nothing, so registering the same build twice writes nothing.

use std::collections::BTreeMap;

use custody_crypto::dsse::Envelope;
use custody_model::{Digest, Timestamp};
use custody_store::{Expect, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::{Actor, App, Versioned, event, write};
use crate::attestations::ReadProvenance;
use crate::catalog::ArtifactRegistered;
use crate::events::{self, EventBody, KeyUse};
use crate::records::{ArtifactRecord, RebuildRecord, kind};
use crate::{AppError, AppResult};

/// Every build of a recorded artifact whose provenance was verified, first registration
/// first: (builder id, signing key).
pub(crate) fn builds(record: &ArtifactRecord) -> Vec<(&str, &str)> {
    record
        .provenance_facts
        .iter()
        .chain(record.rebuilds.iter().map(|r| &r.provenance_facts))
        .map(|p| (p.builder_id.as_str(), p.signing_key.as_str()))
        .collect()
}

/// The builders that agree on a recorded artifact's digest, each once, in order: one
/// builder id, or one signing key, is one builder (two ids signing with the same key are
/// not independent, as the `reproducible` gate counts them).
pub(crate) fn agreeing(record: &ArtifactRecord) -> Vec<String> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (builder, key) in builds(record) {
        if !seen.iter().any(|(b, k)| *b == builder || *k == key) {
            seen.push((builder, key));
        }
    }
    seen.into_iter().map(|(b, _)| b.to_owned()).collect()
}

impl<S: Store> App<S> {
    /// Records `read` (verified provenance of `existing`'s digest, under its name) as a
    /// rebuild, unless that builder already built it.
    pub(crate) async fn rebuilt(
        &self,
        actor: &Actor,
        existing: Versioned<ArtifactRecord>,
        read: &ReadProvenance,
        envelope: Option<&Envelope>,
        keys_by_id: &BTreeMap<String, custody_crypto::PublicKey>,
    ) -> AppResult<ArtifactRegistered> {
        let Some(envelope) = envelope else {
            return Err(AppError::invalid("a rebuild needs its provenance envelope"));
        };
        let mut record = existing.value;
        // Agreement means the same source and parameters gave the same digest: a build of
        // other source, or with other parameters, that happens to give it is no rebuild of
        // it, and is refused (rather than counted, or dropped as already registered).
        if let Some(first) = &record.provenance_facts {
            let differs: Vec<String> = [
                (
                    "source repository",
                    json!(first.source_repo),
                    json!(read.source_repo),
                ),
                (
                    "source commit",
                    json!(first.source_commit),
                    json!(read.source_commit),
                ),
                (
                    "build parameters",
                    first.parameters.clone(),
                    read.parameters.clone(),
                ),
            ]
            .into_iter()
            .filter(|(_, a, b)| a != b)
            .map(|(what, a, b)| format!("{what} {b} (first build: {a})"))
            .collect();
            if !differs.is_empty() {
                return Err(AppError::denied(format!(
                    "digest {} is registered from another build: this provenance says {}. A rebuild agrees only when it builds the same source with the same parameters; nothing was recorded",
                    record.digest,
                    differs.join(", ")
                )));
            }
        }
        let known = builds(&record)
            .iter()
            .any(|(builder, key)| *builder == read.builder_id && *key == read.signing_key);
        if known {
            return Ok(ArtifactRegistered {
                digest: record.digest.clone(),
                agreeing: agreeing(&record),
                provenance: record.provenance_facts,
                discrepancy: Vec::new(),
                created: false,
                ledger_index: Some(existing.log_index),
            });
        }
        record.rebuilds.push(RebuildRecord {
            registered_by: actor.principal.clone(),
            registered_at: actor.now,
            provenance: envelope.clone(),
            provenance_facts: read.clone(),
        });
        let now_agreeing = agreeing(&record);
        let digest = record.digest.clone();
        let events = vec![event(
            actor,
            EventBody::ArtifactRebuilt(events::ArtifactRebuilt {
                artifact: events::ArtifactName {
                    name: record.name.clone(),
                    digest: digest.clone(),
                    size: record.size,
                },
                artifacts: vec![digest.clone()],
                provenance: envelope.clone(),
                builder_id: read.builder_id.clone(),
                source: events::SourceRef {
                    repository: read.source_repo.clone(),
                    commit: read.source_commit.clone(),
                },
                keys: keys_by_id
                    .get(&read.signing_key)
                    .map(KeyUse::of)
                    .into_iter()
                    .collect(),
                agreeing: now_agreeing.clone(),
            }),
        )?];
        let state = vec![write(
            kind::ARTIFACT,
            &digest.to_string(),
            &record,
            Expect::Version(existing.version),
        )?];
        let appended = self.append(events, state, None).await?;
        Ok(ArtifactRegistered {
            digest,
            provenance: record.provenance_facts,
            discrepancy: Vec::new(),
            created: true,
            agreeing: now_agreeing,
            ledger_index: Some(appended.first_index),
        })
    }
}

/// One recorded build of a compared pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparedBuild {
    /// The artifact's name.
    pub name: String,
    /// The digest the build gave.
    pub digest: Digest,
    /// Who registered it, and when.
    pub registered_by: String,
    /// When it was registered.
    pub registered_at: Timestamp,
    /// The builder its verified provenance names (`None`: registered without provenance).
    pub builder_id: Option<String>,
}

/// One field of the two builds' provenance (a path into the SLSA predicate), side by side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparedField {
    /// Where it is in the predicate, e.g. `buildDefinition.externalParameters.parameters.profile`.
    pub field: String,
    /// Its value in each build (`None`: that build's provenance does not say).
    pub values: [Option<Value>; 2],
    /// Whether the two agree.
    pub same: bool,
}

/// Two builds side by side: what each was built from and how, field by field, so that a
/// provenance discrepancy (the same source and parameters, two digests) shows where the
/// builds differ: their internal parameters, the dependencies they resolved, the steps
/// they declared non-deterministic, their byproducts and run metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildComparison {
    /// The two builds, in the order asked.
    pub builds: [ComparedBuild; 2],
    /// Every field either provenance holds, by path (so the parts of the predicate stay
    /// together); differing ones have `same: false`.
    pub fields: Vec<ComparedField>,
    /// Whether they were built from the same source and parameters (the fields under
    /// `buildDefinition.externalParameters` agree).
    pub same_source: bool,
}

/// The most fields compared (a predicate is bounded when registered; this bounds the
/// answer too).
const MAX_COMPARED_FIELDS: usize = 1000;

/// The leaves of `value` under `path`, objects walked key by key (arrays are one value).
fn leaves(path: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                leaves(&format!("{path}.{k}"), v, out);
            }
        }
        _ => {
            out.insert(path.to_owned(), value.clone());
        }
    }
}

/// The build definition and run details of a recorded build's provenance, as leaves by
/// path.
fn provenance_leaves(record: &ArtifactRecord) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let Some(envelope) = &record.provenance else {
        return out;
    };
    // The envelope verified when it was registered; here only its content is read.
    let predicate = envelope
        .unverified_payload()
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .map(|statement| statement["predicate"].clone())
        .unwrap_or_default();
    for part in ["buildDefinition", "runDetails"] {
        if let Some(v) = predicate.get(part) {
            leaves(part, v, &mut out);
        }
    }
    out
}

impl<S: Store> App<S> {
    /// The builds of digests `a` and `b` side by side (see [`BuildComparison`]). Refused
    /// when either is not registered.
    pub async fn compare_builds(&self, a: &Digest, b: &Digest) -> AppResult<BuildComparison> {
        let mut records = Vec::with_capacity(2);
        for digest in [a, b] {
            let record: ArtifactRecord = self
                .require(kind::ARTIFACT, &digest.to_string(), || {
                    format!("no artifact {digest} is registered\nhint: the digests a discrepancy names are listed by `custody history --type provenance.discrepancy`")
                })
                .await?
                .value;
            records.push(record);
        }
        let [left, right] = [
            provenance_leaves(&records[0]),
            provenance_leaves(&records[1]),
        ];
        // Every path either holds, in order (the parts of the predicate stay together).
        let paths: std::collections::BTreeSet<&String> = left.keys().chain(right.keys()).collect();
        let fields: Vec<ComparedField> = paths
            .into_iter()
            .take(MAX_COMPARED_FIELDS)
            .map(|field| {
                let values = [left.get(field).cloned(), right.get(field).cloned()];
                ComparedField {
                    field: field.clone(),
                    same: values[0] == values[1],
                    values,
                }
            })
            .collect();
        let same_source = fields
            .iter()
            .filter(|f| f.field.starts_with("buildDefinition.externalParameters"))
            .all(|f| f.same);
        let side = |r: &ArtifactRecord| ComparedBuild {
            name: r.name.clone(),
            digest: r.digest.clone(),
            registered_by: r.registered_by.clone(),
            registered_at: r.registered_at,
            builder_id: r.provenance_facts.as_ref().map(|p| p.builder_id.clone()),
        };
        Ok(BuildComparison {
            builds: [side(&records[0]), side(&records[1])],
            fields,
            same_source,
        })
    }

    /// The other digests built from the same source and parameters as `digest` (a
    /// provenance discrepancy when any), under its name.
    pub async fn discrepant_builds(&self, digest: &Digest) -> AppResult<Vec<Digest>> {
        let Some(record) = self
            .get::<ArtifactRecord>(kind::ARTIFACT, &digest.to_string())
            .await?
        else {
            return Ok(Vec::new());
        };
        let Some(f) = &record.value.provenance_facts else {
            return Ok(Vec::new());
        };
        let key = crate::catalog::build_source_key(f)?;
        let sources: Option<Versioned<crate::records::BuildSourceRecord>> =
            self.get(kind::BUILD_SOURCE, &key).await?;
        Ok(sources
            .and_then(|s| s.value.digests.get(&record.value.name).cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d != digest)
            .collect())
    }
}
