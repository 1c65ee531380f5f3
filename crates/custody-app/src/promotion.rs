//! Promotions and approvals: a request, evaluated purely from recorded facts into a signed
//! decision; approvals and rejections bound to the release, environment and policy version;
//! certification when every gate passes.

use custody_crypto::PublicKey;
use custody_crypto::dsse;
use custody_model::{Digest, Timestamp};
use custody_policy::{
    ApprovalFacts, ArtifactFacts, EvidenceFacts, Facts, Policy, PreviousFacts, ProvenanceFacts,
    ReleaseFacts, Standing,
};
use custody_store::{Expect, StateWrite, Store};
use serde::Serialize;
use serde_json::json;

use crate::app::{Actor, App, Versioned, event, idempotency, new_id, write};
use crate::attestations::{self, envelope_digest};
use crate::records::{
    ApprovalRecord, ArtifactRecord, Certification, CertificationRecord, DecisionRecord,
    EnvironmentRecord, IdempotencyRecord, PendingPromotion, PromotionRecord, PromotionStatus,
    ReleaseRecord, Risk, Verdict, kind,
};
use crate::{AppError, AppResult};

/// A reviewer's decision about a promotion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// Approve or reject.
    pub verdict: Verdict,
    /// Why.
    pub rationale: String,
    /// The risk posture the reviewer sees.
    pub risk: Risk,
    /// Whether the rationale is for auditors and the people involved only.
    pub confidential: bool,
}

/// The result of a promotion request or a review.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PromotionOutcome {
    /// The promotion.
    pub promotion: PromotionRecord,
    /// The decision just made.
    pub decision: DecisionRecord,
    /// For a review: the approval recorded and whether it counted (and why not).
    pub approval: Option<(ApprovalRecord, Option<String>)>,
    /// Ledger index of the first event written.
    pub ledger_index: u64,
    /// True when this is the stored result of an earlier request with the same key.
    pub replayed: bool,
}

impl<S: Store> App<S> {
    /// Requests the promotion of `release` (`name@version`) to `environment`, evaluates
    /// its gates now, and records the request and the signed decision; if every gate
    /// passes, the release becomes the environment's certified release. An unknown
    /// environment is refused. With an idempotency key, a repeat returns the first result.
    pub async fn promote(
        &self,
        actor: &Actor,
        release: &str,
        environment: &str,
        idempotency_key: Option<&str>,
    ) -> AppResult<PromotionOutcome> {
        self.promote_with(actor, release, environment, idempotency_key, None)
            .await
    }

    /// [`App::promote`], breaking glass when `break_glass` gives a reason: if the policy
    /// lets the requester break glass into the environment, the gates that only time,
    /// people or a freeze hold closed are overridden (never the release's signature, naming
    /// or provenance), the decision says so, an alert is raised, and the certification
    /// waits for an after-the-fact review by someone else (see [`App::review`]).
    pub async fn promote_with(
        &self,
        actor: &Actor,
        release: &str,
        environment: &str,
        idempotency_key: Option<&str>,
        break_glass: Option<&str>,
    ) -> AppResult<PromotionOutcome> {
        if break_glass.is_some_and(|r| r.trim().is_empty()) {
            return Err(AppError::invalid(
                "breaking glass needs a reason (--break-glass \"why\")",
            ));
        }
        let mut request =
            json!({"release": release, "environment": environment, "actor": actor.principal});
        if let Some(reason) = break_glass {
            request["break_glass"] = json!(reason);
        }
        if let Some(key) = idempotency_key {
            if let Some(done) = self.replay_of("promote", key, &request).await? {
                return Ok(done);
            }
        }
        let policy = self.policy().await?;
        crate::environment::known_environment(&policy, environment)?;
        let release: ReleaseRecord = self
            .require(kind::RELEASE, release, || {
                format!("no release {release}\nhint: create it with `custody release create NAME VERSION --artifact NAME=DIGEST …`")
            })
            .await?
            .value;
        self.retrying(|| async {
            let promotion = PromotionRecord {
                id: new_id("prm"),
                release: release.id(),
                release_digest: release.digest.clone(),
                environment: environment.into(),
                requested_by: actor.principal.clone(),
                requested_at: actor.now,
                status: PromotionStatus::Pending,
                decisions: Vec::new(),
                approvals: Vec::new(),
                break_glass: break_glass.map(|reason| crate::records::BreakGlass {
                    reason: reason.to_owned(),
                    reviewed_by: None,
                }),
            };
            let (idem, remembered) = remember("promote", idempotency_key, &promotion.id, &request)?;
            let mut requested = json!({
                "promotion": promotion.id,
                "release": release.id(),
                "environment": environment,
                "artifacts": release.artifacts.iter().map(|a| &a.digest).collect::<Vec<_>>(),
            });
            if let Some(reason) = break_glass {
                requested["break_glass"] = json!(reason);
            }
            let mut events = vec![event("promotion.requested", actor, requested)?];
            let mut state: Vec<StateWrite> = remembered.into_iter().collect();
            let outcome = self
                .decide(
                    actor,
                    &policy,
                    promotion,
                    &release,
                    &[],
                    None,
                    &mut events,
                    &mut state,
                )
                .await?;
            self.commit_outcome(outcome, events, state, idem, &request)
                .await
        })
        .await
    }

