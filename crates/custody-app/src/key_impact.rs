//! What a key's trust touches: `custody key impact KEY`.
//!
//! Everything custody recorded as signed by the key (releases, provenance, approvals,
//! decision receipts, key hand-overs) is found through the ledger's index (`search::key`:
//! each event names the keys whose signatures it verified), so the answer costs a range
//! read per thousand uses, not a pass over the ledger. Then, per environment: the release
//! certified there and what deploy tooling last reported running, how either depends on
//! the key ([`Dependence`]: its manifest, an artifact's provenance, or only an approval of
//! the promotion that certified it), and what the deploy gate now says of it, counting as
//! a denial only one this key caused.
//!
//! Whether a use still counts is the keyring's rule ([`crate::keyring::Keyring::counts`]):
//! after a revocation, exactly the uses the ledger recorded at or after the cutoff stop
//! counting.

use std::collections::BTreeSet;

use custody_model::{Digest, Timestamp, Verdict};
use custody_store::{Store, search};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::environment::Verification;
use crate::events::{self, EventBody};
use crate::keyring::KeyView;
use crate::records::{EnvironmentRecord, PromotionRecord, ReleaseRecord, kind};
use crate::{AppResult, HistoryEntry};

/// What a revocation event names at most of what stopped counting.
pub const MAX_AFFECTED_NAMED: usize = 100;

/// Uses of one key listed at most (the count beyond is reported as truncated).
pub const MAX_IMPACT: usize = 100_000;

/// One recorded use of a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyUseRecord {
    /// What was signed: `release`, `provenance`, `approval`, `policy review`, `decision
    /// receipt`, `key hand-over`.
    pub what: String,
    /// Its name: the release `name@version`, the artifact's `name digest`, the approver
    /// and promotion, the decision id, the other key of a hand-over.
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

/// How a release's trust depends on a key, which says what restores it without the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dependence {
    /// The key signed the release's manifest.
    Manifest,
    /// The key signed the provenance of one of its artifacts.
    Provenance,
    /// The key (a personal approval key) signed a standing approval of the promotion that
    /// certified it.
    Approval,
}

impl Dependence {
    /// Its name, as serialised: `manifest`, `provenance`, `approval`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dependence::Manifest => "manifest",
            Dependence::Provenance => "provenance",
            Dependence::Approval => "approval",
        }
    }

    /// What restores the release's trust without the key.
    pub fn remedy(self) -> &'static str {
        match self {
            Dependence::Manifest => "re-sign the release with a trusted release key",
            Dependence::Provenance => {
                "rebuild it and register its provenance with a trusted builder key"
            }
            Dependence::Approval => {
                "re-approve its promotion (the release itself needs no new signature)"
            }
        }
    }
}

/// What deploy tooling last reported running that depends on the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunningImpact {
    /// The artifact's digest.
    pub digest: Digest,
    /// How it depends on the key.
    pub depends: Vec<Dependence>,
}

/// What the deploy gate says of an environment's certified release, as the key touches
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateNow {
    /// It allows it.
    Allows,
    /// It denies it because of this key (the environment's `reasons` say how).
    Denies,
    /// It denies it for reasons that are not this key's (evidence missing, a rejection…):
    /// outside the key's blast radius; `custody verify` says why.
    DeniesOtherwise,
}

/// One environment, as the key touches it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvironmentImpact {
    /// The environment.
    pub environment: String,
    /// The release certified there, if any.
    pub certified: Option<String>,
    /// How the certified release depends on the key (empty: it does not).
    pub depends: Vec<Dependence>,
    /// What deploy tooling last reported running there that depends on the key.
    pub running: Vec<RunningImpact>,
    /// What the deploy gate says of the certified release now (`None`: nothing certified).
    pub gate: Option<GateNow>,
    /// The gate's reasons that are this key's, when it denies because of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// A certified release the deploy gate now denies because of the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Denial {
    /// The environment.
    pub environment: String,
    /// The release certified there.
    pub release: String,
    /// How it depends on the key.
    pub depends: Vec<Dependence>,
    /// The gate's reasons that are this key's.
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
    /// What the deploy gate now denies because of the key, and only that (a release
    /// denied for another reason is not this key's blast radius).
    pub denied: Vec<Denial>,
    /// Whether more than [`MAX_IMPACT`] uses were found (the oldest are left out).
    pub truncated: bool,
}

/// What keys signed that a certified release's trust can rest on.
#[derive(Debug, Default)]
struct Signed {
    /// The keys (whole ids): a gate reason naming one of them is theirs.
    keys: Vec<String>,
    /// The releases whose manifests they signed.
    releases: BTreeSet<String>,
    /// The artifacts whose provenance they signed.
    artifacts: BTreeSet<Digest>,
    /// The promotions they signed an approval of.
    promotions: BTreeSet<String>,
}

