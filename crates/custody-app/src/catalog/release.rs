//! Signed releases: a manifest naming its artifacts, signed by a release signer, recorded.

use custody_crypto::dsse::Envelope;
use custody_model::{Digest, Timestamp};
use custody_policy::KeyPurpose;
use custody_store::{Expect, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::{Actor, App, Once, event, own_scope, write};
use crate::attestations::{self, ManifestArtifact, envelope_digest, sha256};
use crate::events::{self, EventBody, KeyUse};
use crate::records::{ArtifactRecord, CertificationRecord, EnvironmentRecord, ReleaseRecord, kind};
use crate::{AppError, AppResult};

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

/// A release as it is read (`GET /api/v1/releases/{release}`, `custody release show`):
/// its record, whose signature counts (as the gates judge it), and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseView {
    /// The release as recorded: name, version, manifest digest, artifacts, the manifest
    /// envelope, who created it and when.
    #[serde(flatten)]
    pub release: ReleaseRecord,
    /// The key whose signature on the manifest counts, as the gates judge it: trusted to
    /// sign releases when the ledger recorded the release and not revoked by then (a key
    /// retired or rotated since still counts). None: unsigned, or no signature counts.
    pub signed_by: Option<String>,
    /// Why each other signature on the manifest does not count (revoked, not trusted then,
    /// dropped from the policy in force).
    pub signature_refused: Vec<String>,
    /// Each environment of the policy in force where it has been certified, in the
    /// policy's order.
    pub environments: Vec<ReleaseStanding>,
}

/// A release's standing in one environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseStanding {
    /// The environment.
    pub environment: String,
    /// Whether it is the release certified there now.
    pub current: bool,
    /// When it was first certified there.
    pub first_certified_at: Timestamp,
    /// Its latest certification there: when, by which promotion and decision, whether by
    /// a rollback.
    pub certification: crate::records::Certification,
    /// Whether a rollout of it failed there since that certification.
    pub failed: bool,
    /// Where it is the release certified now: why the deploy gate refuses it now, if it
    /// does (a break-glass promotion rejected after the fact, a key revoked since, a
    /// finding disclosed since…). Empty where the gate lets it run, and where it is not
    /// current.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gate_refuses: Vec<String>,
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

impl<S: Store> App<S> {
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
        // The ledger records the signer trusted now.
        let release_keys = ring.candidates(KeyPurpose::ReleaseSigner);
        let (signing_key, _) = manifest_signer(&ring, &policy, envelope, actor.now);
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

    /// Release `id` (`name@version`), as it is read; not found if no such release was
    /// created, invalid if `id` is not `name@version`.
    pub async fn release_view(&self, id: &str, now: Timestamp) -> AppResult<ReleaseView> {
        // Not NAME@VERSION is a mistake to name, not a release to look for.
        id.parse::<custody_model::ReleaseRef>()
            .map_err(|e| AppError::invalid(e.to_string()))?;
        let release = self.release(id).await?;
        let ring = self.keyring().await?;
        let policy = self.policy().await?;
        let (signed_by, signature_refused) =
            manifest_signer(&ring, &policy, &release.manifest, release.created_at);
        let mut environments = Vec::new();
        for env in policy.environments() {
            let key = CertificationRecord::key(&env.name, id);
            let Some(standing) = self
                .get::<CertificationRecord>(kind::CERTIFICATION, &key)
                .await?
            else {
                continue;
            };
            let current = self
                .get::<EnvironmentRecord>(kind::ENVIRONMENT, &env.name)
                .await?
                .and_then(|e| e.value.certified)
                .is_some_and(|c| c.release == id);
            let standing = standing.value;
            // The gate judges the whole release from any one of its digests.
            let gate_refuses = match release.artifacts.first() {
                Some(a) if current => {
                    let verdict = self.verify(&env.name, &a.digest, now).await?;
                    if verdict.allowed {
                        Vec::new()
                    } else {
                        verdict.reasons.clone()
                    }
                }
                _ => Vec::new(),
            };
            environments.push(ReleaseStanding {
                environment: env.name.clone(),
                current,
                first_certified_at: standing.first_certified_at,
                certification: standing.certification,
                failed: standing.failed,
                gate_refuses,
            });
        }
        Ok(ReleaseView {
            release,
            signed_by,
            signature_refused,
            environments,
        })
    }
}

/// The key that signs `manifest` by the keyring's rule, and why each other key that
/// signed it does not count. A key counts when the keyring trusted it to sign releases at
/// `at` (when the ledger recorded the release), not revoked by then; a retired key or a
/// successor counts as the key of the policy in force in its place; a key the policy in
/// force no longer names, nor a successor of it, was dropped. The promotion's facts, the
/// release's creation and its view all judge by this one rule.
pub(crate) fn manifest_signer(
    ring: &crate::keyring::Keyring,
    policy: &custody_policy::Policy,
    manifest: &Envelope,
    at: Timestamp,
) -> (Option<String>, Vec<String>) {
    let keys = ring.candidates(KeyPurpose::ReleaseSigner);
    let mut refused = Vec::new();
    let mut signer = None;
    if let Ok(v) = custody_crypto::dsse::verify(manifest, &keys, 1) {
        for k in v.key_ids().iter().map(ToString::to_string) {
            match ring.counts(&k, KeyPurpose::ReleaseSigner, at) {
                Ok(()) if signer.is_none() => signer = Some(k),
                Ok(()) => {}
                Err(why) => refused.push(why),
            }
        }
    }
    if let Some(k) =
        signer.take_if(|k| ring.counts_as(k, policy).is_none() && policy.release_key(k).is_none())
    {
        refused.push(crate::promotion::dropped(ring, &k));
    }
    (signer, refused)
}