    /// Records an approval or rejection of a pending promotion by `actor`, bound to the
    /// release digest, the environment and the policy version, expiring per the policy;
    /// an earlier record by the same reviewer is superseded (never edited). Then the
    /// gates are evaluated again, and the release certified if they all pass.
    pub async fn review(
        &self,
        actor: &Actor,
        promotion_id: &str,
        review: &Review,
        idempotency_key: Option<&str>,
    ) -> AppResult<PromotionOutcome> {
        let (verdict, rationale, risk, confidential) = (
            review.verdict,
            review.rationale.as_str(),
            review.risk,
            review.confidential,
        );
        if rationale.trim().is_empty() {
            return Err(AppError::invalid(
                "a review needs a rationale (--rationale)",
            ));
        }
        let request = json!({"promotion": promotion_id, "verdict": verdict, "rationale": rationale, "risk": risk, "confidential": confidential, "actor": actor.principal});
        if let Some(key) = idempotency_key {
            if let Some(done) = self.replay_of("review", key, &request).await? {
                return Ok(done);
            }
        }
        let policy = self.policy().await?;
        self.retrying(|| async {
            let current: Versioned<PromotionRecord> = self
                .require(kind::PROMOTION, promotion_id, || format!("no promotion {promotion_id}"))
                .await?;
            let after_the_fact = current.value.status == PromotionStatus::Certified
                && current
                    .value
                    .break_glass
                    .as_ref()
                    .is_some_and(|b| b.reviewed_by.is_none());
            if after_the_fact {
                return self
                    .review_after_the_fact(actor, &policy, current, review, &request, idempotency_key)
                    .await;
            }
            let mut promotion = current.value;
            if promotion.status != PromotionStatus::Pending {
                let status = match promotion.status {
                    PromotionStatus::Certified => "certified",
                    _ => "rejected",
                };
                return Err(AppError::denied(format!(
                    "promotion {promotion_id} is already {status}; request a new promotion to decide again"
                )));
            }
            let env = policy.environment(&promotion.environment).ok_or_else(|| {
                AppError::denied(format!(
                    "environment {} is no longer in the policy",
                    promotion.environment
                ))
            })?;
            let rule = env.approvals.as_ref().ok_or_else(|| {
                AppError::invalid(format!("environment {} needs no approvals", env.name))
            })?;
            let release: ReleaseRecord = self
                .require(kind::RELEASE, &promotion.release, || format!("no release {}", promotion.release))
                .await?
                .value;
            let mut approvals = self.approvals_of(&promotion).await?;
            let earlier = approvals
                .iter()
                .rev()
                .find(|a| a.value.by == actor.principal && a.value.superseded_by.is_none())
                .map(|a| (a.value.id.clone(), a.version));
            let context = self
                .get::<EnvironmentRecord>(kind::ENVIRONMENT, &promotion.environment)
                .await?
                .and_then(|e| e.value.certified.map(|c| c.release));
            let record = ApprovalRecord {
                id: new_id("apr"),
                promotion: promotion.id.clone(),
                verdict,
                by: actor.principal.clone(),
                rationale: rationale.into(),
                confidential,
                risk,
                at: actor.now,
                expires_at: Timestamp::from_unix_seconds(
                    actor.now.unix_seconds().saturating_add(rule.expires.seconds() as i64),
                )
                .map_err(|e| AppError::invalid(e.to_string()))?,
                release_digest: promotion.release_digest.clone(),
                environment: promotion.environment.clone(),
                policy_digest: policy.digest().into(),
                context,
                supersedes: earlier.as_ref().map(|(id, _)| id.clone()),
                superseded_by: None,
            };
            let mut state = vec![write(kind::APPROVAL, &record.id, &record, Expect::Absent)?];
            if let Some((id, version)) = &earlier {
                if let Some(old) = approvals.iter_mut().find(|a| &a.value.id == id) {
                    old.value.superseded_by = Some(record.id.clone());
                    state.push(write(kind::APPROVAL, id, &old.value, Expect::Version(*version))?);
                }
            }
            promotion.approvals.push(record.id.clone());
            let mut events = vec![approval_event(actor, &record, &promotion, &release, false)?];
            let (idem, remembered) = remember("review", idempotency_key, &promotion.id, &request)?;
            state.extend(remembered);
            let mut all: Vec<ApprovalRecord> = approvals.into_iter().map(|a| a.value).collect();
            all.push(record.clone());
            let mut outcome = self
                .decide(actor, &policy, promotion, &release, &all, Some(current.version), &mut events, &mut state)
                .await?;
            let standing = custody_policy::approval_standings(&policy, &outcome.decision.facts)
                .and_then(|s| s.into_iter().find(|(id, _)| *id == record.id))
                .map(|(_, s)| s);
            let why_not = match standing {
                Some(Standing::Ignored(why)) => Some(why),
                _ => None,
            };
            outcome.approval = Some((record.clone(), why_not));
            self.commit_outcome(outcome, events, state, idem, &request).await
        })
        .await
    }

