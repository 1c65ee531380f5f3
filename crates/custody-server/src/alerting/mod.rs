//! Raising alerts and delivering them to webhooks.
//!
//! One background task subscribes to the ledger's tail (every event through the rules of
//! `custody_app::alerts`); another checks the clock (approvals waiting past their SLA) and delivers
//! what is due from the outbox: a JSON POST with a Slack-compatible `text` field and the
//! alert, and an `X-Custody-Alert` header carrying its id so that a receiver can drop a
//! repeat. A failed delivery is retried with a backoff and never dropped. Repeated denials
//! are counted by the access log as they happen.
//!
//! This file holds the tasks that raise and deliver; `config.rs` the `[alerts]` settings
//! and their checking; `ledger_check.rs` the periodic re-check of the ledger and of the
//! state against it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custody_app::alerts::{
    Alert, ClockWatch, alerts_for_event, approval_expiring_alert, approval_sla_alert,
    denied_access_alert, evidence_expiring_alert, ledger_inconsistent_alert, overdue_approvals,
    overdue_break_glass_reviews,
};
use custody_model::Timestamp;
use serde_json::json;

use crate::ServerState;

mod config;
mod ledger_check;

pub use config::{AlertConfig, Alerts, Webhook};
pub(crate) use ledger_check::audit_ledger;
pub use ledger_check::check_state_at_start;

/// The alerting state of one server.
pub(crate) struct Alerting {
    pub(crate) config: Alerts,
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

impl Alerting {
    pub(crate) fn new(config: Alerts) -> Alerting {
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
        let window = self.config.denied_window;
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
    if let Err(e) = state.app.raise_alert(alert, &webhooks, state.now()).await {
        tracing::error!(alert = %alert.id, error = %e, "raising an alert failed");
    }
}

/// Raises an alert about the ledger's own integrity, which the re-check raises once per
/// cause. After an integrity failure the ledger takes no writes, so such an alert cannot
/// wait in its outbox: it goes to every webhook now, once, unrecorded. (Only these: the
/// alerts the ledger's events call for are raised again from its first entry at every
/// start, and must never all be sent again because the ledger is read-only.)
async fn raise_integrity_alert(state: &ServerState, alert: &Alert) {
    let webhooks = state.alerting.webhook_names();
    match state.app.raise_alert(alert, &webhooks, state.now()).await {
        Ok(_) => {}
        Err(e) if e.fault() == custody_app::Fault::Integrity => {
            tracing::error!(alert = %alert.id, error = %e, "the ledger takes no writes: delivering the alert directly");
            state.alerting.config.deliver_unrecorded(alert).await;
        }
        Err(e) => tracing::error!(alert = %alert.id, error = %e, "raising an alert failed"),
    }
}

impl Alerts {
    /// Delivers `alert` to every webhook once, outside any ledger (no retries): for what
    /// happens when the ledger cannot record it.
    pub(crate) async fn deliver_unrecorded(&self, alert: &Alert) {
        let client = match crate::http_client::client(None) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(alert = %alert.id, error = %e, "alert webhooks cannot be reached");
                return;
            }
        };
        for w in &self.webhooks {
            if let Err(e) = deliver(&client, &w.url, alert).await {
                tracing::error!(alert = %alert.id, webhook = %w.name, error = %e, "delivering an unrecorded alert failed");
            }
        }
    }

    /// Tells every webhook that the server refused to start because the ledger's history
    /// was changed behind custody's back (`why`): nothing can be recorded in that ledger,
    /// and an exit code alone reaches nobody.
    pub async fn refused_to_start(&self, why: &str) {
        let mut alert = ledger_inconsistent_alert(why);
        alert.text = format!("custody refused to start: {why}");
        self.deliver_unrecorded(&alert).await;
    }
}

/// Raises the alerts a check of entry `index` found; a check that failed (`what` it was
/// doing) is logged, not fatal: the next reader of the record reports what it finds.
async fn raise_found(
    state: &ServerState,
    index: u64,
    found: custody_app::AppResult<Vec<Alert>>,
    what: &str,
) {
    match found {
        Ok(alerts) => {
            for alert in alerts {
                raise(state, &alert).await;
            }
        }
        Err(e) => tracing::warn!(index, error = %e, "{what}"),
    }
}

