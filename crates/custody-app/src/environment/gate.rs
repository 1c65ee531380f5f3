//! The deploy gate: may a digest run in an environment now, and why (cached per
//! environment and digest until anything it was computed from changes).

use std::sync::Arc;

use custody_model::Digest;
use custody_policy::{Policy, Status};
use custody_store::Store;
use serde::Serialize;

use super::failing_gates;
use crate::AppResult;
use crate::app::{App, VerdictStamp, Versioned};
use crate::events::EventBody;
use crate::records::{
    ArtifactRecord, DecisionRecord, EnvironmentRecord, PromotionRecord, ReleaseRecord, Verdict,
    kind,
};

/// How the deploy gate's reasons begin for a gate that passes only because an approved
/// exception waives what it found.
pub(crate) const BY_EXCEPTION: &str = "by exception, not a clean pass";

/// The deploy gate's answer.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Verification {
    /// May the digest run in the environment?
    pub allowed: bool,
    /// Why (or why not), one line each.
    pub reasons: Vec<String>,
    /// The certified release, if any.
    pub release: Option<String>,
    /// The decision that certified it: its outcome and signed VSA. The facts it weighed
    /// are one `GET /api/v1/decisions/{id}` away; the gate does not send them on every
    /// call (they are most of the bytes, and a deploy system checks the VSA).
    pub decision: Option<CertifyingDecision>,
    /// Ledger index of the certification.
    pub ledger_index: Option<u64>,
    /// The gates the certifying decision overrode by break-glass (empty for a clean
    /// pass): an allowed digest whose release is an exception to the policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<String>,
    /// Its JSON encoding, made once: a cached verdict is answered many times.
    #[serde(skip)]
    encoded: std::sync::OnceLock<bytes::Bytes>,
    /// When the verdict may change by time alone (an exception it read starts or stops
    /// counting): a cached verdict is not served from then on.
    #[serde(skip)]
    pub(crate) valid_until: Option<custody_model::Timestamp>,
}

/// The decision behind a deploy-gate verdict, without the facts it weighed.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CertifyingDecision {
    /// Its id.
    pub id: String,
    /// The promotion decided about.
    pub promotion: String,
    /// When.
    pub at: custody_model::Timestamp,
    /// The outcome: each gate, the policy version and the digest of the facts.
    pub decision: custody_policy::Decision,
    /// The signed VSA (SLSA Verification Summary), checkable without custody.
    pub vsa: custody_crypto::dsse::Envelope,
}

impl From<DecisionRecord> for CertifyingDecision {
    fn from(d: DecisionRecord) -> Self {
        CertifyingDecision {
            id: d.id,
            promotion: d.promotion,
            at: d.at,
            decision: d.decision,
            vsa: d.vsa,
        }
    }
}

impl Verification {
    /// The verdict as JSON (encoded on first use, then kept and shared, not copied, by
    /// every answer that sends it).
    pub fn to_json(&self) -> Result<bytes::Bytes, serde_json::Error> {
        if let Some(done) = self.encoded.get() {
            return Ok(done.clone());
        }
        let encoded = bytes::Bytes::from(serde_json::to_vec(self)?);
        Ok(self.encoded.get_or_init(|| encoded).clone())
    }
}

