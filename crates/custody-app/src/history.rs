//! Reading the record: history slices, decisions and their replay.

use custody_model::{Digest, Timestamp};
use custody_policy::Decision;
use custody_store::{MAX_ENTRIES_PER_READ, Store};
use serde::Serialize;
use serde_json::Value;

use crate::app::App;
use crate::records::{DecisionRecord, kind};
use crate::{AppError, AppResult};

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Events about this artifact digest.
    pub artifact: Option<Digest>,
    /// Events about this build (its invocation id, or the artifact it produced).
    pub build: Option<String>,
    /// Events by this principal (who built, signed, requested, approved, reported).
    pub principal: Option<String>,
    /// Events about this environment.
    pub environment: Option<String>,
    /// Events at or after this time.
    pub since: Option<Timestamp>,
    /// Events before this time.
    pub until: Option<Timestamp>,
    /// Only entries with a ledger index below this (the next page back in time).
    pub before: Option<u64>,
    /// At most this many (the newest); 0 for all.
    pub limit: usize,
}

/// One ledger event.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HistoryEntry {
    /// Its ledger index.
    pub index: u64,
    /// The event.
    pub event: Value,
}

impl HistoryEntry {
    /// A ledger entry's event.
    pub(crate) fn read(entry: custody_store::Entry) -> AppResult<HistoryEntry> {
        let event = serde_json::from_slice(&entry.leaf).map_err(|e| {
            AppError::Store(custody_store::StoreError::Corrupt(format!(
                "entry {} is not JSON: {e}",
                entry.index
            )))
        })?;
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

/// The artifact digests an event names.
pub(crate) fn event_artifacts(event: &Value) -> impl Iterator<Item = &str> {
    event
        .get("artifacts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
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
        terms.dedup();
        terms
    }

    /// Whether `event` is one this filter asks for. The search terms only narrow the
    /// candidates; this decides.
    fn matches(&self, event: &Value) -> bool {
        let str_at = |k: &str| event.get(k).and_then(Value::as_str);
        let names_artifact = |d: &Digest| {
            let d = d.to_string();
            event_artifacts(event).any(|a| a == d)
        };
        if self.artifact.as_ref().is_some_and(|d| !names_artifact(d)) {
            return false;
        }
        match (self.build_artifact(), &self.build) {
            (Some(d), _) if !names_artifact(&d) => return false,
            (None, Some(b)) => {
                let invocation = event
                    .pointer("/build/invocation_id")
                    .and_then(Value::as_str);
                if invocation != Some(b.as_str()) {
                    return false;
                }
            }
            _ => {}
        }
        if let Some(p) = &self.principal {
            if str_at("actor") != Some(p.as_str()) {
                return false;
            }
        }
        if let Some(e) = &self.environment {
            if str_at("environment") != Some(e.as_str()) {
                return false;
            }
        }
        let at = str_at("at").and_then(|t| t.parse::<Timestamp>().ok());
        if let Some(since) = self.since {
            if at.is_none_or(|t| t < since) {
                return false;
            }
        }
        if let Some(until) = self.until {
            if at.is_none_or(|t| t >= until) {
                return false;
            }
        }
        true
    }
}

impl<S: Store> App<S> {
    /// Ledger events matching `filter`, oldest first (the newest `filter.limit` below
    /// `filter.before`). A time bound becomes a range of the log, and the names
    /// (artifact, build, engineer, environment) a search of the log's index, read newest
    /// first and stopped as soon as the page is full: a slice costs what it returns, not
    /// the length of the history.
    pub async fn history(&self, filter: &HistoryFilter) -> AppResult<Vec<HistoryEntry>> {
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
            for entry in batch {
                let entry = HistoryEntry::read(entry)?;
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

/// One line saying what a ledger event records, for people.
pub fn describe(event: &Value) -> String {
    let s = |k: &str| event.get(k).and_then(Value::as_str).unwrap_or("");
    match s("type") {
        "artifact.registered" => format!(
            "{} registered {}",
            s("actor"),
            event
                .pointer("/artifact/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
        "release.created" => format!("{} created {}", s("actor"), s("release")),
        "promotion.requested" => format!(
            "{} requested {} → {} ({})",
            s("actor"),
            s("release"),
            s("environment"),
            s("promotion")
        ),
        "decision.recorded" => format!(
            "{} {} → {}: {}",
            s("decision"),
            s("release"),
            s("environment"),
            if event.get("allowed").and_then(Value::as_bool) == Some(true) {
                "allowed"
            } else {
                "not allowed"
            }
        ),
        "approval.recorded" => format!(
            "{} {} {} → {}: {}",
            s("actor"),
            if s("verdict") == "reject" {
                "rejected"
            } else {
                "approved"
            },
            s("release"),
            s("environment"),
            if event.get("confidential").and_then(Value::as_bool) == Some(true) {
                "(confidential)"
            } else {
                s("rationale")
            }
        ),
        "environment.certified" => format!("{} certified in {}", s("release"), s("environment")),
        "deploy.reported" => format!(
            "{} reported {} deploy in {}",
            s("actor"),
            s("status"),
            s("environment")
        ),
        "rollback" => format!(
            "{} rolled back {} → {} in {}: {}",
            s("actor"),
            s("from"),
            s("to"),
            s("environment"),
            s("reason")
        ),
        other => format!("{other} by {}", s("actor")),
    }
}