    /// The mandatory review of a promotion certified by break-glass, by someone who could
    /// have approved it (not its requester, builders or signer; holding a role that reviews
    /// the environment). It changes no gate: it records the verdict, closes the review due,
    /// and a rejection is an alert for people to act on (roll back, investigate).
    async fn review_after_the_fact(
        &self,
        actor: &Actor,
        policy: &Policy,
        current: Versioned<PromotionRecord>,
        review: &Review,
        request: &serde_json::Value,
        idempotency_key: Option<&str>,
    ) -> AppResult<PromotionOutcome> {
        let mut promotion = current.value;
        let who = actor.principal.as_str();
        let decision_id = promotion.decisions.last().cloned().unwrap_or_default();
        let decision: DecisionRecord = self
            .require(kind::DECISION, &decision_id, || {
                format!("no decision {decision_id}")
            })
            .await?
            .value;
        let facts = &decision.facts.release;
        let refuse = |why: String| {
            Err(AppError::denied(format!(
                "{who} may not review break-glass promotion {}: {why}; someone else must",
                promotion.id
            )))
        };
        if who == promotion.requested_by {
            return refuse("they broke the glass".into());
        }
        if facts.artifacts.iter().any(|a| a.built_by == who) {
            return refuse("they built an artifact of the release".into());
        }
        if facts.signed_by == who {
            return refuse("they signed the release".into());
        }
        let roles = policy
            .environment(&promotion.environment)
            .and_then(|e| e.approvals.as_ref())
            .map_or_else(
                || vec!["approver".to_owned(), "security".to_owned()],
                |r| r.roles.clone(),
            );
        if !policy
            .roles_of(who)
            .iter()
            .any(|r| roles.iter().any(|x| x == r))
        {
            return refuse(format!("they hold none of the roles {roles:?}"));
        }
        let release: ReleaseRecord = self
            .require(kind::RELEASE, &promotion.release, || {
                format!("no release {}", promotion.release)
            })
            .await?
            .value;
        let record = ApprovalRecord {
            id: new_id("apr"),
            promotion: promotion.id.clone(),
            verdict: review.verdict,
            by: who.into(),
            rationale: review.rationale.clone(),
            confidential: review.confidential,
            risk: review.risk,
            at: actor.now,
            // It lets nothing through from now on: the certification already happened.
            expires_at: actor.now,
            release_digest: promotion.release_digest.clone(),
            environment: promotion.environment.clone(),
            policy_digest: policy.digest().into(),
            context: None,
            supersedes: None,
            superseded_by: None,
        };
        promotion.approvals.push(record.id.clone());
        if let Some(glass) = &mut promotion.break_glass {
            glass.reviewed_by = Some(record.id.clone());
        }
        let events = vec![approval_event(actor, &record, &promotion, &release, true)?];
        let mut state = vec![
            write(kind::APPROVAL, &record.id, &record, Expect::Absent)?,
            write(
                kind::PROMOTION,
                &promotion.id,
                &promotion,
                Expect::Version(current.version),
            )?,
            write(
                kind::REVIEW_DUE,
                &format!("{}/{}", promotion.environment, promotion.id),
                &serde_json::Value::Null,
                Expect::Any,
            )?,
        ];
        let (idem, remembered) = remember("review", idempotency_key, &promotion.id, request)?;
        state.extend(remembered);
        let outcome = PromotionOutcome {
            promotion,
            decision,
            approval: Some((record, None)),
            ledger_index: 0,
            replayed: false,
        };
        self.commit_outcome(outcome, events, state, idem, request)
            .await
    }