impl<S: Store> App<S> {
    /// The deploy gate: may `digest` run in `environment` now? Only if it belongs to the
    /// release certified there, that release still stands under the policy in force (its
    /// signature and every artifact's provenance verify with keys the policy trusts there,
    /// its builders may build its repositories, its names pass, the evidence the environment
    /// requires is attached: `custody_policy::evaluate_standing`), and nobody who could have
    /// approved it has since rejected it.
    ///
    /// Answers are cached by (environment, digest) and served while everything the verdict
    /// read is the version it was computed from: the environment record, the policy in force,
    /// the certifying promotion's record (an after-the-fact review writes it) and each of the
    /// release's artifact records (evidence attached later writes it: a failing test report
    /// or a critical scan closes the gate at once); the rest (the release, its decision)
    /// never changes once written; the keyring record (a rotation or revocation writes
    /// it: a revoked key closes the gate at once); and the exceptions asked for about the
    /// release or its artifacts. The standing reads `now` only to tell which exceptions
    /// count (the other time-bound gates are not re-checked), so an answer goes stale by
    /// time alone only when an exception it read starts or stops counting.
    pub async fn verify(
        &self,
        environment: &str,
        digest: &Digest,
        now: custody_model::Timestamp,
    ) -> AppResult<Arc<Verification>> {
        // A name no policy could hold is the caller's mistake (400), not a verdict: only a
        // well-formed name is denied as unknown, and only it is cached.
        crate::limits::label("the environment", environment, crate::limits::MAX_NAME)?;
        let policy = self.policy().await?;
        let env_now = self
            .get_hot_checked::<EnvironmentRecord>(kind::ENVIRONMENT, environment)
            .await?;
        let promotion = match env_now.as_ref().and_then(|e| e.value.certified.as_ref()) {
            Some(cert) => {
                self.get_hot::<PromotionRecord>(kind::PROMOTION, &cert.promotion)
                    .await?
            }
            None => None,
        };
        let mut artifacts = Vec::new();
        let mut exceptions = Vec::new();
        if let Some(cert) = env_now.as_ref().and_then(|e| e.value.certified.as_ref()) {
            if let Some(release) = self
                .get_hot::<ReleaseRecord>(kind::RELEASE, &cert.release)
                .await?
            {
                for a in &release.value.artifacts {
                    let record = self
                        .get_hot::<ArtifactRecord>(kind::ARTIFACT, &a.digest.to_string())
                        .await?;
                    artifacts.push(record.map_or(0, |r| r.version));
                }
                exceptions = self.exception_versions(&release.value).await?;
            }
        }
        let stamp = VerdictStamp {
            environment: env_now.as_ref().map(|e| e.version),
            policy: policy.digest().to_owned(),
            promotion: promotion.as_ref().map(|p| p.version),
            artifacts,
            keyring: self.keyring_record().await?.map(|r| r.version),
            exceptions,
        };
        let key = (environment.to_owned(), digest.clone());
        if let Some(hit) = self.cached_verdict(&key, &stamp, now) {
            return Ok(hit);
        }
        let verdict = Arc::new(
            self.verify_uncached(&policy, (environment, digest, now), env_now, promotion)
                .await?,
        );
        self.cache_verdict(key, stamp, &verdict);
        Ok(verdict)
    }

