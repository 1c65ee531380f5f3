//! custody's use cases: everything a release engineer, a signer, an approver, deploy
//! tooling and an auditor do, over a [`custody_store::Store`] and a policy.
//!
//! Each use case reads state, decides, and writes its events and state changes in one
//! append (so the ledger and the state never disagree), retrying when a concurrent request
//! changed what it read. Nothing here reads the clock or knows HTTP: the [`Actor`] carries
//! who acts and when; the CLI and the server are thin callers.
//!
//! - [`App::apply_policy`], [`App::register_artifact`], [`App::attest`],
//!   [`App::create_release`] (catalog.rs)
//! - [`App::promote`], [`App::review`] (promotion.rs)
//! - [`App::deploy_report`], [`App::rollback`], [`App::verify`] (environment.rs)
//! - [`App::history`], [`App::decision`], [`App::replay`] (history.rs)
//! - [`App::create_token`], [`App::revoke_token`], [`App::authenticate`] (identity.rs)

pub mod alerts;
mod app;
pub mod attestations;
mod board;
mod catalog;
mod environment;
mod error;
mod history;
mod identity;
mod promotion;
pub mod records;
mod review;
mod state_cache;

pub use app::{Actor, App};
pub use board::{
    ArtifactView, BoardColumn, InclusionCheck, LINEAGE_EVENTS, LedgerStatus, Lineage,
    PromotionView, SignatureView,
};
pub use catalog::{ArtifactRegistered, NewArtifact, PolicyApplied, ReleaseCreated};
pub use environment::{DeployOutcome, RollbackOutcome, Verification};
pub use error::{AppError, AppResult};
pub use history::{HistoryEntry, HistoryFilter, Replay, describe};
pub use identity::{Authenticated, Permission, ROLES, TokenInfo, TokenRecord};
pub use promotion::{PromotionOutcome, Review};
pub use review::RoleHolding;
pub use state_cache::WATCH_EVERY as STATE_WATCH_EVERY;
