//! Errors as the API answers them: one mapping from a use case's [`Fault`] to a status,
//! used by the API and the dashboard alike.
//!
//! A 4xx carries the use case's message (it is about the caller's request). A 5xx carries
//! a generic message and a reference: the cause (which may name database or file-system
//! internals) goes to the server's log under that reference, never to the caller.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custody_app::{AppError, Fault};
use serde_json::json;

/// The one status of each fault.
pub(crate) fn status(fault: Fault) -> StatusCode {
    match fault {
        Fault::Denied => StatusCode::FORBIDDEN,
        Fault::NotFound => StatusCode::NOT_FOUND,
        Fault::Invalid => StatusCode::BAD_REQUEST,
        Fault::Conflict => StatusCode::CONFLICT,
        Fault::Integrity => StatusCode::INTERNAL_SERVER_ERROR,
        Fault::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// An error as the API reports it: a status and a message for the caller.
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl ApiError {
    /// A request the caller got wrong.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let status = status(e.fault());
        ApiError(status, message_for(status, &e))
    }
}

/// What a caller is told once the log key this server signs with was rotated by another.
pub(crate) const KEY_RETIRED: &str = "the log key this server signs with was rotated while it ran (`custody key rotate log`): it neither writes nor vouches for the log until an operator restarts it on the new key; nothing was changed";

/// What a caller is told while the ledger's history is found changed behind custody's back.
pub(crate) const HISTORY_CHANGED: &str = "the ledger's history was changed behind custody's back, so custody writes nothing until an operator resolves it (`custody log check` on the data directory says what was found); nothing was changed";

/// What a caller is told while the store does not answer.
pub(crate) const NOT_ANSWERING: &str = "custody cannot serve this right now (its store is not answering); nothing was changed, retry later";

/// What a caller is told of `e`: the message for a 4xx; for a 5xx, a generic sentence with
/// a reference to the server's log, where the cause is written.
pub(crate) fn message_for(status: StatusCode, e: &AppError) -> String {
    if !status.is_server_error() {
        return e.to_string();
    }
    let reference = custody_app::new_id("err");
    tracing::error!(reference, error = %e, "request failed");
    let what = match (status, e) {
        // The one integrity failure an operator causes on purpose: say what to do.
        (_, AppError::Store(custody_store::StoreError::RetiredKey { .. })) => KEY_RETIRED,
        (_, AppError::Store(custody_store::StoreError::Integrity(_))) => HISTORY_CHANGED,
        (StatusCode::SERVICE_UNAVAILABLE, _) => NOT_ANSWERING,
        _ => "custody failed to serve this; an operator can find why in the server's log",
    };
    format!("{what} (reference {reference})")
}

/// Marks a 403 a use case answered (its caller passed the route's guard and was then
/// refused), so the access log records a denial, not the guard's "allowed".
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeniedByUseCase;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let denied = self.0 == StatusCode::FORBIDDEN;
        let mut response = (self.0, Json(json!({"error": self.1}))).into_response();
        if denied {
            response.extensions_mut().insert(DeniedByUseCase);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_error_never_carries_its_cause() {
        let e = AppError::Store(custody_store::StoreError::Unavailable(
            "disk I/O error at /var/lib/custody/custody.db".into(),
        ));
        let ApiError(status, message) = ApiError::from(e);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!message.contains("/var/lib"), "{message}");
        assert!(message.contains("reference"), "{message}");
        let ApiError(status, message) = ApiError::from(AppError::NotFound("no promotion x".into()));
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(message, "no promotion x");
    }
}
