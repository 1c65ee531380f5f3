//! What the pipeline board says about trust in one environment: how the certified release
//! stood when it was decided (signature, provenance, evidence, approvals), what deploy
//! tooling last reported running there (and whether any of it was never certified), and
//! the latest rejections and rollbacks.
//!
//! Every part is a bounded read, whatever the size of the history: one decision record
//! (and the policy version it was made under, compiled once and kept), and three index
//! searches of a few entries each (newest first), so the board stays as cheap at 100,000
//! promotions as at ten.

use std::sync::Arc;

use custody_model::{Digest, Timestamp};
use custody_policy::{Gate, GateResult, Policy, Status};
use custody_store::{Store, search};
use serde::Serialize;

use crate::app::App;
use crate::events::{DeployStatus, EventBody};
use crate::records::{Certification, DecisionRecord, kind};
use crate::{AppResult, HistoryEntry};

/// Recent rejections and rollbacks listed per environment at most.
pub const RECENT_OUTCOMES: usize = 3;

/// Decisions read back per environment to find its recent rejections (most decisions leave
/// a promotion waiting; a rejection older than these is history's to show).
const DECISIONS_SCANNED: u64 = 20;

/// How the certified release stood when its decision let it in.
#[derive(Debug, Clone, Serialize)]
pub struct Standing {
    /// The key id of the release key its manifest verified with (`None`: unsigned, or by
    /// no trusted key: it entered by break-glass or under an older policy).
    pub signing_key: Option<String>,
    /// The signatures the manifest carries, trusted or not.
    pub signatures: usize,
    /// Every gate of the decision, in evaluation order.
    pub gates: Vec<GateResult>,
    /// Distinct approvals that counted, and the quorum the environment needed under the
    /// policy version the decision was made under (`None` when it needed none).
    pub approvals: (usize, Option<u32>),
    /// Whether it entered by break-glass.
    pub break_glass: bool,
    /// The digests of its artifacts (`sha256:…`).
    pub artifacts: Vec<String>,
}

impl Standing {
    /// The evidence gates (evidence present, tests, analysis, scans, SBOMs, reproducible
    /// builds) the decision evaluated: (passed, with or without a warning; not passed:
    /// failed, waiting or overridden).
    pub fn evidence_counts(&self) -> (usize, usize) {
        let evidence = self.gates.iter().filter(|g| is_evidence(g.gate));
        let passed = evidence
            .clone()
            .filter(|g| matches!(g.status, Status::Pass | Status::Warn))
            .count();
        (passed, evidence.count() - passed)
    }

    /// The decision's verdict on `gate`, if it evaluated it.
    pub fn gate(&self, gate: Gate) -> Option<&GateResult> {
        self.gates.iter().find(|g| g.gate == gate)
    }
}

/// Whether `gate` judges evidence about the artifacts.
pub fn is_evidence(gate: Gate) -> bool {
    matches!(
        gate,
        Gate::Evidence
            | Gate::Tests
            | Gate::StaticAnalysis
            | Gate::Vulnerabilities
            | Gate::Licences
            | Gate::Reproducible
    )
}

/// What deploy tooling last reported running in an environment.
#[derive(Debug, Clone, Serialize)]
pub struct Running {
    /// The ledger entry of the report.
    pub index: u64,
    /// When.
    pub at: Timestamp,
    /// Who reported it.
    pub by: String,
    /// Whether the rollout succeeded.
    pub succeeded: bool,
    /// The digests reported.
    pub digests: Vec<Digest>,
    /// Of a successful rollout, those not in the release certified there now: running,
    /// never certified (drift).
    pub drift: Vec<Digest>,
}

/// A recent rejection or rollback in an environment.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The ledger entry.
    pub index: u64,
    /// When.
    pub at: Timestamp,
    /// Rejected or rolled back.
    pub kind: OutcomeKind,
    /// The release rejected, or rolled back from.
    pub release: String,
    /// The promotion rejected, or the one whose release was rolled back.
    pub promotion: String,
    /// Why, for a person: the failing gates, or the rollback's reason and target.
    pub detail: String,
}

/// What happened to a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeKind {
    /// A decision ended it (an eligible reviewer rejected it, or its break-glass was refused).
    Rejected,
    /// The environment went back from it.
    RolledBack,
}

