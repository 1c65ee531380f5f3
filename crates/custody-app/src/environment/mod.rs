//! Environment truth: deploy reports, drift, rollback, and the deploy gate (`gate.rs`).

use custody_model::Digest;
use custody_policy::{Policy, Status};
use custody_store::{Expect, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::{Actor, App, Once, Versioned, event, own_scope, write};
use crate::attestations::ReadProvenance;
use crate::events::{
    self, BuildSide, ChangedArtifact, DeployStatus, EventBody, NamedDigest, ReleaseDiff,
};
use crate::records::{
    ArtifactRecord, Certification, CertificationRecord, DeployedRecord, EnvironmentRecord,
    PromotionRecord, ReleaseRecord, kind,
};
use crate::{AppError, AppResult};

mod gate;
pub(crate) use gate::BY_EXCEPTION;
pub use gate::{CertifyingDecision, RECHECK_WINDOW_SECONDS, Verification};

/// The gates of `decision` that did not pass, as `gate: reason`.
fn failing_gates(decision: &custody_policy::Decision) -> Vec<String> {
    decision
        .gates
        .iter()
        .filter(|g| g.status != Status::Pass)
        .map(|g| format!("{}: {}", g.gate, g.reason))
        .collect()
}

/// Most digests one deploy report may name.
pub const MAX_DIGESTS_PER_REPORT: usize = 1000;

/// What deploy tooling reports running in an environment (the body of
/// `POST /api/v1/deploys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployReport {
    /// The environment.
    pub environment: String,
    /// The digests running (or that failed to roll out), at most
    /// [`MAX_DIGESTS_PER_REPORT`].
    #[schema(value_type = Vec<String>)]
    pub digests: Vec<Digest>,
    /// Whether the rollout succeeded.
    #[schema(value_type = String, example = "succeeded")]
    pub status: DeployStatus,
}

/// A rollback asked for by hand (the body of `POST /api/v1/environments/{env}/rollback`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// Why.
    pub reason: String,
}

/// What a rollback did.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RollbackOutcome {
    /// The environment.
    pub environment: String,
    /// The release rolled back from.
    pub from: String,
    /// The release now certified.
    pub to: String,
    /// Earlier releases skipped because they no longer pass the current policy, and why.
    pub skipped: Vec<(String, String)>,
    /// What differs between the two releases.
    pub diff: ReleaseDiff,
}

/// What a deploy report did.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DeployOutcome {
    /// Reported digests that are not in the environment's certified release.
    pub drift: Vec<Digest>,
    /// The automatic rollback after a failure, if one happened.
    pub rollback: Option<RollbackOutcome>,
    /// Why no rollback happened after a failure, if none did.
    pub rollback_refused: Option<String>,
    /// Ledger index of the `deploy.reported` event.
    pub ledger_index: u64,
}

