//! What a key's trust touches: `custody key impact KEY`.
//!
//! Everything custody recorded as signed by the key (releases, provenance, decision
//! receipts, key hand-overs) is found through the ledger's index (`search::key`: each event
//! names the keys whose signatures it verified), so the answer costs a range read per
//! thousand uses, not a pass over the ledger. Then, per environment: the release certified
//! there and what deploy tooling last reported running, whether either depends on the key,
//! and what the deploy gate now says of it.
//!
//! Whether a use still counts is the keyring's rule ([`crate::keyring::Keyring::counts`]):
//! after a revocation, exactly the uses the ledger recorded at or after the cutoff stop
//! counting.

use std::collections::BTreeSet;

use custody_model::{Digest, Timestamp};
use custody_store::{Store, search};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::events::EventBody;
use crate::keyring::KeyView;
use crate::records::{ReleaseRecord, kind};
use crate::{AppError, AppResult, HistoryEntry};

/// What a revocation event names at most of what stopped counting.
pub const MAX_AFFECTED_NAMED: usize = 100;

/// Uses of one key listed at most (the count beyond is reported as truncated).
pub const MAX_IMPACT: usize = 100_000;

/// One recorded use of a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyUseRecord {
    /// What was signed: `release`, `provenance`, `decision receipt`, `key hand-over`,
    /// `key revocation`.
    pub what: String,
    /// Its name: the release `name@version`, the artifact's `name digest`, the decision
    /// id, the successor's key id.
    pub name: String,
    /// When the ledger recorded it.
    pub at: Timestamp,
    /// Its ledger index.
    pub ledger_index: u64,
    /// Whether the signature still counts (by the keyring's rule).
    pub counts: bool,
    /// Why not, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why_not: Option<String>,
}

/// One environment, as the key touches it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvironmentImpact {
    /// The environment.
    pub environment: String,
    /// The release certified there, if any.
    pub certified: Option<String>,
    /// Whether the certified release depends on the key (its manifest or an artifact's
    /// provenance was signed by it).
    pub certified_depends: bool,
    /// What deploy tooling last reported running there that depends on the key.
    pub running: Vec<Digest>,
    /// What the deploy gate says of the certified release now (`None`: nothing certified).
    pub gate_allows: Option<bool>,
    /// The gate's reasons, when it denies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// What a key's trust touches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyImpact {
    /// The key, as the keyring holds it.
    pub key: KeyView,
    /// Every recorded use, newest first.
    pub uses: Vec<KeyUseRecord>,
    /// How many of them no longer count.
    pub not_counting: usize,
    /// Every environment of the pipeline.
    pub environments: Vec<EnvironmentImpact>,
    /// Whether more than [`MAX_IMPACT`] uses were found (the oldest are left out).
    pub truncated: bool,
}

