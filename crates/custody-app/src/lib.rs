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
//! - [`App::deploy_report`], [`App::rollback`], [`App::verify`] (environment/)
//! - [`App::history`], [`App::decision`], [`App::replay`] (history.rs)
//! - [`App::create_token`], [`App::revoke_token`], [`App::authenticate`] (identity/)
//! - [`App::audit_export`], [`App::audit_receipt`], and the offline verifiers
//!   [`audit::verify_bundle`], [`audit::verify_receipt`] (audit/)

pub mod alerts;
mod app;
pub mod approval_statement;
pub mod attestations;
pub mod audit;
mod board;
mod catalog;
mod cleared_findings;
mod clock;
mod environment;
mod error;
pub mod events;
mod evidence;
mod exceptions;
pub mod findings;
mod governance;
mod history;
mod identity;
mod key_impact;
mod key_lifecycle;
mod key_lookup;
pub mod keyring;
pub mod limits;
mod log;
mod policy_versions;
mod projection;
mod promotion;
mod read_ahead;
mod rebuilds;
pub mod records;
mod recovery;
mod review;
pub mod review_commitment;
mod state_cache;
mod tail;
mod trust;

pub use app::{Actor, App, new_id};
pub use board::{
    ArtifactView, BoardColumn, InclusionCheck, LINEAGE_EVENTS, LedgerStatus, Lineage,
    PromotionView, SignatureView,
};
pub use catalog::{
    ApplyPolicy, ArtifactRegistered, AttachEvidence, RecordRelease, RegisterArtifact,
    ReleaseCreated, ReleaseStanding, ReleaseView,
};
pub use cleared_findings::cleared;
pub use clock::{Clock, FixedClock, SystemClock};
/// What a report says, in totals (the reader's, as evidence events record it).
pub use custody_evidence::Summary;
pub use environment::{
    CertifyingDecision, DeployOutcome, DeployReport, MAX_DIGESTS_PER_REPORT,
    RECHECK_WINDOW_SECONDS, Rollback, RollbackOutcome, Verification,
};
pub use error::{AppError, AppResult, Fault};
pub use evidence::{DSSE, EVIDENCE_V1, ReportRead, TEST_RESULT_V0_1};
pub use exceptions::{
    ExceptionRecord, ExceptionRequested, ExceptionReviewed, ExceptionRevoked, ExceptionStatus,
    MAX_EXCEPTION_DAYS, Remediation, RemediationAction, RequestException, ReviewException,
    Revocation, RevokeException,
};
pub use governance::{
    PROPOSAL_LIFETIME, PolicyChange, ProposalRecord, ProposalStatus, ProposalView, ProposalVote,
    ReviewProposal,
};
pub use history::{
    HistoryEntry, HistoryFilter, MIN_DIGEST_PREFIX, Replay, describe, why_nothing_matches,
};
pub use identity::{
    Authenticated, CreateToken, LOCAL_PREFIX, Permission, ROLES, TokenInfo, TokenRecord,
    is_token_id,
};
pub use key_impact::{
    Denial, Dependence, EnvironmentImpact, GateNow, KeyImpact, KeyUseRecord, MAX_AFFECTED_NAMED,
    MAX_IMPACT, RunningImpact,
};
pub use key_lifecycle::{
    HANDOVER_PAYLOAD_TYPE, Handover, KeyChanged, RevokeKey, RevokedNow, RotateKey,
};
pub use key_lookup::{KeyLookupError, MIN_KEY_PREFIX};
pub use log::{ConsistencyProof, InclusionProof, Log, Published};
pub use policy_versions::{AppliedVersion, MAX_POLICY_VERSIONS};
pub use projection::{StateCheck, StateDifference, check_state};
pub use promotion::{Promote, PromotionOutcome, REDACTED, Review, Superseded};
pub use rebuilds::{BuildComparison, ComparedBuild, ComparedField};
pub use recovery::Recovered;
pub use review::RoleHolding;
pub use tail::{FOLLOW_EVERY, Followed, Subscription};
pub use trust::{Outcome, OutcomeKind, RECENT_OUTCOMES, Running, Standing, is_evidence};