impl<S: Store> App<S> {
    /// Records what a deployer reports running in `environment`. Digests that were never
    /// certified there are recorded as drift. A failed rollout of the certified release
    /// rolls the environment back to the previous certified release that still passes
    /// the current policy, in the same transaction as the report.
    /// With an idempotency key, a retry returns the first outcome and acts no more.
    pub async fn deploy_report(
        &self,
        actor: &Actor,
        report: &DeployReport,
        idempotency_key: Option<&str>,
    ) -> AppResult<DeployOutcome> {
        let (environment, digests) = (report.environment.as_str(), report.digests.as_slice());
        if digests.len() > MAX_DIGESTS_PER_REPORT {
            return Err(AppError::invalid(format!(
                "at most {MAX_DIGESTS_PER_REPORT} digests per report"
            )));
        }
        let succeeded = report.status == DeployStatus::Succeeded;
        // A failure rolls the environment back only when it names a digest of the
        // certified release (one naming nothing would roll back whatever is certified); a
        // success naming nothing says nothing about what runs, yet would be recorded as a
        // deploy.
        if digests.is_empty() {
            return Err(AppError::invalid(
                "a deploy report must name its digests (digests is empty): those now running after a success, those that failed to roll out after a failure",
            ));
        }
        let request = json!({"environment": environment, "digests": digests, "succeeded": succeeded, "actor": actor.principal});
        if let Some(key) = idempotency_key {
            if let Some((mut done, index)) = self
                .replayed::<DeployOutcome>(&own_scope("deploy", actor), key, &request)
                .await?
            {
                done.ledger_index = index;
                return Ok(done);
            }
        }
        let policy = self.deployer_in(actor, environment).await?;
        self.retrying(|| async {
            let current: Option<Versioned<EnvironmentRecord>> =
                self.get_checked(kind::ENVIRONMENT, environment).await?;
            let certified = current.as_ref().and_then(|e| e.value.certified.clone());
            let certified_release = match &certified {
                Some(c) => Some(self.release(&c.release).await?),
                None => None,
            };
            let in_release = |d: &Digest| {
                certified_release
                    .as_ref()
                    .is_some_and(|r| r.artifacts.iter().any(|a| &a.digest == d))
            };
            let drift: Vec<Digest> = digests.iter().filter(|d| !in_release(d)).cloned().collect();
            let mut events = vec![event(
                actor,
                EventBody::DeployReported(events::DeployReported {
                    environment: environment.into(),
                    status: if succeeded { DeployStatus::Succeeded } else { DeployStatus::Failed },
                    artifacts: digests.to_vec(),
                    release: certified.as_ref().map(|c| c.release.clone()),
                    drift: drift.clone(),
                }),
            )?];
            if !drift.is_empty() {
                events.push(event(
                    actor,
                    EventBody::DriftDetected(events::DriftDetected {
                        environment: environment.into(),
                        artifacts: drift.clone(),
                        message: format!("{} digest(s) reported running in {environment} were never certified there", drift.len()),
                    }),
                )?);
            }
            let mut state = Vec::new();
            let (mut rollback, mut rollback_refused) = (None, None);
            if let Some(cert) = &certified {
                let key = CertificationRecord::key(environment, &cert.release);
                if succeeded && drift.is_empty() {
                    let deployed = DeployedRecord {
                        by: actor.principal.clone(),
                        at: actor.now,
                    };
                    state.push(write(kind::DEPLOYED, &key, &deployed, Expect::Any)?);
                }
                if !succeeded && digests.iter().any(in_release) {
                    let reason = format!("deploy of {} failed in {environment}", cert.release);
                    let expect = crate::app::expect_version(&current);
                    match self.stage_rollback(actor, &policy, environment, cert, expect, &reason, true).await {
                        Ok((writes, rollback_event, outcome)) => {
                            events.push(rollback_event);
                            state.extend(writes);
                            rollback = Some(outcome);
                        }
                        Err(AppError::Denied(why)) => {
                            events.push(event_rollback_refused(actor, environment, &why)?);
                            rollback_refused = Some(why);
                        }
                        Err(other) => return Err(other),
                    }
                    // The failure is remembered, so no later rollback picks this release.
                    if let Some(mut standing) = self.get_checked::<CertificationRecord>(kind::CERTIFICATION, &key).await? {
                        standing.value.failed = true;
                        state.push(write(kind::CERTIFICATION, &key, &standing.value, Expect::Version(standing.version))?);
                    }
                }
            }
            let mut outcome = DeployOutcome {
                drift: drift.clone(),
                rollback,
                rollback_refused,
                ledger_index: 0,
            };
            let once = idempotency_key.map(|key| Once { scope: own_scope("deploy", actor), key, request: &request });
            let appended = match self.append_once(events, state, once, &outcome).await? {
                Ok(appended) => appended,
                Err((mut done, index)) => {
                    done.ledger_index = index;
                    return Ok(done);
                }
            };
            outcome.ledger_index = appended.first_index;
            Ok(outcome)
        })
        .await
    }

    /// Rolls `environment` back by hand to the previous certified release that still
    /// passes the current policy. With an idempotency key, a retry returns the first
    /// outcome and rolls back no further.
    pub async fn rollback(
        &self,
        actor: &Actor,
        environment: &str,
        request: &Rollback,
        idempotency_key: Option<&str>,
    ) -> AppResult<RollbackOutcome> {
        let reason = request.reason.as_str();
        if reason.trim().is_empty() {
            return Err(AppError::invalid("a rollback needs a reason (--reason)"));
        }
        crate::limits::text("reason", reason, crate::limits::MAX_REASON)?;
        let fingerprint =
            json!({"environment": environment, "reason": reason, "actor": actor.principal});
        if let Some(key) = idempotency_key {
            if let Some((done, _)) = self
                .replayed::<RollbackOutcome>(&own_scope("rollback", actor), key, &fingerprint)
                .await?
            {
                return Ok(done);
            }
        }
        let policy = self.deployer_in(actor, environment).await?;
        self.retrying(|| async {
            let current: Option<Versioned<EnvironmentRecord>> =
                self.get_checked(kind::ENVIRONMENT, environment).await?;
            let Some(cert) = current.as_ref().and_then(|c| c.value.certified.clone()) else {
                return Err(AppError::denied(format!(
                    "nothing is certified in {environment}; there is nothing to roll back"
                )));
            };
            let expect = crate::app::expect_version(&current);
            let (state, event, outcome) = self
                .stage_rollback(actor, &policy, environment, &cert, expect, reason, false)
                .await?;
            let once = idempotency_key.map(|key| Once {
                scope: own_scope("rollback", actor),
                key,
                request: &fingerprint,
            });
            if let Err((done, _)) = self.append_once(vec![event], state, once, &outcome).await? {
                return Ok(done);
            }
            Ok(outcome)
        })
        .await
    }