impl<S: Store> App<S> {
    /// What `key_id`'s trust touches (see the module doc).
    pub async fn key_impact(&self, key_id: &str) -> AppResult<KeyImpact> {
        let ring = self.keyring().await?;
        let Some(key) = ring.get(key_id).cloned() else {
            return Err(AppError::not_found(format!(
                "key {key_id} is not in the keyring; `custody key list` shows every key custody has trusted"
            )));
        };
        let counts = |at: Timestamp| ring.counts(key_id, key.purpose, at);
        let term = [search::key(key_id)];
        let mut end = self.store.size().await?;
        let mut uses = Vec::new();
        let mut releases = BTreeSet::new();
        let mut artifacts = BTreeSet::new();
        let mut truncated = false;
        'pages: loop {
            let page = self.store.search(&term, 0, end, 1_000).await?;
            let Some(last) = page.last() else { break };
            end = last.index;
            for entry in page {
                if uses.len() >= MAX_IMPACT {
                    truncated = true;
                    break 'pages;
                }
                // The index narrows, the leaf decides (a changed leaf is the ledger
                // check's to report).
                let Ok(entry) = HistoryEntry::read(entry) else {
                    continue;
                };
                let at = entry.event.at;
                let (what, name, signed) = match &entry.event.body {
                    EventBody::ReleaseCreated(r) => {
                        releases.insert(r.release.clone());
                        ("release", r.release.clone(), true)
                    }
                    EventBody::ArtifactRegistered(a) => {
                        artifacts.insert(a.artifact.digest.clone());
                        (
                            "provenance",
                            format!("{} {}", a.artifact.name, a.artifact.digest),
                            true,
                        )
                    }
                    EventBody::DecisionRecorded(d) => {
                        ("decision receipt", d.decision.clone(), true)
                    }
                    EventBody::ProposalReviewed(r) => (
                        "policy review",
                        format!("{} of proposal {}", entry.event.actor, r.proposal),
                        true,
                    ),
                    EventBody::ApprovalRecorded(a) => (
                        "approval",
                        format!(
                            "{} of {} in {} ({})",
                            entry.event.actor, a.release, a.environment, a.promotion
                        ),
                        true,
                    ),
                    EventBody::KeyRotated(r) if r.from == key_id => {
                        ("key hand-over", format!("to {}", r.to), true)
                    }
                    EventBody::KeyRotated(r) => ("key hand-over", format!("from {}", r.from), true),
                    _ => continue,
                };
                // A hand-over is what ends the key's span: it counts unless the key was
                // revoked by then (its successors are revoked with it).
                let verdict = match (signed, &key.revoked) {
                    (false, _) => Ok(()),
                    (true, Some(r)) if what == "key hand-over" && r.cutoff() > at => Ok(()),
                    (true, None) if what == "key hand-over" => Ok(()),
                    (true, _) => counts(at),
                };
                uses.push(KeyUseRecord {
                    what: what.to_owned(),
                    name,
                    at,
                    ledger_index: entry.index,
                    counts: verdict.is_ok(),
                    why_not: verdict.err(),
                });
            }
        }
        let not_counting = uses.iter().filter(|u| !u.counts).count();
        let environments = self.environment_impact(&releases, &artifacts).await?;
        Ok(KeyImpact {
            key: KeyView::from(&key),
            uses,
            not_counting,
            environments,
            truncated,
        })
    }

    /// What the ledger recorded as signed by any of `keys` at or after `cutoff`, for a
    /// revocation's event: each release and provenance, then each environment whose
    /// certified release depends on them (`production: shop@1.4.3`), at most
    /// [`MAX_AFFECTED_NAMED`] lines, the last saying how many more.
    pub(crate) async fn signed_since(
        &self,
        keys: &[String],
        cutoff: Timestamp,
    ) -> AppResult<Vec<String>> {
        let mut releases = BTreeSet::new();
        let mut artifacts = BTreeSet::new();
        let mut lines = Vec::new();
        for key in keys {
            let term = [search::key(key)];
            let mut end = self.store.size().await?;
            'pages: loop {
                let page = self.store.search(&term, 0, end, 1_000).await?;
                let Some(last) = page.last() else { break };
                end = last.index;
                for entry in page {
                    let Ok(entry) = HistoryEntry::read(entry) else {
                        continue;
                    };
                    if entry.event.at < cutoff {
                        // Newest first, and stamps nearly in log order: past the cutoff by
                        // more than the store's lateness bound, nothing later follows.
                        if entry.event.at.unix_seconds() < cutoff.unix_seconds() - 120 {
                            break 'pages;
                        }
                        continue;
                    }
                    match entry.event.body {
                        EventBody::ReleaseCreated(r) => {
                            lines.push(format!("release {}", r.release));
                            releases.insert(r.release);
                        }
                        EventBody::ArtifactRegistered(a) => {
                            lines.push(format!(
                                "provenance of {} {}",
                                a.artifact.name, a.artifact.digest
                            ));
                            artifacts.insert(a.artifact.digest);
                        }
                        _ => {}
                    }
                }
            }
        }
        for env in self.environment_impact(&releases, &artifacts).await? {
            if let (true, Some(release)) = (env.certified_depends, &env.certified) {
                lines.push(format!("certified in {}: {release}", env.environment));
            }
        }
        if lines.len() > MAX_AFFECTED_NAMED {
            let more = lines.len() - (MAX_AFFECTED_NAMED - 1);
            lines.truncate(MAX_AFFECTED_NAMED - 1);
            lines.push(format!(
                "and {more} more (custody key impact lists them all)"
            ));
        }
        Ok(lines)
    }

    /// Per environment: whether what is certified and what runs there depends on the
    /// releases and artifacts a key signed, and what the gate says now.
    async fn environment_impact(
        &self,
        releases: &BTreeSet<String>,
        artifacts: &BTreeSet<Digest>,
    ) -> AppResult<Vec<EnvironmentImpact>> {
        let policy = self.policy().await?;
        let size = self.store.size().await?;
        let mut out = Vec::new();
        for env in policy.environments() {
            let record = self
                .get::<crate::records::EnvironmentRecord>(kind::ENVIRONMENT, &env.name)
                .await?;
            let certified = record.and_then(|r| r.value.certified).map(|c| c.release);
            let mut depends_digests: Vec<Digest> = Vec::new();
            let mut certified_depends = false;
            let mut gate = None;
            if let Some(release_id) = &certified {
                if let Some(release) = self.get::<ReleaseRecord>(kind::RELEASE, release_id).await? {
                    certified_depends = releases.contains(release_id)
                        || release
                            .value
                            .artifacts
                            .iter()
                            .any(|a| artifacts.contains(&a.digest));
                    if releases.contains(release_id) {
                        depends_digests
                            .extend(release.value.artifacts.iter().map(|a| a.digest.clone()));
                    }
                    if let Some(first) = release.value.artifacts.first() {
                        gate = Some(self.verify(&env.name, &first.digest).await?);
                    }
                }
            }
            let running = self
                .running(&env.name, &[], size)
                .await?
                .map(|r| r.digests)
                .unwrap_or_default()
                .into_iter()
                .filter(|d| artifacts.contains(d) || depends_digests.contains(d))
                .collect();
            out.push(EnvironmentImpact {
                environment: env.name.clone(),
                certified,
                certified_depends,
                running,
                gate_allows: gate.as_ref().map(|g| g.allowed),
                reasons: gate
                    .filter(|g| !g.allowed)
                    .map(|g| g.reasons.clone())
                    .unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Why the certifying promotion's approvals no longer make its quorum, if a personal
    /// key that signed some of them was revoked (or compromised) by the time the ledger
    /// recorded them: the approvals still counting, against the quorum the environment
    /// asks under the policy in force, naming those that stopped counting.
    pub(crate) async fn approvals_revoked(
        &self,
        policy: &custody_policy::Policy,
        environment: &str,
        approvals: &[crate::app::Versioned<crate::records::ApprovalRecord>],
    ) -> AppResult<Option<String>> {
        let current = approvals
            .iter()
            .map(|a| &a.value)
            .filter(|a| a.verdict == custody_model::Verdict::Approve && a.superseded_by.is_none());
        let ring = self.keyring().await?;
        let refused: Vec<(&str, String)> = current
            .clone()
            .filter_map(|a| {
                let key = a.signed_with.as_ref()?;
                ring.counts(&key.key, custody_policy::KeyPurpose::PersonalApproval, a.at)
                    .err()
                    .map(|why| (a.by.as_str(), why))
            })
            .collect();
        if refused.is_empty() {
            return Ok(None);
        }
        let Some(quorum) = policy
            .environment(environment)
            .and_then(|e| e.approvals.as_ref())
            .map(|r| r.quorum)
        else {
            return Ok(None);
        };
        let mut standing: Vec<&str> = current
            .map(|a| a.by.as_str())
            .filter(|by| !refused.iter().any(|(r, _)| r == by))
            .collect();
        standing.sort_unstable();
        standing.dedup();
        if standing.len() >= quorum as usize {
            return Ok(None);
        }
        Ok(Some(format!(
            "its approvals no longer make the quorum of {quorum} ({} still count): {}; re-approve it",
            standing.len(),
            refused
                .iter()
                .map(|(by, why)| format!("the approval by {by} does not count: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        )))
    }
}
