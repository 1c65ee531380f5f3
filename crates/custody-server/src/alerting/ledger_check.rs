//! The ledger's periodic re-check (every leaf against every stored hash and signed
//! checkpoint, the head against the last one seen) and the state's comparison with the
//! ledger, at start and after; what they find is raised, once per cause.

use std::sync::Arc;

use custody_app::alerts::{ledger_inconsistent_alert, state_mismatch_alert};

use super::{raise, raise_integrity_alert};
use crate::ServerState;

/// Re-checks the whole ledger when the server starts and every `[alerts] ledger_check`:
/// every leaf against every stored hash and signed checkpoint (`SqlStore::check`), and the
/// head against the head the previous check saw (a consistency proof, so a ledger replaced
/// by a fork signed with the same key is caught too). A failure raises an alert, once per
/// cause. Each round also rebuilds the state's projection from the ledger and compares
/// every checked record with it (the start-up check is [`check_state_at_start`]), and
/// raises the differences the hot paths refused since.
pub(crate) async fn audit_ledger(state: Arc<ServerState>) {
    let every = state.alerting.config.ledger_check;
    let mut seen: Option<(u64, custody_ledger::Hash)> = None;
    let mut raised = std::collections::HashSet::new();
    let mut first = true;
    loop {
        // The start-up check has just compared the state; later rounds compare it again.
        if !std::mem::take(&mut first) {
            check_state(&state, |_| {}).await;
        }
        for difference in state.app.take_state_differences() {
            raise(&state, &state_mismatch_alert(&difference)).await;
        }
        let problem = match check_ledger(&state, seen).await {
            Ok(head) => {
                tracing::debug!(entries = head.0, "the ledger was re-checked: consistent");
                state.metrics.ledger_checked("consistent", Some(head.0));
                seen = Some(head);
                None
            }
            Err(Checked::Inconsistent(why)) => {
                state.metrics.ledger_checked("inconsistent", None);
                Some(why)
            }
            Err(Checked::Unavailable(why)) => {
                tracing::warn!(reason = %why, "the ledger check could not run");
                state.metrics.ledger_checked("unavailable", None);
                None
            }
        };
        // A reminder each round while it lasts (the store said it when it began).
        if let Some(why) = state.app.log().checkpoint_file_error() {
            tracing::warn!(error = %why, "the checkpoint file is still not being written");
        }
        if let Some(why) = problem {
            let alert = ledger_inconsistent_alert(&why);
            if raised.insert(alert.id.clone()) {
                raise_integrity_alert(&state, &alert).await;
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Before the server accepts its first connection: rebuilds the state's projection from
/// the whole ledger (progress in the log), compares every checked record with it, raises a
/// critical alert for each difference, and keeps the projection so that the hot paths
/// refuse to act on a record that differs (fail closed).
pub async fn check_state_at_start(state: &ServerState) {
    tracing::info!("checking the state against the ledger");
    let mut last = 0;
    check_state(state, |done| {
        if done >= last + 100_000 {
            last = done;
            tracing::info!(entries = done, "checking the state against the ledger");
        }
    })
    .await;
}

/// One comparison of the state with the ledger, its differences raised.
async fn check_state(state: &ServerState, progress: impl FnMut(u64) + Send) {
    match state.app.guard_state(progress).await {
        Ok(report) => {
            tracing::info!(
                entries = report.entries,
                records = report.records,
                differences = report.differences.len(),
                "the state was checked against the ledger"
            );
            for difference in &report.differences {
                tracing::error!(%difference, "a state record does not match the ledger");
                raise(state, &state_mismatch_alert(difference)).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "the state could not be checked against the ledger"),
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
    let log = state.app.log();
    let failed = |e: custody_app::AppError| match e.fault() {
        custody_app::Fault::Integrity => Checked::Inconsistent(e.to_string()),
        _ => Checked::Unavailable(e.to_string()),
    };
    let report = log.check(|_| {}).await.map_err(failed)?;
    let head = (report.entries, report.root);
    if let Some((size, root)) = seen {
        if head.0 < size {
            return Err(Checked::Inconsistent(format!(
                "the log has {} entries, fewer than the {size} it had at the last check",
                head.0
            )));
        }
        let proof = log.consistency(size, head.0).await.map_err(failed)?;
        custody_ledger::verify_consistency(size, head.0, &proof.hashes, &root, &head.1).map_err(|e| {
            Checked::Inconsistent(format!(
                "the log of {} entries does not extend the one of {size} seen at the last check: {e}",
                head.0
            ))
        })?;
    }
    Ok(head)
}
