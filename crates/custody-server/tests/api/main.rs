//! The HTTP API in process: the router built on a real store (SQLite, and PostgreSQL where
//! the behaviour could differ), called through `Router::oneshot`. One test binary for the
//! crate (ripgrep's layout): each file below is one topic.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod bodies;
mod connections;
mod idempotency;
mod openapi;
mod replica;
mod routes;
mod sessions;
mod state_check;
mod support;
