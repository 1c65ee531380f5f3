//! Reproducible builds: a second, independent build that gives a registered digest again
//! is agreeing evidence, recorded beside the first (an environment may require k builders
//! to agree, `reproducible = k`). A build that gives another digest from the same source
//! and parameters is the opposite, a provenance discrepancy (see `catalog.rs`).
//!
//! Invariants:
//! - A rebuild is recorded only with provenance that verified with a builder key the
//!   keyring trusts now, about this digest under the name it was registered with (the
//!   checks `register_artifact` makes before it gets here).
//! - One builder agrees once: a builder (by `builder.id` and signing key) that already
//!   built the digest adds nothing, so registering the same build twice writes nothing.

use std::collections::BTreeMap;

use custody_crypto::dsse::Envelope;
use custody_store::{Expect, Store};

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

/// The builders that agree on a recorded artifact's digest, each once, in order.
pub(crate) fn agreeing(record: &ArtifactRecord) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (builder, _) in builds(record) {
        if !out.iter().any(|b| b == builder) {
            out.push(builder.to_owned());
        }
    }
    out
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
