//! Reading the record: history slices, decisions and their replay.

use custody_model::{Digest, Timestamp, Verdict};
use custody_policy::Decision;
use custody_store::{MAX_ENTRIES_PER_READ, Store};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::events::{DeployStatus, Event, EventBody};
use crate::records::{DecisionRecord, kind};
use crate::{AppError, AppResult};

/// Which events to list (the query of `GET /api/v1/history`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryFilter {
    /// Events about this artifact digest.
    #[param(value_type = Option<String>)]
    pub artifact: Option<Digest>,
    /// Events about this build (its invocation id, or the artifact it produced).
    pub build: Option<String>,
    /// Events by this principal (who built, signed, requested, approved, reported).
    pub principal: Option<String>,
    /// Events about this environment.
    #[serde(rename = "env")]
    pub environment: Option<String>,
    /// Events at or after this time.
    #[param(value_type = Option<String>)]
    pub since: Option<Timestamp>,
    /// Events before this time.
    #[param(value_type = Option<String>)]
    pub until: Option<Timestamp>,
    /// Only entries with a ledger index below this (the next page back in time).
    pub before: Option<u64>,
    /// At most this many (the newest); 0 for all. Over HTTP a page is bounded: 0 (or
    /// none) is 100 and more than 1,000 is 1,000; page back in time with `before`.
    #[serde(default)]
    pub limit: usize,
    /// Events of this kind (e.g. `key.revoked`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// One ledger event.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HistoryEntry {
    /// Its ledger index.
    pub index: u64,
    /// The event.
    pub event: Event,
}

/// Entries read into events, in order: a large batch (an export's) on every core, since
/// reading the leaves is most of an export's time.
fn read_all(batch: Vec<custody_store::Entry>) -> Vec<AppResult<HistoryEntry>> {
    use rayon::prelude::*;
    if batch.len() < 64 {
        return batch.into_iter().map(HistoryEntry::read).collect();
    }
    batch.into_par_iter().map(HistoryEntry::read).collect()
}

impl HistoryEntry {
    /// A ledger entry's event (a leaf that is not an event is an integrity failure: custody
    /// wrote every leaf).
    pub(crate) fn read(entry: custody_store::Entry) -> AppResult<HistoryEntry> {
        let event = Event::from_leaf(&entry.leaf)
            .map_err(|e| AppError::Integrity(format!("ledger entry {}: {e}", entry.index)))?;
        Ok(HistoryEntry {
            index: entry.index,
            event,
        })
    }
}

/// A replayed decision beside the recorded one.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Replay {
    /// The decision as recorded.
    pub recorded: DecisionRecord,
    /// The decision evaluated again from the recorded facts and policy version.
    pub replayed: Decision,
    /// Whether they are the same (outcome, every gate, and the input digest).
    pub same: bool,
}

impl HistoryFilter {
    /// The build filter names an artifact (a digest) rather than a build invocation.
    fn build_artifact(&self) -> Option<Digest> {
        self.build.as_deref().and_then(|b| b.parse().ok())
    }

    /// The search terms every matching event carries ([`custody_store::search`]), the most
    /// selective first: the store reads the first and checks the others per candidate.
    fn terms(&self) -> Vec<String> {
        use custody_store::search;
        let mut terms = Vec::new();
        terms.extend(
            self.artifact
                .iter()
                .map(|d| search::artifact(&d.to_string())),
        );
        match (self.build_artifact(), &self.build) {
            (Some(d), _) => terms.push(search::artifact(&d.to_string())),
            (None, Some(b)) => terms.push(search::build(b)),
            (None, None) => {}
        }
        terms.extend(self.principal.iter().map(|p| search::actor(p)));
        terms.extend(self.environment.iter().map(|e| search::environment(e)));
        terms.extend(self.kind.iter().map(|k| search::event_type(k)));
        terms.dedup();
        terms
    }

