//! custody's pipeline policy: `custody.toml` compiled into gates, and the pure evaluation of
//! a promotion against them.
//!
//! ```text
//! Bundle (custody.toml + key files) ──compile──▶ Policy ──evaluate(policy, facts)──▶ Decision
//! ```
//!
//! Invariant: evaluation is pure. It reads only the compiled policy and the [`Facts`]
//! (which carry the time), so a decision replays to the same outcome from its recorded
//! inputs; the decision records the policy digest, the facts' digest and [`ENGINE`].

mod compile;
mod decision;
mod duration;
mod evaluate;
mod facts;
mod policy;
mod repo;
mod review;
mod roles;

pub use compile::{Bundle, MAX_POLICY_FILE, POLICY_FILE, PolicyError, PolicyErrors, compile};
pub use decision::{Decision, ENGINE, Gate, GateResult, OVERRIDABLE, Status, facts_digest};
pub use duration::Span;
pub use evaluate::{evaluate, evaluate_standing};
pub use facts::{
    ApprovalFacts, ArtifactFacts, EvidenceFacts, Facts, PreviousFacts, ProvenanceFacts,
    ReleaseFacts,
};
pub use policy::{Approvals, Builder, Environment, Freeze, Policy};
pub use repo::{RepoPattern, RepoUrl, RepoUrlError};
pub use review::{DEFAULT_REVIEWERS, NotEligible, Standing, approval_standings, may_review};
pub use roles::{Grant, Role, UnknownRole};
