//! Raising alerts and delivering them to webhooks.
//!
//! A background task follows the ledger (every event through the rules of
//! `custody_app::alerts`), checks the clock (approvals waiting past their SLA) and delivers
//! what is due from the outbox: a JSON POST with a Slack-compatible `text` field and the
//! alert, and an `X-Custody-Alert` header carrying its id so that a receiver can drop a
//! repeat. A failed delivery is retried with a backoff and never dropped. Repeated denials
//! are counted by the access log as they happen.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custody_app::alerts::{
    Alert, alerts_for_event, approval_expiring_alert, approval_sla_alert, denied_access_alert,
    evidence_expiring_alert, ledger_inconsistent_alert, overdue_approvals,
    overdue_break_glass_reviews,
};
use custody_model::Timestamp;
use custody_store::{MAX_ENTRIES_PER_READ, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ServerState;

/// `[alerts]` in config.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// How long a promotion may wait for approval before an alert (e.g. "24h").
    #[serde(default = "default_sla")]
    pub approval_sla: String,
    /// How long before an approval, or a piece of evidence, that a still-waiting promotion
    /// needs lapses to warn (e.g. "2h").
    #[serde(default = "default_expiry_warning")]
    pub expiry_warning: String,
    /// Denials of one principal (or one address, unauthenticated) that raise an alert…
    #[serde(default = "default_denials")]
    pub denied_threshold: usize,
    /// …within this long (e.g. "10m").
    #[serde(default = "default_window")]
    pub denied_window: String,
    /// How often the whole ledger is re-checked, every leaf against every stored hash and
    /// signed checkpoint (e.g. "1h"); also once when the server starts.
    #[serde(default = "default_ledger_check")]
    pub ledger_check: String,
    /// Where alerts go.
    #[serde(default, rename = "webhook", skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<Webhook>,
}

/// A webhook receiving alerts as JSON POSTs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Its name (in the ledger and on the dashboard).
    pub name: String,
    /// Its URL (http or https).
    pub url: String,
}

fn default_sla() -> String {
    "24h".into()
}
fn default_expiry_warning() -> String {
    "2h".into()
}
fn default_denials() -> usize {
    5
}
fn default_window() -> String {
    "10m".into()
}
fn default_ledger_check() -> String {
    "1h".into()
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            approval_sla: default_sla(),
            expiry_warning: default_expiry_warning(),
            denied_threshold: default_denials(),
            denied_window: default_window(),
            ledger_check: default_ledger_check(),
            webhooks: Vec::new(),
        }
    }
}

impl AlertConfig {
    /// Checks the durations and the webhooks' names and URLs.
    pub fn check(&self) -> Result<(), String> {
        for (name, text) in [
            ("approval_sla", &self.approval_sla),
            ("expiry_warning", &self.expiry_warning),
            ("denied_window", &self.denied_window),
            ("ledger_check", &self.ledger_check),
        ] {
            custody_policy::Span::parse(text).map_err(|e| format!("[alerts] {name}: {e}"))?;
        }
        for w in &self.webhooks {
            if w.name.is_empty() || !(w.url.starts_with("http://") || w.url.starts_with("https://"))
            {
                return Err(format!(
                    "[[alerts.webhook]] {:?}: needs a name and an http(s) URL",
                    w.name
                ));
            }
        }
        Ok(())
    }

    fn seconds(text: &str, fallback: i64) -> i64 {
        custody_policy::Span::parse(text)
            .ok()
            .and_then(|s| i64::try_from(s.seconds()).ok())
            .unwrap_or(fallback)
    }
}

/// The alerting state of one server.
pub(crate) struct Alerting {
    pub(crate) config: AlertConfig,
    /// Recent denials by who (principal, or address when unauthenticated).
    denials: Mutex<HashMap<String, VecDeque<i64>>>,
}

/// How often the task follows the ledger and delivers.
const EVERY: Duration = Duration::from_millis(250);
/// How often it checks the clock rules (SLAs and expiries are hours long).
const CLOCK_EVERY: Duration = Duration::from_secs(10);
/// Alert ids this task raised and remembers, at most (it forgets all when full; raising
/// again is idempotent, only wasted work).
const REMEMBERED: usize = 100_000;

fn now() -> Timestamp {
    Timestamp::from_datetime(time::OffsetDateTime::now_utc())
}

impl Alerting {
    pub(crate) fn new(config: AlertConfig) -> Alerting {
        Alerting {
            config,
            denials: Mutex::new(HashMap::new()),
        }
    }

    fn webhook_names(&self) -> Vec<String> {
        self.config
            .webhooks
            .iter()
            .map(|w| w.name.clone())
            .collect()
    }