    async fn verify_uncached(
        &self,
        policy: &Policy,
        (environment, digest, now): (&str, &Digest, custody_model::Timestamp),
        env: Option<Arc<Versioned<EnvironmentRecord>>>,
        promotion: Option<Arc<Versioned<PromotionRecord>>>,
    ) -> AppResult<Verification> {
        let deny = |reason: String| Verification {
            allowed: false,
            reasons: vec![reason],
            release: None,
            decision: None,
            ledger_index: None,
            overridden: Vec::new(),
            encoded: Default::default(),
            valid_until: None,
        };
        if policy.environment(environment).is_none() {
            return Ok(deny(format!("unknown environment {environment:?}")));
        }
        let Some(cert) = env.as_ref().and_then(|e| e.value.certified.clone()) else {
            return Ok(deny(format!("nothing is certified in {environment}")));
        };
        let release = self.release(&cert.release).await?;
        let decision: DecisionRecord = self
            .require(kind::DECISION, &cert.decision, || {
                format!("no decision {}", cert.decision)
            })
            .await?
            .value;
        let mut verdict = Verification {
            allowed: false,
            reasons: Vec::new(),
            release: Some(cert.release.clone()),
            decision: Some(decision.into()),
            ledger_index: match &env {
                Some(env) => self.certification_index(env, &cert.release).await?,
                None => None,
            },
            overridden: Vec::new(),
            encoded: Default::default(),
            valid_until: None,
        };
        let Some(artifact) = release.artifacts.iter().find(|a| &a.digest == digest) else {
            verdict.reasons.push(format!(
                "digest mismatch: {digest} is not an artifact of {} certified in {environment} (its artifacts: {})",
                cert.release,
                release.artifacts.iter().map(|a| format!("{}={}", a.name, a.digest)).collect::<Vec<_>>().join(", ")
            ));
            return Ok(verdict);
        };
        // Everything that does not depend on when it was promoted, under today's policy
        // (and the exceptions that count now).
        let (facts, standing) = self.standing(policy, environment, &cert, now).await?;
        verdict.valid_until = facts
            .exceptions
            .iter()
            .flat_map(|x| [x.approved_at, x.expires_at])
            .filter(|t| *t > now.unix_seconds())
            .min()
            .and_then(|t| custody_model::Timestamp::from_unix_seconds(t).ok());
        verdict.reasons.extend(
            failing_gates(&standing)
                .into_iter()
                .map(|why| format!("{} no longer stands in {environment}: {why}", cert.release)),
        );
        // The approvals that certified it (a rollback's: the restored promotion's) must
        // still make the quorum if a personal key that signed them was revoked since.
        let approvals = match &promotion {
            Some(p) => self.approvals_of(&p.value).await?,
            None => Vec::new(),
        };
        verdict.reasons.extend(
            self.approvals_revoked(policy, environment, &approvals)
                .await?,
        );
        if !cert.by_rollback {
            if let Some(promotion) = &promotion {
                for a in approvals {
                    let a = a.value;
                    // A rejection counts only from someone who could have approved it; its
                    // rationale may be confidential, so the verdict names the review only.
                    let eligible =
                        custody_policy::may_review(policy, &facts, &a.by, a.at.unix_seconds())
                            .is_ok();
                    if a.verdict == Verdict::Reject && a.superseded_by.is_none() && eligible {
                        verdict.reasons.push(format!(
                            "{} has since rejected it (review {}; its rationale is on the promotion {})",
                            a.by, a.id, promotion.value.id
                        ));
                    }
                }
            }
        }
        if verdict.reasons.is_empty() {
            verdict.allowed = true;
            verdict.reasons.push(format!(
                "{} ({}) is part of {} certified in {environment} at {}{}",
                artifact.name,
                digest,
                cert.release,
                cert.at.to_second(),
                if cert.by_rollback { " by rollback" } else { "" }
            ));
            verdict.reasons.push(
                "it still stands under the policy in force: its release signature and provenance verify with keys trusted there, and its names, builders and required evidence pass"
                    .into(),
            );
            if let Some(d) = &verdict.decision {
                verdict.overridden = d
                    .decision
                    .gates
                    .iter()
                    .filter(|g| g.status == Status::Overridden)
                    .map(|g| g.gate.to_string())
                    .collect();
            }
            // What stands only by an approved exception says so, with the exception.
            verdict.reasons.extend(
                standing
                    .gates
                    .iter()
                    .filter(|g| {
                        g.status == Status::Pass && g.reason.contains(custody_policy::WAIVED)
                    })
                    .map(|g| format!("{BY_EXCEPTION}: {}: {}", g.gate, g.reason)),
            );
            if !verdict.overridden.is_empty() {
                verdict.reasons.push(format!(
                    "an exception, not a clean pass: it was certified by break-glass, overriding {} (promotion {})",
                    verdict.overridden.join(", "),
                    cert.promotion
                ));
            }
        }
        Ok(verdict)
    }

