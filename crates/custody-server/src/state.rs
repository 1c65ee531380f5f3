//! What every handler shares.

use std::sync::Arc;

use custody_app::{App, Clock, SystemClock};
use custody_store::SqlStore;

use crate::{access, alerting, metrics, oidc};

/// The server's state: the use cases and the server's own parts around them.
pub struct ServerState {
    /// The use cases (the only way to the ledger and the state).
    pub app: App<SqlStore>,
    /// Trusted identity issuers.
    pub oidc: oidc::Oidc,
    /// Where "now" comes from: the system's clock, or a test's.
    pub clock: Arc<dyn Clock>,
    pub(crate) access: access::AccessLog,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) alerting: alerting::Alerting,
    /// The witnesses whose cosignatures the log accepts, and how many make a checkpoint
    /// final (set once, at start; none by default).
    pub(crate) witnesses: std::sync::OnceLock<Witnesses>,
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
    /// The state for `app` on the system clock, with its access-log writer started.
    pub fn new(app: App<SqlStore>, oidc: oidc::Oidc, alerts: alerting::Alerts) -> Arc<ServerState> {
        ServerState::with_clock(app, oidc, alerts, Arc::new(SystemClock))
    }

    /// [`ServerState::new`] on `clock` (tests set the time this way).
    pub fn with_clock(
        app: App<SqlStore>,
        oidc: oidc::Oidc,
        alerts: alerting::Alerts,
        clock: Arc<dyn Clock>,
    ) -> Arc<ServerState> {
        let state = Arc::new_cyclic(|weak| ServerState {
            app,
            oidc,
            clock,
            access: access::AccessLog::start(weak.clone()),
            metrics: metrics::Metrics::new(),
            alerting: alerting::Alerting::new(alerts),
            witnesses: std::sync::OnceLock::new(),
        });
        state.metrics.time_appends_of(&state.app);
        state
    }

    /// Accepts cosignatures from `witnesses` (before serving; a second call is ignored).
    pub fn configure_witnesses(&self, witnesses: Witnesses) {
        let _ = self.witnesses.set(witnesses);
    }

    /// The witnesses configured (none unless [`ServerState::configure_witnesses`] ran).
    pub(crate) fn witnesses(&self) -> Witnesses {
        self.witnesses.get().cloned().unwrap_or_default()
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