    async fn commit_outcome(
        &self,
        mut outcome: PromotionOutcome,
        events: Vec<custody_model::CanonicalJson>,
        state: Vec<StateWrite>,
        idem: Option<custody_store::IdempotencyKey>,
        request: &serde_json::Value,
    ) -> AppResult<PromotionOutcome> {
        let scope = idem.as_ref().map(|k| k.key.clone());
        let appended = self.append(events, state, idem).await?;
        if appended.replayed {
            // A concurrent twin with the same key won; return its result.
            if let Some(scoped) = scope {
                let (use_case, key) = scoped.split_once(':').unwrap_or(("promote", &scoped));
                if let Some(done) = self.replay_of(use_case, key, request).await? {
                    return Ok(done);
                }
            }
        }
        outcome.ledger_index = appended.first_index;
        Ok(outcome)
    }

    /// The stored outcome of an earlier request with this idempotency key, if any; the same
    /// key with a different request is refused.
    async fn replay_of(
        &self,
        use_case: &str,
        key: &str,
        request: &serde_json::Value,
    ) -> AppResult<Option<PromotionOutcome>> {
        let Some(id) = self
            .get::<IdempotencyRecord>(kind::IDEMPOTENCY, &format!("{use_case}:{key}"))
            .await?
        else {
            return Ok(None);
        };
        if id.value.fingerprint != IdempotencyRecord::new(&id.value.promotion, request)?.fingerprint
        {
            return Err(AppError::invalid(format!(
                "idempotency key {key:?} was already used for a different request\nhint: use a new key for a new request"
            )));
        }
        let promotion: Versioned<PromotionRecord> = self
            .require(kind::PROMOTION, &id.value.promotion, || {
                format!("no promotion {}", id.value.promotion)
            })
            .await?;
        let decision_id = promotion
            .value
            .decisions
            .last()
            .cloned()
            .unwrap_or_default();
        let decision: DecisionRecord = self
            .require(kind::DECISION, &decision_id, || {
                format!("no decision {decision_id}")
            })
            .await?
            .value;
        Ok(Some(PromotionOutcome {
            promotion: promotion.value,
            decision,
            approval: None,
            ledger_index: id.log_index,
            replayed: true,
        }))
    }

