//! A request's body, bounded in size and in time.
//!
//! A client has `request_timeout` from when its request's headers are in to send the whole
//! body ([`bound_body`]); a body still arriving then ends in an error that the extractors
//! answer 408. Only the body is timed: once it is in, the handler runs to its end and its
//! answer is the one the client gets, so a change is never made behind a 408 (a timeout
//! around the whole request would cancel a handler between its write and its answer, and
//! the client would be told "timed out" about a change that happened).
//!
//! The size limit is axum's `DefaultBodyLimit` ([`MAX_BODY`]; [`crate::MAX_REPORT_BODY`]
//! on the one route that takes a raw report, layered on it in routes.rs), applied by the
//! extractors as they read: a body over it is answered 413 by the extractor, after the
//! route's access guard, so the refusal's access-log row names its caller (and only a
//! caller who may attach evidence can send a large one). A declared `Content-Length` over
//! the limit is refused before any of the body is read.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::{Instant, Sleep};

use crate::ServerState;

/// The error a request body ends in when its deadline passes.
#[derive(Debug)]
pub(crate) struct BodyDeadline(Duration);

impl std::fmt::Display for BodyDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request's body did not arrive within {:?} of its headers; nothing was changed: send it again, whole",
            self.0
        )
    }
}

impl std::error::Error for BodyDeadline {}

/// Gives every request's body its deadline: `request_timeout` from now (its headers are
/// in).
pub(crate) async fn bound_body(
    State(state): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = state.settings.request_timeout;
    let deadline = Instant::now() + allowed;
    let request = request.map(|inner| {
        Body::new(Timed {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            allowed,
        })
    });
    next.run(request).await
}

/// A body that fails once its deadline has passed (a fixed instant, not a pause between
/// frames, so a client trickling a byte at a time is cut off too).
struct Timed {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    allowed: Duration,
}

impl HttpBody for Timed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyDeadline(self.allowed))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// How a body that could not be read is answered, if its cause is one of the bounds: 408
/// with [`BodyDeadline`]'s message when its deadline passed, 413 when it is over
/// `limit` (the extractor's `status` says so). `None`: the extractor's own answer stands (a
/// malformed body is a 400).
pub(crate) fn refusal(
    rejection: &(dyn std::error::Error + 'static),
    status: StatusCode,
    limit: usize,
) -> Option<(StatusCode, String)> {
    let mut cause = Some(rejection);
    while let Some(e) = cause {
        if let Some(late) = e.downcast_ref::<BodyDeadline>() {
            return Some((StatusCode::REQUEST_TIMEOUT, late.to_string()));
        }
        cause = e.source();
    }
    (status == StatusCode::PAYLOAD_TOO_LARGE).then(|| (status, too_large(limit)))
}

/// A request whose declared `Content-Length` is over `limit`: refused before any of its
/// body is read.
pub(crate) fn declared_too_large(request: &Request, limit: usize) -> Option<(StatusCode, String)> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse::<u64>()
        .ok()?;
    (declared > limit as u64).then(|| (StatusCode::PAYLOAD_TOO_LARGE, too_large(limit)))
}

fn too_large(limit: usize) -> String {
    format!(
        "the request's body is over custody's limit of {limit} bytes for this route; nothing was changed"
    )
}