    /// Counts a denial; the alert to raise when `who` reached the threshold in the window.
    pub(crate) fn denied(&self, who: &str, at: Timestamp) -> Option<Alert> {
        let window = AlertConfig::seconds(&self.config.denied_window, 600).max(1);
        let t = at.unix_seconds();
        let mut denials = self.denials.lock().ok()?;
        if denials.len() > 10_000 {
            denials.clear(); // bounded: a flood of addresses cannot grow it
        }
        let recent = denials.entry(who.to_owned()).or_default();
        recent.push_back(t);
        while recent.front().is_some_and(|&first| first <= t - window) {
            recent.pop_front();
        }
        (recent.len() == self.config.denied_threshold).then(|| {
            let bucket = Timestamp::from_unix_seconds(t - t.rem_euclid(window))
                .map(|b| b.to_string())
                .unwrap_or_default();
            denied_access_alert(who, recent.len(), &bucket)
        })
    }
}

/// Raises `alert` (once, whichever server sees it first).
pub(crate) async fn raise(state: &ServerState, alert: &Alert) {
    let webhooks = state.alerting.webhook_names();
    if let Err(e) = state.app.raise_alert(alert, &webhooks, now()).await {
        eprintln!("custody: raising alert {}: {e}", alert.id);
    }
}

