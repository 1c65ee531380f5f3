//! Extractors: what handlers take from a request, each refusing with the API's own error.

use std::sync::Arc;

use axum::extract::rejection::{
    FormRejection, JsonRejection, PathRejection, QueryRejection, StringRejection,
};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use custody_app::{Actor, Authenticated};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::{MAX_BODY, ServerState, body};

/// A JSON body; a malformed one (bad JSON, unknown or missing fields) is a 400 naming the
/// problem, one over the size limit a 413, one that did not arrive in time a 408 (body.rs).
/// `LIMIT` is the route's limit, as its `DefaultBodyLimit` says ([`MAX_BODY`] but for the
/// route that takes a raw report).
pub(crate) struct ApiJson<T, const LIMIT: usize = MAX_BODY>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync, const LIMIT: usize> FromRequest<S> for ApiJson<T, LIMIT> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if let Some((status, why)) = body::declared_too_large(&request, LIMIT) {
            return Err(ApiError(status, why));
        }
        axum::Json::<T>::from_request(request, state)
            .await
            .map(|axum::Json(v)| ApiJson(v))
            .map_err(|e: JsonRejection| refused(&e, e.status(), e.body_text(), LIMIT))
    }
}

/// An API body refused: for one of its bounds as body.rs answers it (408, 413), else as a
/// bad request naming the problem.
fn refused(
    rejection: &(dyn std::error::Error + 'static),
    status: StatusCode,
    text: String,
    limit: usize,
) -> ApiError {
    match body::refusal(rejection, status, limit) {
        Some((status, why)) => ApiError(status, why),
        None => ApiError(bad_request(status), text),
    }
}

/// A body that does not fit the request type is a bad request (400), like every other
/// malformed input (axum says 422); another refusal keeps its status (no JSON type: 415).
fn bad_request(status: StatusCode) -> StatusCode {
    match status {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        other => other,
    }
}

/// A dashboard form's body, bounded as [`ApiJson`] is; refused with a plain-text answer.
pub(crate) struct PageForm<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for PageForm<T> {
    type Rejection = (StatusCode, String);

    async fn from_request(request: Request, state: &S) -> Result<Self, (StatusCode, String)> {
        if let Some(refused) = body::declared_too_large(&request, MAX_BODY) {
            return Err(refused);
        }
        axum::Form::<T>::from_request(request, state)
            .await
            .map(|axum::Form(v)| PageForm(v))
            .map_err(|e: FormRejection| {
                body::refusal(&e, e.status(), MAX_BODY)
                    .unwrap_or_else(|| (bad_request(e.status()), e.body_text()))
            })
    }
}

/// A query string; a malformed one is a 400 naming the problem.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // Parsed plainly first: the deploy gate parses a query on every call, and tracking
        // the path to a problem allocates for every field. Only a query that fails is
        // parsed again, through axum's extractor, for the message naming the field.
        if let Ok(v) = serde_urlencoded::from_str(parts.uri.query().unwrap_or_default()) {
            return Ok(ApiQuery(v));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| ApiError::bad_request(e.body_text()))
    }
}

/// The route's path parameters; one that does not parse (not UTF-8 once decoded, or not
/// the type the route takes) is a 400 naming the problem, as JSON like every API error.
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|e: PathRejection| match e.status() {
                // The route and its handler disagree: a server bug, answered generically.
                status if status.is_server_error() => {
                    ApiError::from(custody_app::AppError::Integrity(e.body_text()))
                }
                status => ApiError(status, e.body_text()),
            })
    }
}

/// A plain-text body (a signed note), bounded as [`ApiJson`] is; one that is not UTF-8 is
/// a 400, as JSON like every API error.
pub(crate) struct ApiText(pub(crate) String);

impl<S: Send + Sync> FromRequest<S> for ApiText {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if let Some((status, why)) = body::declared_too_large(&request, MAX_BODY) {
            return Err(ApiError(status, why));
        }
        String::from_request(request, state)
            .await
            .map(ApiText)
            .map_err(|e: StringRejection| refused(&e, e.status(), e.body_text(), MAX_BODY))
    }
}

/// Longest idempotency key.
pub(crate) const MAX_IDEMPOTENCY_KEY: usize = 256;

/// The `Idempotency-Key` header, if sent: 1 to [`MAX_IDEMPOTENCY_KEY`] visible ASCII
/// characters (no spaces or control characters).
pub(crate) struct IdempotencyKey(pub(crate) Option<String>);

impl IdempotencyKey {
    pub(crate) fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let mut sent = parts.headers.get_all("idempotency-key").iter();
        let Some(value) = sent.next() else {
            return Ok(IdempotencyKey(None));
        };
        if sent.next().is_some() {
            // Which one the caller meant cannot be known: acting on either could act twice.
            return Err(ApiError::bad_request(
                "send one Idempotency-Key header, not several",
            ));
        }
        value
            .to_str()
            .ok()
            .filter(|k| {
                !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY && k.bytes().all(|b| b.is_ascii_graphic())
            })
            .map(|k| IdempotencyKey(Some(k.to_owned())))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters (no spaces or control characters)"
                ))
            })
    }
}

/// The authenticated caller (put there by the route's guard), acting now by the server's
/// clock, with the server it acts through.
pub(crate) struct Caller {
    pub(crate) who: Authenticated,
    pub(crate) actor: Actor,
    server: Arc<ServerState>,
}

impl Caller {
    /// The use cases the caller acts through.
    pub(crate) fn app(&self) -> &custody_app::App<custody_store::SqlStore> {
        &self.server.app
    }
}

impl FromRequestParts<Arc<ServerState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ServerState>,
    ) -> Result<Self, ApiError> {
        let who = parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .ok_or_else(|| {
                // A handler that needs a caller on a route without a guard: a server bug.
                ApiError::from(custody_app::AppError::Integrity(format!(
                    "route {} has no access guard",
                    parts.uri.path()
                )))
            })?;
        let actor = who.actor(state.now()).map_err(ApiError::from)?;
        Ok(Caller {
            who,
            actor,
            server: state.clone(),
        })
    }
}