    /// A promotion and its reviews (superseded ones too), oldest first.
    pub async fn promotion(&self, id: &str) -> AppResult<(PromotionRecord, Vec<ApprovalRecord>)> {
        let promotion: PromotionRecord = self
            .require(kind::PROMOTION, id, || format!("no promotion {id}"))
            .await?
            .value;
        let reviews = self
            .approvals_of(&promotion)
            .await?
            .into_iter()
            .map(|a| a.value)
            .collect();
        Ok((promotion, reviews))
    }

    /// The promotion's entry among those waiting in its environment: written while it
    /// waits (with the gates `decision` did not pass), removed once decided.
    fn pending_write(
        promotion: &PromotionRecord,
        decision: &custody_policy::Decision,
    ) -> AppResult<StateWrite> {
        let key = format!("{}/{}", promotion.environment, promotion.id);
        if promotion.status != PromotionStatus::Pending {
            return write(kind::PENDING, &key, &serde_json::Value::Null, Expect::Any);
        }
        let blocking = decision
            .gates
            .iter()
            .filter(|g| g.status != custody_policy::Status::Pass)
            .map(|g| {
                let status = match g.status {
                    custody_policy::Status::Fail => "fail",
                    _ => "waiting",
                };
                (g.gate.clone(), status.to_owned(), g.reason.clone())
            })
            .collect();
        let entry = PendingPromotion {
            release: promotion.release.clone(),
            requested_by: promotion.requested_by.clone(),
            requested_at: promotion.requested_at,
            blocking,
        };
        write(kind::PENDING, &key, &entry, Expect::Any)
    }

    pub(crate) async fn approvals_of(
        &self,
        promotion: &PromotionRecord,
    ) -> AppResult<Vec<Versioned<ApprovalRecord>>> {
        let mut out = Vec::with_capacity(promotion.approvals.len());
        for id in &promotion.approvals {
            out.push(
                self.require(kind::APPROVAL, id, || format!("no approval {id}"))
                    .await?,
            );
        }
        Ok(out)
    }