/// Follows the ledger, checks the clock and delivers what is due, until dropped.
pub(crate) async fn run(state: Arc<ServerState>) {
    let client = match crate::http_client::client(None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("custody: alert webhooks cannot be reached: {e}");
            return;
        }
    };
    let mut follow = Follow::default();
    loop {
        if let Err(e) = round(&state, &client, &mut follow).await {
            eprintln!("custody: alerting: {e}");
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Re-checks the whole ledger when the server starts and every `[alerts] ledger_check`:
/// every leaf against every stored hash and signed checkpoint (`SqlStore::check`), and the
/// head against the head the previous check saw (a consistency proof, so a ledger replaced
/// by a fork signed with the same key is caught too). A failure raises an alert, once per
/// cause.
pub(crate) async fn audit_ledger(state: Arc<ServerState>) {
    let every = AlertConfig::seconds(&state.alerting.config.ledger_check, 3600).max(1);
    let every = Duration::from_secs(u64::try_from(every).unwrap_or(3600));
    let mut seen: Option<(u64, custody_ledger::Hash)> = None;
    let mut raised = std::collections::HashSet::new();
    loop {
        let problem = match check_ledger(&state, seen).await {
            Ok(head) => {
                seen = Some(head);
                None
            }
            Err(Checked::Inconsistent(why)) => Some(why),
            Err(Checked::Unavailable(why)) => {
                eprintln!("custody: ledger check could not run: {why}");
                None
            }
        };
        if let Some(why) = problem {
            let alert = ledger_inconsistent_alert(&why);
            if raised.insert(alert.id.clone()) {
                raise(&state, &alert).await;
            }
        }
        tokio::time::sleep(every).await;
    }
}

enum Checked {
    /// The ledger is damaged or forked: the reason.
    Inconsistent(String),
    /// The check could not run (the database is away).
    Unavailable(String),
}

/// One ledger check; the head it checked.
async fn check_ledger(
    state: &ServerState,
    seen: Option<(u64, custody_ledger::Hash)>,
) -> Result<(u64, custody_ledger::Hash), Checked> {
    use custody_store::StoreError;
    let store = state.app.store();
    let failed = |e: StoreError| match e {
        StoreError::Corrupt(why) => Checked::Inconsistent(why),
        other => Checked::Unavailable(other.to_string()),
    };
    let report = store.check(|_| {}).await.map_err(failed)?;
    let head = (report.entries, report.root);
    if let Some((size, root)) = seen {
        if head.0 < size {
            return Err(Checked::Inconsistent(format!(
                "the log has {} entries, fewer than the {size} it had at the last check",
                head.0
            )));
        }
        let proof = store
            .consistency_proof(size, head.0)
            .await
            .map_err(failed)?;
        custody_ledger::verify_consistency(size, head.0, &proof, &root, &head.1).map_err(|e| {
            Checked::Inconsistent(format!(
                "the log of {} entries does not extend the one of {size} seen at the last check: {e}",
                head.0
            ))
        })?;
    }
    Ok(head)
}

/// What the task has done so far.
#[derive(Default)]
struct Follow {
    /// The next ledger entry to read.
    next: u64,
    /// When the clock rules last ran.
    clock: Option<std::time::Instant>,
    /// Alerts already raised (an overdue promotion stays overdue every round).
    raised: std::collections::HashSet<String>,
}

impl Follow {
    async fn raise(&mut self, state: &ServerState, alert: &Alert) {
        if self.raised.len() >= REMEMBERED {
            self.raised.clear();
        }
        if self.raised.insert(alert.id.clone()) {
            raise(state, alert).await;
        }
    }
}

async fn round(
    state: &ServerState,
    client: &reqwest::Client,
    follow: &mut Follow,
) -> Result<(), String> {
    let next = &mut follow.next;
    let store = state.app.store();
    let size = store.size().await.map_err(|e| e.to_string())?;
    while *next < size {
        let end = size.min(*next + MAX_ENTRIES_PER_READ);
        for entry in store.entries(*next, end).await.map_err(|e| e.to_string())? {
            if let Ok(event) = serde_json::from_slice::<Value>(&entry.leaf) {
                for alert in alerts_for_event(entry.index, &event) {
                    raise(state, &alert).await;
                }
            }
        }
        *next = end;
    }
    if follow.clock.is_none_or(|t| t.elapsed() >= CLOCK_EVERY) {
        follow.clock = Some(std::time::Instant::now());
        let board = state.app.board().await.map_err(|e| e.to_string())?;
        let sla = AlertConfig::seconds(&state.alerting.config.approval_sla, 86_400);
        for (id, release, env, waited) in overdue_approvals(&board, now(), sla) {
            let alert = approval_sla_alert(&id, &release, &env, waited);
            follow.raise(state, &alert).await;
        }
        for alert in overdue_break_glass_reviews(&board, now(), sla) {
            follow.raise(state, &alert).await;
        }
        let warning = AlertConfig::seconds(&state.alerting.config.expiry_warning, 7200);
        for (approval, release, left) in state
            .app
            .expiring_approvals(&board, now(), warning)
            .await
            .map_err(|e| e.to_string())?
        {
            let alert = approval_expiring_alert(&approval, &release, left);
            follow.raise(state, &alert).await;
        }
        for expiring in state
            .app
            .expiring_evidence(&board, now(), warning)
            .await
            .map_err(|e| e.to_string())?
        {
            follow
                .raise(state, &evidence_expiring_alert(&expiring))
                .await;
        }
    }
    let due: Vec<_> = state
        .app
        .outbox()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|d| d.next_at <= now())
        .collect();
    for d in due {
        let outcome = match state
            .alerting
            .config
            .webhooks
            .iter()
            .find(|w| w.name == d.webhook)
        {
            Some(w) => deliver(client, &w.url, &d.alert).await,
            None => Err(format!(
                "no webhook {:?} in config.toml [alerts] any more",
                d.webhook
            )),
        };
        state
            .app
            .delivery_attempted(&d.alert.id, &d.webhook, outcome, now())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn deliver(client: &reqwest::Client, url: &str, alert: &Alert) -> Result<(), String> {
    let body = json!({
        "text": format!("[custody] {}: {}", alert.severity, alert.text),
        "alert": alert,
    });
    let response = client
        .post(url)
        .header("X-Custody-Alert", &alert.id)
        .timeout(Duration::from_secs(10))
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("{} answered {}", url, response.status()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn repeated_denials_raise_one_alert_per_window() {
        let alerting = Alerting::new(AlertConfig {
            denied_threshold: 3,
            denied_window: "60s".into(),
            ..AlertConfig::default()
        });
        assert!(alerting.denied("mallory", at(0)).is_none());
        assert!(
            alerting.denied("eve", at(1)).is_none(),
            "counted per principal"
        );
        assert!(alerting.denied("mallory", at(2)).is_none());
        let alert = alerting.denied("mallory", at(3)).unwrap();
        assert_eq!(alert.rule, "repeated-denied-access");
        assert!(
            alert.text.contains("mallory was denied 3 times"),
            "{}",
            alert.text
        );
        assert!(
            alerting.denied("mallory", at(4)).is_none(),
            "once per burst"
        );
        // Long after, the old denials no longer count.
        assert!(alerting.denied("mallory", at(500)).is_none());
    }

    #[test]
    fn a_bad_webhook_or_duration_is_refused_by_name() {
        let mut config = AlertConfig::default();
        config.webhooks.push(Webhook {
            name: "ops".into(),
            url: "ftp://example/hook".into(),
        });
        assert!(config.check().unwrap_err().contains("\"ops\""));
        let config = AlertConfig {
            approval_sla: "soon".into(),
            ..AlertConfig::default()
        };
        assert!(config.check().unwrap_err().contains("approval_sla"));
    }
}