    /// Whether `event` is one this filter asks for. The search terms only narrow the
    /// candidates; this decides.
    fn matches(&self, event: &Event) -> bool {
        let names_artifact = |d: &Digest| event.artifacts().contains(d);
        if self.artifact.as_ref().is_some_and(|d| !names_artifact(d)) {
            return false;
        }
        match (self.build_artifact(), &self.build) {
            (Some(d), _) if !names_artifact(&d) => return false,
            (None, Some(b)) => {
                let invocation = match &event.body {
                    EventBody::ArtifactRegistered(r) => {
                        r.build.as_ref().and_then(|b| b.invocation_id.as_deref())
                    }
                    _ => None,
                };
                if invocation != Some(b.as_str()) {
                    return false;
                }
            }
            _ => {}
        }
        if self.principal.as_ref().is_some_and(|p| event.actor != *p) {
            return false;
        }
        if self.kind.as_ref().is_some_and(|k| event.kind() != k) {
            return false;
        }
        if let Some(e) = &self.environment {
            if event.environment() != Some(e.as_str()) {
                return false;
            }
        }
        if self.since.is_some_and(|since| event.at < since) {
            return false;
        }
        if self.until.is_some_and(|until| event.at >= until) {
            return false;
        }
        true
    }
}

/// The fewest hex digits of a digest that name an artifact in a search (32 bits, as
/// for key ids: a chance collision among the registered artifacts is unlikely, and an
/// ambiguous prefix is refused).
pub const MIN_DIGEST_PREFIX: usize = 8;

impl<S: Store> App<S> {
    /// Ledger events matching `filter`, oldest first (the newest `filter.limit` below
    /// `filter.before`). A time bound becomes a range of the log, and the names
    /// (artifact, build, engineer, environment) a search of the log's index, read newest
    /// first and stopped as soon as the page is full: a slice costs what it returns, not
    /// the length of the history.
    pub async fn history(&self, filter: &HistoryFilter) -> AppResult<Vec<HistoryEntry>> {
        if let Some(kind) = filter.kind.as_deref() {
            if !crate::events::KINDS.contains(&kind) {
                return Err(AppError::invalid(format!(
                    "no event is of type {kind:?}; the types are {}",
                    crate::events::KINDS.join(", ")
                )));
            }
        }
        let (start, mut end) = match (filter.since, filter.until) {
            (None, None) => (0, self.store.size().await?),
            (since, until) => self.store.time_range(since, until).await?,
        };
        if let Some(before) = filter.before {
            end = end.min(before);
        }
        let terms = filter.terms();
        // Entries per read: a page's worth (most candidates match), or the most a read gives.
        let want = match filter.limit as u64 {
            0 => MAX_ENTRIES_PER_READ,
            n => n.min(MAX_ENTRIES_PER_READ),
        };
        let mut out = Vec::new();
        'read: while end > start {
            let batch = if terms.is_empty() {
                let from = end.saturating_sub(want).max(start);
                let mut batch = self.store.entries(from, end).await?;
                batch.reverse();
                end = from;
                batch
            } else {
                let batch = self.store.search(&terms, start, end, want).await?;
                end = match batch.last() {
                    Some(last) if batch.len() as u64 == want => last.index,
                    _ => start,
                };
                batch
            };
            for entry in read_all(batch) {
                let entry = entry?;
                if filter.matches(&entry.event) {
                    out.push(entry);
                    if filter.limit > 0 && out.len() == filter.limit {
                        break 'read;
                    }
                }
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The registered artifact `given` names: its whole digest (`sha256:<64 hex>`), or the
    /// start of one as pages show it (`sha256:3f2a9c1d…`, at least [`MIN_DIGEST_PREFIX`]
    /// hex digits, with or without `sha256:`) naming one registered artifact only.
    pub async fn artifact_by_prefix(&self, given: &str) -> AppResult<Digest> {
        let given = given.trim().trim_end_matches('…');
        if let Ok(digest) = given.parse::<Digest>() {
            return Ok(digest);
        }
        let (algorithm, hex) = given.split_once(':').unwrap_or(("sha256", given));
        if hex.len() < MIN_DIGEST_PREFIX || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AppError::invalid(format!(
                "artifact {given:?} is not a digest: give sha256:<64 hex digits>, or at least its first {MIN_DIGEST_PREFIX} hex digits"
            )));
        }
        let prefix = format!("{algorithm}:{}", hex.to_ascii_lowercase());
        // Keys are whole digests in order: those starting with the prefix follow it.
        let found: Vec<String> = self
            .store
            .states(kind::ARTIFACT, &prefix, 2)
            .await?
            .into_iter()
            .map(|r| r.key)
            .filter(|k| k.starts_with(&prefix))
            .collect();
        match found.as_slice() {
            [one] => one.parse().map_err(|e| AppError::invalid(format!("{e}"))),
            [] => Err(AppError::not_found(format!(
                "no registered artifact's digest starts with {prefix}"
            ))),
            _ => Err(AppError::invalid(format!(
                "{prefix} starts more than one artifact's digest ({}, …); give more digits",
                found.join(", ")
            ))),
        }
    }