    /// Gathers the facts, evaluates, signs the VSA, and stages the decision (and the
    /// certification, if allowed) into `events` and `state`.
    #[allow(
        clippy::too_many_arguments,
        reason = "staging into the caller's append"
    )]
    async fn decide(
        &self,
        actor: &Actor,
        policy: &Policy,
        mut promotion: PromotionRecord,
        release: &ReleaseRecord,
        approvals: &[ApprovalRecord],
        promotion_version: Option<u64>,
        events: &mut Vec<custody_model::CanonicalJson>,
        state: &mut Vec<StateWrite>,
    ) -> AppResult<PromotionOutcome> {
        let facts = self
            .facts(policy, &promotion, release, approvals, actor.now)
            .await?;
        let decision = custody_policy::evaluate(policy, &facts);
        let provenance = self.provenance_digests(release).await?;
        let vsa = attestations::sign_vsa(
            self.attestor.as_ref(),
            &release.artifacts,
            &release.id(),
            &promotion.id,
            decision.allowed,
            policy.digest(),
            &provenance,
            actor.now,
        )?;
        let record = DecisionRecord {
            id: new_id("dec"),
            promotion: promotion.id.clone(),
            at: actor.now,
            facts,
            decision: decision.clone(),
            vsa: vsa.clone(),
        };
        let was_pending =
            promotion_version.is_some() && promotion.status == PromotionStatus::Pending;
        promotion.decisions.push(record.id.clone());
        // A rejection, or a break-glass the policy does not allow, ends the promotion.
        let rejected = decision.gates.iter().any(|g| {
            (g.gate == "approvals" || g.gate == "break-glass")
                && g.status == custody_policy::Status::Fail
        });
        promotion.status = if decision.allowed {
            PromotionStatus::Certified
        } else if rejected {
            PromotionStatus::Rejected
        } else {
            PromotionStatus::Pending
        };
        let artifacts: Vec<&Digest> = release.artifacts.iter().map(|a| &a.digest).collect();
        let mut recorded = json!({
                "decision": record.id,
                "promotion": promotion.id,
                "release": promotion.release,
                "environment": promotion.environment,
                "allowed": decision.allowed,
                "gates": decision.gates,
                "policy": decision.policy_digest,
                "input": decision.input_digest,
                "engine": decision.engine,
                "vsa": vsa,
                "vsa_digest": envelope_digest(&vsa),
                "artifacts": artifacts,
        });
        if let Some(glass) = &promotion.break_glass {
            recorded["break_glass"] = json!(glass.reason);
        }
        events.push(event("decision.recorded", actor, recorded)?);
        if was_pending || promotion.status == PromotionStatus::Pending {
            state.push(Self::pending_write(&promotion, &decision)?);
        }
        state.push(write(kind::DECISION, &record.id, &record, Expect::Absent)?);
        state.push(write(
            kind::PROMOTION,
            &promotion.id,
            &promotion,
            promotion_version.map_or(Expect::Absent, Expect::Version),
        )?);
        if decision.allowed {
            let certification = Certification {
                release: promotion.release.clone(),
                release_digest: promotion.release_digest.clone(),
                promotion: promotion.id.clone(),
                decision: record.id.clone(),
                at: actor.now,
                by_rollback: false,
            };
            events.push(event(
                "environment.certified",
                actor,
                json!({
                    "environment": promotion.environment,
                    "release": promotion.release,
                    "promotion": promotion.id,
                    "decision": record.id,
                    "artifacts": artifacts,
                }),
            )?);
            state.extend(
                self.stage_certification(&promotion.environment, certification, Expect::Any)
                    .await?,
            );
            if let (true, Some(glass)) = (decision.broke_glass(), &promotion.break_glass) {
                let due = crate::records::ReviewDue {
                    release: promotion.release.clone(),
                    requested_by: promotion.requested_by.clone(),
                    reason: glass.reason.clone(),
                    at: actor.now,
                    overridden: decision
                        .gates
                        .iter()
                        .filter(|g| g.status == custody_policy::Status::Overridden)
                        .map(|g| g.gate.clone())
                        .collect(),
                };
                state.push(write(
                    kind::REVIEW_DUE,
                    &format!("{}/{}", promotion.environment, promotion.id),
                    &due,
                    Expect::Absent,
                )?);
            }
        }
        Ok(PromotionOutcome {
            promotion,
            decision: record,
            approval: None,
            ledger_index: 0,
            replayed: false,
        })
    }

    /// Stages `certification` as the environment's certified release: the environment
    /// record (with `expect`: anything for a promotion, see [`EnvironmentRecord`]; the
    /// version it read for a rollback) and the release's standing there.
    pub(crate) async fn stage_certification(
        &self,
        environment: &str,
        certification: Certification,
        expect: Expect,
    ) -> AppResult<Vec<StateWrite>> {
        let key = CertificationRecord::key(environment, &certification.release);
        let first = self
            .get::<CertificationRecord>(kind::CERTIFICATION, &key)
            .await?
            .map_or(certification.at, |s| s.value.first_certified_at);
        let standing = CertificationRecord {
            environment: environment.into(),
            certification: certification.clone(),
            first_certified_at: first,
            failed: false,
        };
        let env = EnvironmentRecord {
            name: environment.into(),
            certified: Some(certification),
        };
        Ok(vec![
            write(kind::ENVIRONMENT, environment, &env, expect)?,
            write(kind::CERTIFICATION, &key, &standing, Expect::Any)?,
        ])
    }

    async fn provenance_digests(
        &self,
        release: &ReleaseRecord,
    ) -> AppResult<Vec<(Digest, Digest)>> {
        let mut out = Vec::new();
        for a in &release.artifacts {
            if let Some(r) = self
                .get::<ArtifactRecord>(kind::ARTIFACT, &a.digest.to_string())
                .await?
            {
                if let Some(env) = &r.value.provenance {
                    out.push((a.digest.clone(), envelope_digest(env)));
                }
            }
        }
        Ok(out)
    }

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
    ) -> AppResult<Facts> {
        let keys: Vec<PublicKey> = policy.release_keys().cloned().collect();
        let signing_key = if keys.is_empty() {
            None
        } else {
            dsse::verify(&release.manifest, &keys, 1)
                .ok()
                .and_then(|v| v.key_ids().first().map(ToString::to_string))
        };
        let mut artifacts = Vec::with_capacity(release.artifacts.len());
        for a in &release.artifacts {
            let record: ArtifactRecord = self
                .require(kind::ARTIFACT, &a.digest.to_string(), || {
                    format!("artifact {} is not registered", a.digest)
                })
                .await?
                .value;
            artifacts.push(ArtifactFacts {
                name: a.name.clone(),
                digest: a.digest.to_string(),
                built_by: record.registered_by,
                provenance: record.provenance_facts.map(|p| ProvenanceFacts {
                    signing_key: Some(p.signing_key),
                    builder_id: p.builder_id,
                    source_repo: p.source_repo,
                    source_commit: p.source_commit,
                    subject_matches: p.subject_matches,
                }),
                evidence: record
                    .evidence
                    .iter()
                    .map(|e| EvidenceFacts {
                        kind: e.kind.clone(),
                        at: e.at.unix_seconds(),
                    })
                    .collect(),
            });
        }
        let previous = match policy
            .environment(&promotion.environment)
            .and_then(|e| e.after.clone())
        {
            None => None,
            Some(after) => {
                let key = CertificationRecord::key(&after, &release.id());
                let standing: Option<CertificationRecord> =
                    self.get(kind::CERTIFICATION, &key).await?.map(|v| v.value);
                let deployed = self.store.state(kind::DEPLOYED, &key).await?.is_some();
                Some(PreviousFacts {
                    environment: after,
                    certified_at: standing.map(|s| s.first_certified_at.unix_seconds()),
                    deploy_verified: deployed,
                })
            }
        };
        Ok(Facts {
            now: now.unix_seconds(),
            environment: promotion.environment.clone(),
            requested_by: promotion.requested_by.clone(),
            release: ReleaseFacts {
                name: release.name.clone(),
                version: release.version.clone(),
                digest: release.digest.to_string(),
                signing_key,
                signatures: release.manifest.signatures.len(),
                signed_by: release.created_by.clone(),
                artifacts,
            },
            previous,
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
                })
                .collect(),
        })
    }
}