/// The gate's verdict as the keys in `keys` touch it: a denial is theirs when one of its
/// reasons names one of them. Every refusal the keyring's rule makes names the key by its
/// whole id (`Keyring::counts`, a dropped key, revoked approvals), and no other gate's
/// reason names a key id, so a reason naming none is another gate's (evidence, names, a
/// rejection), not the key's doing.
fn judge(verdict: &Verification, keys: &[String]) -> (GateNow, Vec<String>) {
    if verdict.allowed {
        return (GateNow::Allows, Vec::new());
    }
    let theirs: Vec<String> = verdict
        .reasons
        .iter()
        .filter(|r| keys.iter().any(|k| r.contains(k.as_str())))
        .cloned()
        .collect();
    match theirs.is_empty() {
        true => (GateNow::DeniesOtherwise, theirs),
        false => (GateNow::Denies, theirs),
    }
}

impl<S: Store> App<S> {
    /// What the key `key`'s trust touches (see the module doc); `key` is its id or a
    /// unique prefix of it ([`crate::keyring::Keyring::resolve`]).
    pub async fn key_impact(&self, key: &str, now: Timestamp) -> AppResult<KeyImpact> {
        let ring = self.keyring().await?;
        let key = ring.resolve(key)?.clone();
        let key_id = key.key_id.as_str();
        let counts = |at: Timestamp| ring.counts(key_id, key.purpose, at);
        let term = [search::key(key_id)];
        let mut end = self.store.size().await?;
        let mut uses = Vec::new();
        let mut signed = Signed {
            keys: vec![key_id.to_owned()],
            ..Signed::default()
        };
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
                let (what, name) = match &entry.event.body {
                    EventBody::ReleaseCreated(r) => {
                        signed.releases.insert(r.release.clone());
                        ("release", r.release.clone())
                    }
                    EventBody::ArtifactRegistered(events::ArtifactRegistered {
                        artifact: a,
                        ..
                    })
                    | EventBody::ArtifactRebuilt(events::ArtifactRebuilt { artifact: a, .. }) => {
                        signed.artifacts.insert(a.digest.clone());
                        ("provenance", format!("{} {}", a.name, a.digest))
                    }
                    EventBody::DecisionRecorded(d) => ("decision receipt", d.decision.clone()),
                    EventBody::ProposalReviewed(r) => (
                        "policy review",
                        format!("{} of proposal {}", entry.event.actor, r.proposal),
                    ),
                    EventBody::ApprovalRecorded(a) => {
                        signed.promotions.insert(a.promotion.clone());
                        (
                            "approval",
                            format!(
                                "{} of {} in {} ({})",
                                entry.event.actor, a.release, a.environment, a.promotion
                            ),
                        )
                    }
                    EventBody::KeyRotated(r) if r.from == key_id => {
                        ("key hand-over", format!("to {}", r.to))
                    }
                    EventBody::KeyRotated(r) => ("key hand-over", format!("from {}", r.from)),
                    _ => continue,
                };
                // A hand-over is what ends the key's span: it counts unless the key was
                // revoked by then (its successors are revoked with it).
                let verdict = match &key.revoked {
                    Some(r) if what == "key hand-over" && r.cutoff() > at => Ok(()),
                    None if what == "key hand-over" => Ok(()),
                    _ => counts(at),
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
        let environments = self.environment_impact(&signed, now).await?;
        let denied = environments
            .iter()
            .filter(|e| e.gate == Some(GateNow::Denies))
            .map(|e| Denial {
                environment: e.environment.clone(),
                release: e.certified.clone().unwrap_or_default(),
                depends: e.depends.clone(),
                reasons: e.reasons.clone(),
            })
            .collect();
        Ok(KeyImpact {
            key: KeyView::from(&key),
            uses,
            not_counting,
            environments,
            denied,
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
        now: Timestamp,
    ) -> AppResult<Vec<String>> {
        // An approval is named with the environment whose certification it helped make;
        // whether that certification still stands depends on the quorum without it,
        // which the gate re-counts (`key impact` shows its verdict).
        let mut signed = Signed {
            keys: keys.to_vec(),
            ..Signed::default()
        };
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
                            signed.releases.insert(r.release);
                        }
                        EventBody::ArtifactRegistered(events::ArtifactRegistered {
                            artifact: a,
                            ..
                        })
                        | EventBody::ArtifactRebuilt(events::ArtifactRebuilt {
                            artifact: a, ..
                        }) => {
                            lines.push(format!("provenance of {} {}", a.name, a.digest));
                            signed.artifacts.insert(a.digest);
                        }
                        EventBody::ProposalReviewed(r) => {
                            // A policy version it approved stays in force: the owners
                            // decide whether to review it again.
                            lines.push(format!(
                                "policy review by {} of proposal {} (the version it approved stays in force: its owners review it again)",
                                entry.event.actor, r.proposal
                            ));
                        }
                        EventBody::ApprovalRecorded(a) => {
                            lines.push(format!(
                                "approval by {} of {} in {}",
                                entry.event.actor, a.release, a.environment
                            ));
                            signed.promotions.insert(a.promotion);
                        }
                        _ => {}
                    }
                }
            }
        }
        for env in self.environment_impact(&signed, now).await? {
            if let (false, Some(release)) = (env.depends.is_empty(), &env.certified) {
                let only_approved = env.depends.iter().all(|d| *d == Dependence::Approval);
                lines.push(format!(
                    "certified in {}: {release}{}",
                    env.environment,
                    if only_approved {
                        " (through an approval: the gate re-counts its quorum)"
                    } else {
                        ""
                    }
                ));
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

    /// Per environment: how what is certified and what runs there depends on what
    /// `signed` holds, and what the gate says now.
    async fn environment_impact(
        &self,
        signed: &Signed,
        now: Timestamp,
    ) -> AppResult<Vec<EnvironmentImpact>> {
        let policy = self.policy().await?;
        let size = self.store.size().await?;
        let mut out = Vec::new();
        for env in policy.environments() {
            let certification = self
                .get::<EnvironmentRecord>(kind::ENVIRONMENT, &env.name)
                .await?
                .and_then(|r| r.value.certified);
            let mut impact = EnvironmentImpact {
                environment: env.name.clone(),
                certified: certification.as_ref().map(|c| c.release.clone()),
                depends: Vec::new(),
                running: Vec::new(),
                gate: None,
                reasons: Vec::new(),
            };
            let mut certified_digests = Vec::new();
            if let Some(cert) = &certification {
                if let Some(release) = self
                    .get::<ReleaseRecord>(kind::RELEASE, &cert.release)
                    .await?
                {
                    certified_digests = release
                        .value
                        .artifacts
                        .into_iter()
                        .map(|a| a.digest)
                        .collect();
                    if signed.releases.contains(&cert.release) {
                        impact.depends.push(Dependence::Manifest);
                    }
                    if certified_digests
                        .iter()
                        .any(|d| signed.artifacts.contains(d))
                    {
                        impact.depends.push(Dependence::Provenance);
                    }
                    // The approvals the gate counts are the certifying promotion's (a
                    // rollback's: the restored one's) that stand: approving, not
                    // superseded.
                    if signed.promotions.contains(&cert.promotion)
                        && self.approved_with(&cert.promotion, &signed.keys).await?
                    {
                        impact.depends.push(Dependence::Approval);
                    }
                    if let Some(first) = certified_digests.first() {
                        let verdict = self.verify(&env.name, first, now).await?;
                        let (gate, reasons) = judge(&verdict, &signed.keys);
                        (impact.gate, impact.reasons) = (Some(gate), reasons);
                    }
                }
            }
            // What runs depends on the key through its provenance wherever it is
            // certified, and through the certified release's manifest and approvals when
            // it is one of its artifacts (the gate checks it against that release).
            let running = self
                .running(&env.name, &[], size)
                .await?
                .map(|r| r.digests)
                .unwrap_or_default();
            for digest in running {
                let mut depends: Vec<Dependence> = Vec::new();
                if certified_digests.contains(&digest) {
                    depends.extend(
                        impact
                            .depends
                            .iter()
                            .filter(|d| **d != Dependence::Provenance),
                    );
                }
                if signed.artifacts.contains(&digest) {
                    depends.push(Dependence::Provenance);
                }
                depends.sort_unstable();
                if !depends.is_empty() {
                    impact.running.push(RunningImpact { digest, depends });
                }
            }
            out.push(impact);
        }
        Ok(out)
    }

    /// Whether a standing approval of `promotion` (approving, not superseded) was signed
    /// with one of `keys`.
    async fn approved_with(&self, promotion: &str, keys: &[String]) -> AppResult<bool> {
        let Some(promotion) = self
            .get::<PromotionRecord>(kind::PROMOTION, promotion)
            .await?
        else {
            return Ok(false);
        };
        Ok(self
            .approvals_of(&promotion.value)
            .await?
            .iter()
            .map(|a| &a.value)
            .any(|a| {
                a.verdict == Verdict::Approve
                    && a.superseded_by.is_none()
                    && a.signed_with
                        .as_ref()
                        .is_some_and(|k| keys.contains(&k.key))
            }))
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
            .filter(|a| a.verdict == Verdict::Approve && a.superseded_by.is_none());
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
