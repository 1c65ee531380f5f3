//! What every handler shares.

use std::sync::Arc;

use custody_app::{App, Clock, SystemClock};
use custody_store::SqlStore;

use crate::{access_log, alerting, metrics, oidc};

/// The server's state: the use cases and the server's own parts around them.
pub struct ServerState {
    /// The use cases (the only way to the ledger and the state).
    pub app: App<SqlStore>,
    /// Trusted identity issuers.
    pub oidc: oidc::Oidc,
    /// Where "now" comes from: the system's clock, or a test's.
    pub clock: Arc<dyn Clock>,
    pub(crate) access: access_log::AccessLog,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) alerting: alerting::Alerting,
    /// `[server]` and `[access_log]`, checked.
    pub settings: crate::Settings,
    /// The dashboard's signed-in sessions.
    pub(crate) sessions: crate::dashboard::Sessions,
    /// The witnesses whose cosignatures the log accepts, and how many make a checkpoint
    /// final (set once, at start; none by default).
    pub(crate) witnesses: std::sync::OnceLock<Witnesses>,
    /// The dashboard's sign-in through the organisation's OIDC provider, if configured
    /// (set once, at start).
    sign_in: std::sync::OnceLock<oidc::sign_in::SignIn>,
    /// custody's own keys and where they live, for the keys page (set once, at start).
    own_keys: std::sync::OnceLock<OwnKeys>,
}

/// custody's own signing keys, as the keys page shows them.
#[derive(Debug, Clone)]
pub struct OwnKeys {
    /// The log key (signs checkpoints).
    pub log: OwnKey,
    /// The receipt (attestor) key (signs each decision's VSA).
    pub receipts: OwnKey,
}

/// One of custody's own keys: its public half and where the private half is.
#[derive(Debug, Clone)]
pub struct OwnKey {
    /// The public key (algorithm and key id follow).
    pub public: custody_crypto::PublicKey,
    /// Where the private key is, for people: `file keys/log.key`, `token "T", key "K"`.
    pub source: String,
}

/// The witnesses a server accepts cosignatures from (C2SP `tlog-cosignature`), and how
/// many of them must cosign a checkpoint before it is published as final.
#[derive(Debug, Clone, Default)]
pub struct Witnesses {
    /// Their verifier keys.
    pub keys: Vec<custody_crypto::cosignature::CosignatureVerifier>,
    /// Cosignatures a final checkpoint needs (at most `keys.len()`).
    pub quorum: usize,
}

impl ServerState {
    /// The state for `app` on the system clock with the default settings, its
    /// access-log writer started.
    pub fn new(app: App<SqlStore>, oidc: oidc::Oidc, alerts: alerting::Alerts) -> Arc<ServerState> {
        ServerState::configured(app, oidc, alerts, crate::Settings::default())
    }

    /// [`ServerState::new`] with `settings` (config.toml's `[server]` and `[access_log]`).
    pub fn configured(
        app: App<SqlStore>,
        oidc: oidc::Oidc,
        alerts: alerting::Alerts,
        settings: crate::Settings,
    ) -> Arc<ServerState> {
        ServerState::with_clock(app, oidc, alerts, settings, Arc::new(SystemClock))
    }

    /// [`ServerState::configured`] on `clock` (tests set the time this way).
    pub fn with_clock(
        app: App<SqlStore>,
        oidc: oidc::Oidc,
        alerts: alerting::Alerts,
        settings: crate::Settings,
        clock: Arc<dyn Clock>,
    ) -> Arc<ServerState> {
        let state = Arc::new_cyclic(|weak| ServerState {
            app,
            oidc,
            clock,
            access: access_log::AccessLog::start(weak.clone(), settings.access_log),
            metrics: metrics::Metrics::new(),
            alerting: alerting::Alerting::new(alerts),
            witnesses: std::sync::OnceLock::new(),
            sign_in: std::sync::OnceLock::new(),
            own_keys: std::sync::OnceLock::new(),
            settings,
            sessions: crate::dashboard::Sessions::default(),
        });
        state.metrics.time_appends_of(&state.app);
        state
    }

    /// Accepts cosignatures from `witnesses` (before serving; a second call is ignored).
    pub fn configure_witnesses(&self, witnesses: Witnesses) {
        let _ = self.witnesses.set(witnesses);
    }

    /// Offers the dashboard's sign-in through `sign_in`'s provider (before serving; a
    /// second call is ignored).
    pub fn configure_sign_in(&self, sign_in: oidc::sign_in::SignIn) {
        let _ = self.sign_in.set(sign_in);
    }

    /// Names where custody's own keys are, for the keys page (before serving; a second
    /// call is ignored).
    pub fn configure_own_keys(&self, keys: OwnKeys) {
        let _ = self.own_keys.set(keys);
    }

    /// custody's own keys and where they are, if the caller said.
    pub(crate) fn own_keys(&self) -> Option<&OwnKeys> {
        self.own_keys.get()
    }

    /// The dashboard's OIDC sign-in, if configured.
    pub(crate) fn sign_in(&self) -> Option<&oidc::sign_in::SignIn> {
        self.sign_in.get()
    }

    /// The witnesses configured (none unless [`ServerState::configure_witnesses`] ran).
    pub(crate) fn witnesses(&self) -> Witnesses {
        self.witnesses.get().cloned().unwrap_or_default()
    }

    /// Waits until the access entries queued so far are written (the log stays open).
    pub async fn sync_access_log(&self) {
        self.access.sync().await;
    }

    /// Writes the access entries still queued; call after the server stopped.
    pub async fn flush_access_log(&self) {
        self.access.flush().await;
    }

    /// The time now, by the server's clock.
    pub fn now(&self) -> custody_model::Timestamp {
        self.clock.now()
    }
}