/// With an idempotency key: the store's key for this `use_case` request, and the record by
/// which a retry finds the promotion it made or reviewed (see `replay_of`).
fn remember(
    use_case: &str,
    key: Option<&str>,
    promotion: &str,
    request: &serde_json::Value,
) -> AppResult<(Option<custody_store::IdempotencyKey>, Option<StateWrite>)> {
    let Some(key) = key else {
        return Ok((None, None));
    };
    let record = IdempotencyRecord::new(promotion, request)?;
    Ok((
        Some(idempotency(use_case, key, request)?),
        Some(write(
            kind::IDEMPOTENCY,
            &format!("{use_case}:{key}"),
            &record,
            Expect::Absent,
        )?),
    ))
}

/// The `approval.recorded` event of `record`. A confidential rationale stays out of the
/// (public) ledger: only its digest is there, binding the text kept in state.
fn approval_event(
    actor: &Actor,
    record: &ApprovalRecord,
    promotion: &PromotionRecord,
    release: &ReleaseRecord,
    after_the_fact: bool,
) -> AppResult<custody_model::CanonicalJson> {
    let rationale = record.rationale.as_str();
    let mut fields = json!({
            "approval": record.id,
            "promotion": promotion.id,
            "verdict": record.verdict,
            "rationale": if record.confidential { None } else { Some(rationale) },
            "rationale_digest": crate::attestations::sha256(rationale.as_bytes()),
            "confidential": record.confidential,
            "risk": record.risk,
            "expires_at": record.expires_at.to_string(),
            "release": promotion.release,
            "release_digest": record.release_digest,
            "environment": record.environment,
            "policy": record.policy_digest,
            "context": record.context,
            "supersedes": record.supersedes,
            "artifacts": release.artifacts.iter().map(|a| &a.digest).collect::<Vec<_>>(),
    });
    if after_the_fact {
        fields["after_the_fact"] = json!(true);
    }
    event("approval.recorded", actor, fields)
}