    /// A recorded decision.
    pub async fn decision(&self, id: &str) -> AppResult<DecisionRecord> {
        Ok(self
            .require(kind::DECISION, id, || format!("no decision {id}"))
            .await?
            .value)
    }

    /// Re-evaluates a recorded decision from its recorded facts under the policy version
    /// it recorded.
    pub async fn replay(&self, id: &str) -> AppResult<Replay> {
        let recorded = self.decision(id).await?;
        let policy = self
            .policy_version(&recorded.decision.policy_digest)
            .await?;
        let replayed = custody_policy::evaluate(&policy, &recorded.facts);
        let same = replayed == recorded.decision;
        Ok(Replay {
            recorded,
            replayed,
            same,
        })
    }
}

/// Why a search may have matched nothing, when the policy in force can tell: it names no
/// such environment, or gives the principal no role (names match exactly). `None` when
/// neither explains it. For the CLI and the dashboard alike.
pub fn why_nothing_matches(
    filter: &HistoryFilter,
    policy: &custody_policy::Policy,
) -> Option<String> {
    let mut hints = Vec::new();
    if let Some(env) = &filter.environment
        && policy.environment(env).is_none()
    {
        let names: Vec<&str> = policy
            .environments()
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        hints.push(format!(
            "the policy in force has no environment {env:?}; it names {}",
            names.join(", ")
        ));
    }
    if let Some(principal) = &filter.principal
        && !principal.starts_with("local:")
        && principal != crate::alerts::ALERTING
        && !policy.grants().iter().any(|g| &g.principal == principal)
    {
        let mut names: Vec<&str> = policy
            .grants()
            .iter()
            .map(|g| g.principal.as_str())
            .collect();
        names.dedup();
        let near: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| n.eq_ignore_ascii_case(principal) || n.contains(principal.as_str()))
            .collect();
        hints.push(if near.is_empty() {
            format!(
                "the policy in force gives {principal:?} no role (names match exactly; it names {}); a former holder's events still match",
                names.join(", ")
            )
        } else {
            format!(
                "the policy in force gives {principal:?} no role; did you mean {}? (names match exactly)",
                near.join(" or ")
            )
        });
    }
    (!hints.is_empty()).then(|| hints.join("; "))
}

