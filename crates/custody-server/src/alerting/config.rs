//! `[alerts]` in config.toml, and its compiled form: every duration parsed and longer than
//! nothing, every webhook named with an http(s) URL, before the server uses any of it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// How long before a trusted key's validity ends (its `expires`) to warn (e.g. "7d").
    #[serde(default = "default_key_expiry_warning")]
    pub key_expiry_warning: String,
    /// How long before an approved exception (waiver) stops counting to warn (e.g. "3d").
    #[serde(default = "default_exception_expiry_warning")]
    pub exception_expiry_warning: String,
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
fn default_key_expiry_warning() -> String {
    "7d".into()
}
fn default_exception_expiry_warning() -> String {
    "3d".into()
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
            key_expiry_warning: default_key_expiry_warning(),
            exception_expiry_warning: default_exception_expiry_warning(),
            denied_threshold: default_denials(),
            denied_window: default_window(),
            ledger_check: default_ledger_check(),
            webhooks: Vec::new(),
        }
    }
}

/// `[alerts]` checked and compiled: durations in seconds, webhooks with valid URLs. Made
/// only by [`AlertConfig::compile`], so every use reads a checked value.
#[derive(Debug, Clone)]
pub struct Alerts {
    /// How long a promotion may wait for approval before an alert.
    pub approval_sla: i64,
    /// How long before an approval or evidence lapses to warn.
    pub expiry_warning: i64,
    /// How long before a key's validity ends to warn.
    pub key_expiry_warning: i64,
    /// How long before an exception stops counting to warn.
    pub exception_expiry_warning: i64,
    /// Denials that raise an alert…
    pub denied_threshold: usize,
    /// …within this many seconds.
    pub denied_window: i64,
    /// How often the whole ledger is re-checked.
    pub ledger_check: Duration,
    /// Where alerts go.
    pub webhooks: Vec<Webhook>,
}

impl Default for Alerts {
    fn default() -> Self {
        // The defaults are valid by construction; compile cannot refuse them.
        AlertConfig::default().compile().unwrap_or(Alerts {
            approval_sla: 86_400,
            expiry_warning: 7_200,
            key_expiry_warning: 604_800,
            exception_expiry_warning: 259_200,
            denied_threshold: 5,
            denied_window: 600,
            ledger_check: Duration::from_secs(3_600),
            webhooks: Vec::new(),
        })
    }
}

impl AlertConfig {
    /// Checks the durations and the webhooks' names and URLs, and compiles them.
    pub fn compile(&self) -> Result<Alerts, String> {
        let seconds = |name: &str, text: &str| -> Result<i64, String> {
            let span =
                custody_policy::Span::parse(text).map_err(|e| format!("[alerts] {name}: {e}"))?;
            let s =
                i64::try_from(span.seconds()).map_err(|_| format!("[alerts] {name}: too long"))?;
            if s <= 0 {
                return Err(format!("[alerts] {name}: must be longer than nothing"));
            }
            Ok(s)
        };
        for w in &self.webhooks {
            if w.name.is_empty() || !(w.url.starts_with("http://") || w.url.starts_with("https://"))
            {
                return Err(format!(
                    "[[alerts.webhook]] {:?}: needs a name and an http(s) URL",
                    w.name
                ));
            }
        }
        Ok(Alerts {
            approval_sla: seconds("approval_sla", &self.approval_sla)?,
            expiry_warning: seconds("expiry_warning", &self.expiry_warning)?,
            key_expiry_warning: seconds("key_expiry_warning", &self.key_expiry_warning)?,
            exception_expiry_warning: seconds(
                "exception_expiry_warning",
                &self.exception_expiry_warning,
            )?,
            denied_threshold: self.denied_threshold,
            denied_window: seconds("denied_window", &self.denied_window)?,
            ledger_check: Duration::from_secs(
                u64::try_from(seconds("ledger_check", &self.ledger_check)?).unwrap_or(3_600),
            ),
            webhooks: self.webhooks.clone(),
        })
    }
}
