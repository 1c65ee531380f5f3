//! Gathering what a decision reads, in one pass over the release's records.

use custody_model::{Digest, Timestamp};
use custody_policy::{
    ApprovalFacts, ArtifactFacts, EvidenceFacts, Facts, KeyPurpose, Policy, PreviousFacts,
    ProvenanceFacts, ReleaseFacts,
};
use custody_store::Store;

use crate::app::App;
use crate::attestations::envelope_digest;
use crate::read_ahead::ReadAhead;
use crate::records::{
    ApprovalRecord, ArtifactRecord, CertificationRecord, EvidenceRecord, PromotionRecord,
    ReleaseRecord, Verdict, kind,
};
use crate::{AppError, AppResult};

/// The facts of a promotion, and what the VSA names beside them: each artifact's
/// provenance envelope digest (read in the same pass as the facts).
pub(crate) struct Gathered {
    pub(crate) facts: Facts,
    pub(crate) provenance: Vec<(Digest, Digest)>,
    /// The records read for them, with the release's standing in this environment.
    pub(crate) ahead: ReadAhead,
}

impl<S: Store> App<S> {
    /// The facts of a promotion at `now`: the release and how it is signed (verified here,
    /// against the policy's keys), its artifacts' provenance and evidence, its standing in
    /// the previous environment, and the reviews.
    pub(crate) async fn facts(
        &self,
        policy: &Policy,
        promotion: &PromotionRecord,
        release: &ReleaseRecord,
        approvals: &[ApprovalRecord],
        now: Timestamp,
    ) -> AppResult<Gathered> {
        let ring = self.keyring().await?;
        let (signing_key, refused_keys) =
            crate::catalog::manifest_signer(&ring, policy, &release.manifest, release.created_at);
        let signing_key_counts_as = signing_key.as_ref().and_then(|k| ring.counts_as(k, policy));
        // Everything below reads keys the release names: read them in one round trip (and
        // the release's standing here, which a certification stages next).
        let after = policy
            .environment(&promotion.environment)
            .and_then(|e| e.after.clone());
        let mut keys: Vec<(&'static str, String)> = release
            .artifacts
            .iter()
            .map(|a| (kind::ARTIFACT, a.digest.to_string()))
            .collect();
        if let Some(after) = &after {
            let key = CertificationRecord::key(after, &release.id());
            keys.push((kind::CERTIFICATION, key.clone()));
            keys.push((kind::DEPLOYED, key));
        }
        keys.push((
            kind::CERTIFICATION,
            CertificationRecord::key(&promotion.environment, &release.id()),
        ));
        keys.extend(crate::exceptions::index_keys(release));
        let ahead = self.read_ahead(keys).await?;
        let mut artifacts = Vec::with_capacity(release.artifacts.len());
        let mut provenance = Vec::new();
        for a in &release.artifacts {
            let digest = a.digest.to_string();
            let record: ArtifactRecord = self
                .get_ahead(&ahead, kind::ARTIFACT, &digest)
                .await?
                .ok_or_else(|| {
                    AppError::not_found(format!("artifact {} is not registered", a.digest))
                })?
                .value;
            if let Some(envelope) = &record.provenance {
                provenance.push((a.digest.clone(), envelope_digest(envelope)));
            }
            artifacts.push(ArtifactFacts {
                name: a.name.clone(),
                digest,
                built_by: record.registered_by,
                // Each build counted as the keyring says of its builder key when the
                // ledger recorded it.
                provenance: record
                    .provenance_facts
                    .map(|p| provenance_facts(&ring, policy, p, record.registered_at)),
                evidence: self
                    .evidence_facts(policy, &promotion.environment, &record.evidence)
                    .await?,
                rebuilds: record
                    .rebuilds
                    .into_iter()
                    .map(|r| provenance_facts(&ring, policy, r.provenance_facts, r.registered_at))
                    .collect(),
            });
        }
        let previous = match after {
            None => None,
            Some(after) => {
                let key = CertificationRecord::key(&after, &release.id());
                let standing: Option<CertificationRecord> = self
                    .get_checked_ahead(&ahead, kind::CERTIFICATION, &key)
                    .await?
                    .map(|v| v.value);
                let deployed = self
                    .get_ahead::<serde_json::Value>(&ahead, kind::DEPLOYED, &key)
                    .await?
                    .is_some();
                Some(PreviousFacts {
                    environment: after,
                    certified_at: standing.map(|s| s.first_certified_at.unix_seconds()),
                    deploy_verified: deployed,
                })
            }
        };
        let exceptions = self.exception_facts(&ahead, release).await?;
        let facts = Facts {
            now: now.unix_seconds(),
            environment: promotion.environment.clone(),
            requested_by: promotion.requested_by.clone(),
            requested_through: promotion.requested_through.clone(),
            release: ReleaseFacts {
                name: release.name.clone(),
                version: release.version.clone(),
                digest: release.digest.to_string(),
                signing_key,
                signatures: release.manifest.signatures.len(),
                signed_by: release.created_by.clone(),
                signing_key_counts_as,
                refused_keys,
                artifacts,
            },
            previous,
            exceptions,
            break_glass: promotion.break_glass.as_ref().map(|b| b.reason.clone()),
            approvals: approvals
                .iter()
                .map(|a| ApprovalFacts {
                    id: a.id.clone(),
                    by: a.by.clone(),
                    approve: a.verdict == Verdict::Approve,
                    at: a.at.unix_seconds(),
                    expires_at: a.expires_at.unix_seconds(),
                    release_digest: a.release_digest.to_string(),
                    environment: a.environment.clone(),
                    policy_digest: a.policy_digest.clone(),
                    superseded: a.superseded_by.is_some(),
                    key_refused: a.signed_with.as_ref().and_then(|k| {
                        ring.counts(&k.key, KeyPurpose::PersonalApproval, a.at)
                            .err()
                    }),
                    signed: a.signed_with.is_some(),
                })
                .collect(),
        };
        Ok(Gathered {
            facts,
            provenance,
            ahead,
        })
    }

    /// An artifact's evidence as a decision in `environment` reads it: every piece with
    /// its type and time, and, on the pieces the rules read, what its report says: for
    /// each evidence type, report format, subject and kind of content, the newest piece
    /// custody read that holds it (a later one wins a tie; `custody_policy`'s content
    /// gates pick the same pieces).
    async fn evidence_facts(
        &self,
        policy: &Policy,
        environment: &str,
        evidence: &[EvidenceRecord],
    ) -> AppResult<Vec<EvidenceFacts>> {
        let mut facts: Vec<EvidenceFacts> = evidence
            .iter()
            .map(|e| EvidenceFacts {
                kind: e.kind.clone(),
                at: e.at.unix_seconds(),
                report: None,
                read: Some(e.read),
            })
            .collect();
        // (evidence type, report format, subject, kind of content) → the newest piece.
        let mut newest: Vec<(Group<'_>, usize)> = Vec::new();
        for (i, e) in evidence.iter().enumerate().filter(|(_, e)| e.read) {
            let holds: Vec<&str> = match &e.summary {
                Some(s) => crate::evidence::holds(s),
                None => crate::evidence::may_hold(&e.format).to_vec(),
            };
            for content in holds {
                let key = (
                    e.kind.as_str(),
                    e.format.as_str(),
                    e.subject.as_str(),
                    content,
                );
                // A report that does not say what it is about replaces nothing: each counts.
                let same = |k: &Group<'_>| !e.subject.is_empty() && *k == key;
                match newest.iter_mut().find(|(k, _)| same(k)) {
                    Some((_, j)) if e.at >= evidence[*j].at => *j = i,
                    Some(_) => {}
                    None => newest.push((key, i)),
                }
            }
        }
        let mut read: Vec<usize> = newest.into_iter().map(|(_, i)| i).collect();
        read.sort_unstable();
        read.dedup();
        for i in read {
            let e = &evidence[i];
            facts[i].report = Some(
                self.report_facts(policy, environment, &e.format, &e.digest)
                    .await?,
            );
        }
        Ok(facts)
    }
}

/// A piece's evidence type, report format, subject and one kind of content it holds.
type Group<'a> = (&'a str, &'a str, &'a str, &'a str);

/// What a build's verified provenance, recorded at `at`, counts for under `policy`.
fn provenance_facts(
    ring: &crate::keyring::Keyring,
    policy: &Policy,
    p: crate::attestations::ReadProvenance,
    at: Timestamp,
) -> ProvenanceFacts {
    let counts_as = ring.counts_as(&p.signing_key, policy);
    let counts = ring
        .counts(&p.signing_key, KeyPurpose::Builder, at)
        .and_then(|()| {
            let named =
                counts_as.is_some() || policy.builders().iter().any(|b| b.key_id == p.signing_key);
            if named {
                Ok(())
            } else {
                Err(dropped(ring, &p.signing_key))
            }
        });
    ProvenanceFacts {
        signing_key_counts_as: counts_as,
        signing_key: counts.is_ok().then_some(p.signing_key),
        builder_id: p.builder_id,
        source_repo: p.source_repo,
        source_commit: p.source_commit,
        subject_matches: p.subject_matches,
        refused_keys: counts.err().into_iter().collect(),
    }
}

/// Why a key the keyring knows but the policy in force does not name (nor a successor of
/// it) counts for nothing now.
pub(crate) fn dropped(ring: &crate::keyring::Keyring, key_id: &str) -> String {
    let name = ring.get(key_id).map_or("", |e| e.name.as_str());
    format!(
        "key {key_id} ({name}) signed it, but the policy in force no longer trusts that key and names no successor"
    )
}