/// One line saying what a ledger event records, for people: who did what to which
/// release, in which environment.
pub fn describe(event: &Event) -> String {
    let who = &event.actor;
    match &event.body {
        EventBody::PolicyApplied(p) if p.bootstrap => format!(
            "{who} put policy {} in force without approvals (bootstrap)",
            short(&p.policy)
        ),
        EventBody::PolicyApplied(p) => match &p.proposal {
            Some(proposal) => format!(
                "policy {} in force: proposal {proposal} by {}, approved by {}",
                short(&p.policy),
                p.proposed_by.as_deref().unwrap_or("?"),
                p.approvers.join(", ")
            ),
            None => format!("{who} applied policy {}", short(&p.policy)),
        },
        EventBody::PolicyProposed(p) => format!(
            "{who} proposed policy {} ({}): {} change(s), {} looser; needs {} approval(s)",
            short(&p.policy),
            p.proposal,
            p.changes.len(),
            p.changes
                .iter()
                .filter(|c| c.direction == custody_policy::Direction::Looser)
                .count(),
            p.quorum
        ),
        EventBody::ProposalReviewed(r) => format!(
            "{who} {} proposal {}: {}",
            reviewed(r.verdict),
            r.proposal,
            r.rationale
        ),
        EventBody::ArtifactRegistered(a) => {
            format!(
                "{who} registered {} ({})",
                a.artifact.name,
                short(&a.artifact.digest.to_string())
            )
        }
        EventBody::ArtifactRebuilt(a) => format!(
            "{who} recorded a rebuild of {} ({}) by {}: {} builder(s) agree on its digest",
            a.artifact.name,
            short(&a.artifact.digest.to_string()),
            a.builder_id,
            a.agreeing.len()
        ),
        EventBody::ProvenanceDiscrepancy(p) => format!(
            "provenance discrepancy: {} built {} different digests from one source",
            p.artifact,
            p.artifacts.len()
        ),
        EventBody::EvidenceAttached(e) => format!(
            "{who} attached {} evidence ({}) to artifact {}",
            e.kind,
            e.format,
            digests(&e.artifacts)
        ),
        EventBody::ExceptionRequested(x) => format!(
            "{who} asked for exception {} waiving {} in {} until {} (plan: {} by {}, due {}): {}",
            x.exception,
            x.finding,
            waived_in(&x.release, &x.artifacts),
            x.expires_at.to_second(),
            x.plan.action,
            x.plan.owner,
            x.plan.due.to_second(),
            x.reason
        ),
        EventBody::ExceptionReviewed(x) => format!(
            "{who} {} exception {} waiving {} in {}: {}",
            reviewed(x.verdict),
            x.exception,
            x.finding,
            waived_in(&x.release, &x.artifacts),
            x.rationale
        ),
        EventBody::ExceptionRevoked(x) => format!(
            "{who} revoked exception {} waiving {} in {}: {}",
            x.exception,
            x.finding,
            waived_in(&x.release, &x.artifacts),
            x.rationale
        ),
        EventBody::ReleaseCreated(r) => format!("{who} created {}", r.release),
        EventBody::PromotionRequested(p) => {
            // Breaking glass with a token someone else made (refused since it takes the
            // person's own credential; ledgers written before hold such entries): say whose
            // it also is.
            let glass = match (
                &p.break_glass,
                event.auth.as_ref().and_then(|a| a.made_by_another(who)),
            ) {
                (Some(_), Some(by)) => format!(", breaking glass with a token {by} made for {who}"),
                (Some(_), None) => ", breaking glass".to_owned(),
                (None, _) => String::new(),
            };
            format!(
                "{who} requested {} → {} ({}{glass})",
                p.release, p.environment, p.promotion
            )
        }
        EventBody::DecisionRecorded(d) => format!(
            "{} {} → {}: {}",
            d.decision,
            d.release,
            d.environment,
            if d.allowed { "allowed" } else { "not allowed" }
        ),
        EventBody::ApprovalRecorded(a) => format!(
            "{who} {}{} {} → {}: {}",
            reviewed(a.verdict),
            if a.after_the_fact {
                " after the fact"
            } else {
                ""
            },
            a.release,
            a.environment,
            a.shown_rationale("(confidential)")
        ),
        EventBody::EnvironmentCertified(c) => {
            format!("{} certified in {}", c.release, c.environment)
        }
        EventBody::DeployReported(d) => {
            let status = match d.status {
                DeployStatus::Succeeded => "succeeded",
                DeployStatus::Failed => "failed",
            };
            // `release` is what was certified there then, not necessarily what was
            // deployed: the digests say what ran.
            let certified = match &d.release {
                Some(release) => format!("; {release} certified there"),
                None => "; nothing certified there".to_owned(),
            };
            let drift = match d.drift.len() {
                0 => String::new(),
                n => format!(", {n} digest(s) never certified there"),
            };
            format!(
                "{who} reported a {status} deploy in {} of {}{certified}{drift}",
                d.environment,
                digests(&d.artifacts)
            )
        }
        EventBody::DriftDetected(d) => format!(
            "drift in {}: {} never certified there",
            d.environment,
            digests(&d.artifacts)
        ),
        EventBody::RolledBack(r) => format!(
            "{who} rolled back {} → {} in {}: {}",
            r.from, r.to, r.environment, r.reason
        ),
        EventBody::RollbackRefused(r) => {
            format!("rollback refused in {}: {}", r.environment, r.reason)
        }
        EventBody::TokenCreated(t) => {
            format!("{who} created token {} for {}", t.token, t.principal)
        }
        EventBody::TokenRevoked(t) => match &t.cascade_from {
            None => format!("{who} revoked token {} of {}", t.token, t.principal),
            Some(from) => format!(
                "{who} revoked token {from} and with it token {} of {}, which descends from it",
                t.token, t.principal
            ),
        },
        EventBody::AlertRaised(a) => format!("alert {} ({}): {}", a.rule, a.severity, a.text),
        EventBody::AlertDelivered(a) => format!("alert {} delivered to {}", a.alert, a.webhook),
        EventBody::AlertDeliveryFailed(a) => format!(
            "alert {} not delivered to {} (attempt {}): {}",
            a.alert, a.webhook, a.attempts, a.error
        ),
        EventBody::LogRecovered(r) => format!(
            "{who} accepted the log at {} entries after it lost history (the checkpoint of {} entries): {}",
            r.found_size, r.lost_size, r.reason
        ),
        EventBody::KeyRotated(r) => format!(
            "{who} rotated {} key {} to its successor {} (the hand-over signed by both)",
            r.purpose.describe(),
            short(&r.from),
            short(&r.to)
        ),
        EventBody::KeyRevoked(r) => format!(
            "{who} revoked {} key {}{}: {}{}{}",
            r.purpose.describe(),
            r.keys
                .first()
                .map_or_else(|| "?".to_owned(), |k| short(&k.key)),
            r.compromised_since
                .map(|c| format!(" (compromised since {})", c.to_second()))
                .unwrap_or_default(),
            r.reason,
            if r.successors.is_empty() {
                String::new()
            } else {
                format!(
                    "; with it its successor(s) {}",
                    r.successors
                        .iter()
                        .map(|s| short(s))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            if r.affected.is_empty() {
                String::new()
            } else {
                format!("; no longer counting: {}", r.affected.join(", "))
            }
        ),
        EventBody::LogKeyRotated(r) => format!(
            "{who} handed the log key {} over to {} at {} entries",
            short(&r.old_key_id),
            short(&r.new_key_id),
            r.size
        ),
        _ => format!("{} by {who}", event.kind()),
    }
}

/// A review's verdict as a verb.
fn reviewed(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Reject => "rejected",
        Verdict::Approve => "approved",
    }
}

/// What an exception waives a finding in: its release, else its artifacts.
fn waived_in(release: &Option<String>, artifacts: &[Digest]) -> String {
    release
        .clone()
        .unwrap_or_else(|| format!("artifact {}", digests(artifacts)))
}

/// Digests for a line a person reads: the first three, shortened, and how many more.
fn digests(all: &[Digest]) -> String {
    let mut shown: Vec<String> = all.iter().take(3).map(|d| short(&d.to_string())).collect();
    if all.len() > 3 {
        shown.push(format!("{} more", all.len() - 3));
    }
    match shown.len() {
        0 => "no digests".to_owned(),
        _ => shown.join(", "),
    }
}

/// The first 12 hex digits of a digest or policy id, for a line a person reads.
fn short(id: &str) -> String {
    let hex = id.split_once(':').map_or(id, |(_, h)| h);
    match hex.get(..12) {
        Some(head) if hex.len() > 12 => format!("{head}…"),
        _ => hex.to_owned(),
    }
}