/// Raises the alerts the ledger's events call for, as the ledger's tail sees them (from
/// the first entry after a start: raising is idempotent), until dropped.
pub(crate) async fn follow_ledger(state: Arc<ServerState>) {
    let mut events = state.app.subscribe(0);
    let mut clock = ClockWatch::default();
    loop {
        match events.next().await {
            Ok(batch) => {
                for (index, event) in batch {
                    // Alerts are stamped by this server's clock and judge nothing: a
                    // backfill that runs while a server raises alerts is still one run.
                    let set_back = (event.actor != custody_app::alerts::ALERTING)
                        .then(|| clock.see(index, event.at, state.now()))
                        .flatten();
                    for alert in alerts_for_event(index, &event).iter().chain(&set_back) {
                        raise(&state, alert).await;
                    }
                    // A newer report that clears the findings of the one it replaces.
                    let cleared = state.app.cleared_findings_alerts(index, &event).await;
                    raise_found(
                        &state,
                        index,
                        cleared,
                        "comparing a report with the one it replaces",
                    )
                    .await;
                    // New evidence re-checks what is certified with it (a failure to
                    // re-check is the deploy gate's to report when next asked).
                    let rechecked = state.app.recheck_alerts(index, &event, state.now()).await;
                    raise_found(
                        &state,
                        index,
                        rechecked,
                        "re-checking standings after new evidence",
                    )
                    .await;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "alerting could not read the ledger");
                tokio::time::sleep(EVERY).await;
            }
        }
    }
}

/// Checks the clock rules and delivers what is due, until dropped.
pub(crate) async fn run(state: Arc<ServerState>) {
    let client = match crate::http_client::client(None) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "alert webhooks cannot be reached");
            return;
        }
    };
    let mut follow = Follow::default();
    loop {
        if let Err(e) = round(&state, &client, &mut follow).await {
            tracing::error!(error = %e, "alerting");
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// What the task has done so far.
#[derive(Default)]
struct Follow {
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
    let now = state.now();
    if follow.clock.is_none_or(|t| t.elapsed() >= CLOCK_EVERY) {
        follow.clock = Some(std::time::Instant::now());
        let board = state.app.board(now).await.map_err(|e| e.to_string())?;
        let sla = state.alerting.config.approval_sla;
        for (id, release, env, waited) in overdue_approvals(&board, now, sla) {
            let alert = approval_sla_alert(&id, &release, &env, waited);
            follow.raise(state, &alert).await;
        }
        for alert in overdue_break_glass_reviews(&board, now, sla) {
            follow.raise(state, &alert).await;
        }
        let warning = state.alerting.config.expiry_warning;
        for (approval, release, left) in state
            .app
            .expiring_approvals(&board, now, warning)
            .await
            .map_err(|e| e.to_string())?
        {
            let alert = approval_expiring_alert(&approval, &release, left);
            follow.raise(state, &alert).await;
        }
        for (key, left) in state
            .app
            .expiring_keys(now, state.alerting.config.key_expiry_warning)
            .await
            .map_err(|e| e.to_string())?
        {
            follow
                .raise(state, &custody_app::alerts::key_expiring_alert(&key, left))
                .await;
        }
        for (x, left) in state
            .app
            .expiring_exceptions(now, state.alerting.config.exception_expiry_warning)
            .await
            .map_err(|e| e.to_string())?
        {
            follow
                .raise(
                    state,
                    &custody_app::alerts::exception_expiring_alert(&x, left),
                )
                .await;
        }
        for expiring in state
            .app
            .expiring_evidence(&board, now, warning)
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
        .filter(|d| d.next_at <= now)
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
            .delivery_attempted(&d.alert.id, &d.webhook, outcome, state.now())
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
        let alerting = Alerting::new(
            AlertConfig {
                denied_threshold: 3,
                denied_window: "60s".into(),
                ..AlertConfig::default()
            }
            .compile()
            .unwrap(),
        );
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
        assert!(config.compile().unwrap_err().contains("\"ops\""));
        let config = AlertConfig {
            approval_sla: "soon".into(),
            ..AlertConfig::default()
        };
        assert!(config.compile().unwrap_err().contains("approval_sla"));
    }
}