    pub(crate) async fn release(&self, id: &str) -> AppResult<ReleaseRecord> {
        Ok(self
            .get_checked::<ReleaseRecord>(kind::RELEASE, id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no release {id}")))?
            .value)
    }

    /// The policy in force, once `actor` is known to hold the deployer role in
    /// `environment`, which must be one the policy names (reporting deploys and rolling
    /// back both ask it).
    async fn deployer_in(
        &self,
        actor: &Actor,
        environment: &str,
    ) -> AppResult<std::sync::Arc<Policy>> {
        let policy = self.policy().await?;
        known_environment(&policy, environment)?;
        crate::identity::may_act_in(
            &policy,
            actor,
            &[custody_policy::Role::Deployer],
            environment,
            "report deploys and roll back",
        )?;
        Ok(policy)
    }

    /// Picks the rollback target: the most recently certified other release of the
    /// environment that has not failed there and still passes the current policy. Returns
    /// the state writes that certify it (moving the environment only if it is still at
    /// `expect`, as the caller read it), the `rollback` event and the outcome.
    #[allow(
        clippy::too_many_arguments,
        reason = "staging into the caller's append"
    )]
    async fn stage_rollback(
        &self,
        actor: &Actor,
        policy: &Policy,
        environment: &str,
        current: &Certification,
        expect: Expect,
        reason: &str,
        deploy_failed: bool,
    ) -> AppResult<(
        Vec<custody_store::StateWrite>,
        custody_model::CanonicalJson,
        RollbackOutcome,
    )> {
        let mut candidates = self.certifications(environment).await?;
        candidates.sort_by_key(|(index, _)| std::cmp::Reverse(*index));
        let mut skipped = Vec::new();
        let mut target: Option<Certification> = None;
        for (_, standing) in candidates {
            let candidate = standing.certification;
            if candidate.release == current.release || standing.failed {
                continue;
            }
            match self.recheck(policy, environment, &candidate, actor).await? {
                None => {
                    target = Some(candidate);
                    break;
                }
                Some(why) => skipped.push((candidate.release.clone(), why)),
            }
        }
        let Some(target) = target else {
            let detail = if skipped.is_empty() {
                "there is no earlier certified release".to_owned()
            } else {
                skipped
                    .iter()
                    .map(|(r, why)| format!("{r}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return Err(AppError::denied(format!(
                "no earlier release of {environment} passes the current policy, so {} stays certified ({detail})",
                current.release
            )));
        };
        let diff = self.diff(&current.release, &target.release).await?;
        let writes = self
            .stage_certification(
                environment,
                Certification {
                    at: actor.now,
                    by_rollback: true,
                    ..target.clone()
                },
                expect,
                None,
            )
            .await?;
        let from = self.release(&current.release).await?;
        let to = self.release(&target.release).await?;
        let event = event(
            actor,
            EventBody::RolledBack(events::RolledBack {
                environment: environment.into(),
                from: current.release.clone(),
                to: target.release.clone(),
                failed_promotion: current.promotion.clone(),
                restored_promotion: target.promotion.clone(),
                reason: reason.into(),
                automatic: deploy_failed,
                skipped: skipped.clone(),
                diff: diff.clone(),
                artifacts: from
                    .artifacts
                    .iter()
                    .chain(&to.artifacts)
                    .map(|a| a.digest.clone())
                    .collect(),
            }),
        )?;
        Ok((
            writes,
            event,
            RollbackOutcome {
                environment: environment.into(),
                from: current.release.clone(),
                to: target.release,
                skipped,
                diff,
            },
        ))
    }

    /// Every release's standing in `environment`, with the ledger index of its latest
    /// certification there.
    async fn certifications(
        &self,
        environment: &str,
    ) -> AppResult<Vec<(u64, CertificationRecord)>> {
        let prefix = format!("{environment}/");
        let mut after = prefix.clone();
        let mut out = Vec::new();
        loop {
            let page = self.store.states(kind::CERTIFICATION, &after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.key.clone();
            let mut done = false;
            for record in page {
                if !record.key.starts_with(&prefix) {
                    done = true;
                    break;
                }
                let standing: CertificationRecord = serde_json::from_slice(record.value.as_bytes())
                    .map_err(|e| {
                        AppError::Store(custody_store::StoreError::Corrupt(format!(
                            "certification {}: {e}",
                            record.key
                        )))
                    })?;
                let read = Versioned {
                    value: standing,
                    version: record.version,
                    log_index: record.log_index,
                };
                let standing = self
                    .checked_in_page(kind::CERTIFICATION, &record.key, read)
                    .await?;
                out.push((standing.log_index, standing.value));
            }
            if done {
                break;
            }
        }
        Ok(out)
    }

    /// Re-checks a release that was certified in `environment` against the current
    /// policy's standing rules (`custody_policy::evaluate_standing`: signatures, naming,
    /// provenance, required evidence); `None` if it still stands, else why not.
    async fn recheck(
        &self,
        policy: &Policy,
        environment: &str,
        certification: &Certification,
        actor: &Actor,
    ) -> AppResult<Option<String>> {
        let (_, standing) = self
            .standing(policy, environment, certification, actor.now)
            .await?;
        let failing = failing_gates(&standing);
        Ok((!failing.is_empty()).then(|| failing.join("; ")))
    }

    /// The facts of `certification`'s release as if promoted into `environment` now, and its
    /// standing there under `policy`.
    async fn standing(
        &self,
        policy: &Policy,
        environment: &str,
        certification: &Certification,
        now: custody_model::Timestamp,
    ) -> AppResult<(custody_policy::Facts, custody_policy::Decision)> {
        let release = self.release(&certification.release).await?;
        let mut promotion: PromotionRecord = self
            .require(kind::PROMOTION, &certification.promotion, || {
                format!("no promotion {}", certification.promotion)
            })
            .await?
            .value;
        promotion.environment = environment.into();
        let mut gathered = self.facts(policy, &promotion, &release, &[], now).await?;
        // What the certifying decision accepted stays accepted: each piece of evidence its
        // recorded facts hold counts as the decision counted it (so a release certified
        // before a digest alone stopped being evidence keeps standing). A piece recorded
        // since must have been read.
        if let Some(decided) = self
            .get::<crate::records::DecisionRecord>(kind::DECISION, &certification.decision)
            .await?
        {
            for artifact in &mut gathered.facts.release.artifacts {
                let seen = decided
                    .value
                    .facts
                    .release
                    .artifacts
                    .iter()
                    .find(|a| a.digest == artifact.digest);
                for evidence in &mut artifact.evidence {
                    if let Some(then) = seen
                        .into_iter()
                        .flat_map(|a| &a.evidence)
                        .find(|then| then.kind == evidence.kind && then.at == evidence.at)
                    {
                        evidence.read = then.read;
                    }
                }
            }
        }
        let standing = custody_policy::evaluate_standing(policy, &gathered.facts);
        Ok((gathered.facts, standing))
    }

    /// What differs between two releases: artifacts added, removed and changed, with the
    /// source commits and build parameters of each side.
    pub(crate) async fn diff(&self, from: &str, to: &str) -> AppResult<ReleaseDiff> {
        let (a, b) = (self.release(from).await?, self.release(to).await?);
        let named = |name: &str, digest: &Digest| NamedDigest {
            name: name.into(),
            digest: digest.clone(),
        };
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        for x in &a.artifacts {
            match b.artifacts.iter().find(|y| y.name == x.name) {
                None => removed.push(named(&x.name, &x.digest)),
                Some(y) if y.digest != x.digest => {
                    let side = |digest: &Digest, p: Option<ReadProvenance>| BuildSide {
                        digest: digest.clone(),
                        commit: p.as_ref().map(|p| p.source_commit.clone()),
                        parameters: p.map(|p| p.parameters),
                    };
                    changed.push(ChangedArtifact {
                        name: x.name.clone(),
                        from: side(&x.digest, self.provenance_facts(&x.digest).await?),
                        to: side(&y.digest, self.provenance_facts(&y.digest).await?),
                    });
                }
                Some(_) => {}
            }
        }
        let added = b
            .artifacts
            .iter()
            .filter(|y| !a.artifacts.iter().any(|x| x.name == y.name))
            .map(|y| named(&y.name, &y.digest))
            .collect();
        Ok(ReleaseDiff {
            from: from.into(),
            to: to.into(),
            changed,
            added,
            removed,
        })
    }

    async fn provenance_facts(&self, digest: &Digest) -> AppResult<Option<ReadProvenance>> {
        Ok(self
            .get::<ArtifactRecord>(kind::ARTIFACT, &digest.to_string())
            .await?
            .and_then(|r| r.value.provenance_facts))
    }
}

pub(crate) fn known_environment(policy: &Policy, environment: &str) -> AppResult<()> {
    if policy.environment(environment).is_none() {
        return Err(AppError::not_found(format!(
            "unknown environment {environment:?}; the pipeline is {}",
            policy.pipeline()
        )));
    }
    Ok(())
}

fn event_rollback_refused(
    actor: &Actor,
    environment: &str,
    why: &str,
) -> AppResult<custody_model::CanonicalJson> {
    event(
        actor,
        EventBody::RollbackRefused(events::RollbackRefused {
            environment: environment.into(),
            reason: why.into(),
        }),
    )
}