impl<S: Store> App<S> {
    /// The certified release's standing, read from the decision that certified it.
    pub(crate) async fn certified_standing(
        &self,
        policy: &Arc<Policy>,
        environment: &str,
        certified: &Certification,
    ) -> AppResult<Option<Standing>> {
        let Some(record) = self
            .get::<DecisionRecord>(kind::DECISION, &certified.decision)
            .await?
        else {
            return Ok(None);
        };
        let d = record.value;
        // Approvals that counted when it was decided: the latest approving review of each
        // reviewer given for this release, environment and policy version.
        let mut counted: Vec<&str> = d
            .facts
            .approvals
            .iter()
            .filter(|a| {
                a.approve
                    && !a.superseded
                    && a.release_digest == d.facts.release.digest
                    && a.environment == d.facts.environment
                    && a.policy_digest == d.decision.policy_digest
                    && a.expires_at > d.facts.now
            })
            .map(|a| a.by.as_str())
            .collect();
        counted.sort_unstable();
        counted.dedup();
        // The quorum of the policy version the decision was made under: a later change of
        // the rule does not rewrite how many approvals let this release in. (A version the
        // store cannot produce is no reason to fail the board: the rule in force stands in.)
        let decided_under = match self.policy_version(&d.decision.policy_digest).await {
            Ok(version) => version,
            Err(e) if e.fault() == crate::Fault::NotFound => policy.clone(),
            Err(e) => return Err(e),
        };
        let quorum = decided_under
            .environment(environment)
            .and_then(|e| e.approvals.as_ref())
            .map(|a| a.quorum);
        Ok(Some(Standing {
            signing_key: d.facts.release.signing_key.clone(),
            signatures: d.facts.release.signatures,
            approvals: (counted.len(), quorum),
            break_glass: d.facts.break_glass.is_some(),
            artifacts: d
                .facts
                .release
                .artifacts
                .iter()
                .map(|a| a.digest.clone())
                .collect(),
            gates: d.decision.gates,
        }))
    }

    /// The newest entries of `kind` about `environment`, at most `limit`, newest first.
    async fn latest(
        &self,
        event_kind: &str,
        environment: &str,
        size: u64,
        limit: u64,
    ) -> AppResult<Vec<HistoryEntry>> {
        let terms = [
            search::event_type(event_kind),
            search::environment(environment),
        ];
        self.store
            .search(&terms, 0, size, limit)
            .await?
            .into_iter()
            .map(HistoryEntry::read)
            .collect()
    }

    /// What was last reported running in `environment`, with the digests that are not in
    /// its certified release (`certified_digests`) marked as drift.
    pub(crate) async fn running(
        &self,
        environment: &str,
        certified_digests: &[String],
        size: u64,
    ) -> AppResult<Option<Running>> {
        let latest = self.latest("deploy.reported", environment, size, 1).await?;
        Ok(latest.into_iter().find_map(|e| match e.event.body {
            EventBody::DeployReported(r) if r.environment == environment => {
                // A failed rollout's digests are what did not come up: not drift.
                let succeeded = r.status == DeployStatus::Succeeded;
                let drift = r
                    .artifacts
                    .iter()
                    .filter(|d| succeeded && !certified_digests.contains(&d.to_string()))
                    .cloned()
                    .collect();
                Some(Running {
                    index: e.index,
                    at: e.event.at,
                    by: e.event.actor.clone(),
                    succeeded,
                    digests: r.artifacts,
                    drift,
                })
            }
            _ => None,
        }))
    }

    /// The latest rejections and rollbacks in `environment`, newest first (at most
    /// [`RECENT_OUTCOMES`]).
    pub(crate) async fn recent_outcomes(
        &self,
        environment: &str,
        size: u64,
    ) -> AppResult<Vec<Outcome>> {
        let mut out = Vec::new();
        for e in self
            .latest("rollback", environment, size, RECENT_OUTCOMES as u64)
            .await?
        {
            if let EventBody::RolledBack(r) = e.event.body {
                out.push(Outcome {
                    index: e.index,
                    at: e.event.at,
                    kind: OutcomeKind::RolledBack,
                    release: r.from,
                    promotion: r.failed_promotion,
                    detail: format!("back to {}: {}", r.to, r.reason),
                });
            }
        }
        let decisions = self
            .latest("decision.recorded", environment, size, DECISIONS_SCANNED)
            .await?;
        for e in decisions {
            let EventBody::DecisionRecorded(d) = e.event.body else {
                continue;
            };
            // Rejected: what `Decision::ends_promotion` says, read from the event (a
            // reviewer rejected it, or its break-glass was refused).
            let failed: Vec<String> = d
                .gates
                .iter()
                .filter(|g| {
                    matches!(g.gate, Gate::Approvals | Gate::BreakGlass) && g.status == Status::Fail
                })
                .map(|g| format!("{}: {}", g.gate, g.reason))
                .collect();
            if d.allowed || failed.is_empty() {
                continue;
            }
            out.push(Outcome {
                index: e.index,
                at: e.event.at,
                kind: OutcomeKind::Rejected,
                release: d.release,
                promotion: d.promotion,
                detail: failed.join("; "),
            });
        }
        out.sort_by_key(|o| std::cmp::Reverse(o.index));
        out.truncate(RECENT_OUTCOMES);
        Ok(out)
    }
}