    /// The ledger index of the entry that certified `release` where `env` now stands: the
    /// `environment.certified` or `rollback` event of the append that last wrote the
    /// environment's record (the record keeps that append's first index, and its few
    /// events follow). `None` if that append holds neither (nothing is better than an
    /// index that points at another event).
    async fn certification_index(
        &self,
        env: &Versioned<EnvironmentRecord>,
        release: &str,
    ) -> AppResult<Option<u64>> {
        const SCAN: u64 = 64;
        let end = self.store.size().await?.min(env.log_index + SCAN);
        for e in self.store.entries(env.log_index, end).await? {
            let Ok(event) = crate::events::Event::from_leaf(&e.leaf) else {
                continue;
            };
            let (environment, certified) = match &event.body {
                EventBody::EnvironmentCertified(c) => (&c.environment, &c.release),
                EventBody::RolledBack(r) => (&r.environment, &r.to),
                _ => continue,
            };
            if environment == &env.value.name && certified == release {
                return Ok(Some(e.index));
            }
        }
        Ok(None)
    }
}

/// How recent an `evidence.attached` event must be for [`App::recheck_alerts`] to re-check
/// the standings it touches: the ledger's follower sees every event again after a start,
/// and history replayed is not news (the deploy gate re-checks on every call anyway).
pub const RECHECK_WINDOW_SECONDS: i64 = 3600;

impl<S: Store> App<S> {
    /// Re-checks, after new evidence about an artifact (`event`, at ledger `index`), the
    /// standing of every environment whose certified release holds that artifact, as the
    /// deploy gate now answers it: an alert for each that no longer stands (a nightly scan
    /// found a critical CVE in what runs in production). Evidence older than
    /// [`RECHECK_WINDOW_SECONDS`] at `now` is history, not news: nothing is re-checked. The
    /// alert names the piece that caused the denial (the report a reason names), so a
    /// server catching up names it once, not every piece attached since.
    pub async fn recheck_alerts(
        &self,
        index: u64,
        event: &crate::events::Event,
        now: custody_model::Timestamp,
    ) -> AppResult<Vec<crate::alerts::Alert>> {
        let EventBody::EvidenceAttached(e) = &event.body else {
            return Ok(Vec::new());
        };
        if now.unix_seconds() - event.at.unix_seconds() > RECHECK_WINDOW_SECONDS {
            return Ok(Vec::new());
        }
        let policy = self.policy().await?;
        let mut alerts = Vec::new();
        for env in policy.environments() {
            let Some(cert) = self
                .get::<EnvironmentRecord>(kind::ENVIRONMENT, &env.name)
                .await?
                .and_then(|r| r.value.certified)
            else {
                continue;
            };
            let release = self.release(&cert.release).await?;
            let Some(held) = release
                .artifacts
                .iter()
                .find(|a| e.artifacts.contains(&a.digest))
            else {
                continue;
            };
            let verdict = self.verify(&env.name, &held.digest, now).await?;
            if verdict.allowed {
                continue;
            }
            // A server catching up on the last hour re-checks every piece: only the one that
            // caused the denial is named. A reason names the report whose findings broke a
            // rule; where none names a report, the newest evidence about the artifact is
            // taken as the news.
            let report = e.evidence.to_string();
            let caused = verdict.reasons.iter().any(|r| r.contains(&report));
            if !caused {
                let names_a_report = verdict.reasons.iter().any(|r| r.contains("report sha256:"));
                let newest = self
                    .get::<crate::records::ArtifactRecord>(kind::ARTIFACT, &held.digest.to_string())
                    .await?
                    .and_then(|r| r.value.evidence.iter().max_by_key(|p| p.at).cloned());
                let is_newest = newest.is_none_or(|p| p.digest == e.evidence && p.at == event.at);
                if names_a_report || !is_newest {
                    continue;
                }
            }
            alerts.push(crate::alerts::Alert {
                id: format!("standing-lost:{index}:{}", env.name),
                rule: "certified-release-no-longer-stands".into(),
                severity: "critical".into(),
                text: format!(
                    "{} certified in {} no longer stands after new {} evidence about {} (ledger entry {index}); the deploy gate now denies it: {}",
                    cert.release,
                    env.name,
                    e.kind,
                    held.name,
                    verdict.reasons.join("; ")
                ),
                subject: serde_json::json!({"environment": env.name, "release": cert.release,
                    "artifacts": [held.digest], "ledger_index": index, "at": event.at.to_string()}),
            });
        }
        Ok(alerts)
    }
}
