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
    fn matches(&self, event: &Value) -> bool {
        let str_at = |k: &str| event.get(k).and_then(Value::as_str);
        let artifacts = || event_artifacts(event);
        if let Some(d) = &self.artifact {
            let d = d.to_string();
            if !artifacts().any(|a| a == d) {
                return false;
            }
        }
        if let Some(b) = &self.build {
            let invocation = event
                .pointer("/build/invocation_id")
                .and_then(Value::as_str);
            if invocation != Some(b.as_str()) && !artifacts().any(|a| a == b) {
                return false;
            }
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
    /// `filter.before`). The ledger is read backwards from there and the read stops as soon
    /// as the page is full, so recent slices cost little however long the history.
    pub async fn history(&self, filter: &HistoryFilter) -> AppResult<Vec<HistoryEntry>> {
        let size = self.store.size().await?;
        let mut end = filter.before.map_or(size, |b| b.min(size));
        let mut out = Vec::new();
        'read: while end > 0 {
            let start = end.saturating_sub(MAX_ENTRIES_PER_READ);
            for entry in self.store.entries(start, end).await?.into_iter().rev() {
                let event: Value = serde_json::from_slice(&entry.leaf).map_err(|e| {
                    AppError::Store(custody_store::StoreError::Corrupt(format!(
                        "entry {} is not JSON: {e}",
                        entry.index
                    )))
                })?;
                if filter.matches(&event) {
                    out.push(HistoryEntry {
                        index: entry.index,
                        event,
                    });
                    if filter.limit > 0 && out.len() == filter.limit {
                        break 'read;
                    }
                }
            }
            end = start;
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
