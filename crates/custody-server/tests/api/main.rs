//! The HTTP API in process: the router built on a real store (SQLite, and PostgreSQL where
//! the behaviour could differ), called through `Router::oneshot`. One test binary for the
//! crate (ripgrep's layout): each file below is one topic.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod access_log;
mod bodies;
mod bounds;
mod connections;
mod exceptions;
mod idempotency;
mod openapi;
mod reads;
mod replica;
mod reviews;
mod routes;
mod sessions;
mod state_check;
mod support;
mod tokens;
