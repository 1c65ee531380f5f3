//! What an evaluation says: each gate's verdict and reason, and the decision that records
//! them with the policy version, the facts' digest and the engine.
//!
//! Invariant: these serialise exactly as decisions already in ledgers were recorded (gate
//! names like `release-signature`, statuses in lowercase), so a stored decision reads back
//! and compares equal to its replay.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::facts::Facts;

/// The engine's name and version, recorded in every decision.
pub const ENGINE: &str = concat!("custody-policy/", env!("CARGO_PKG_VERSION"));

/// A gate, named in decisions as [`Gate::name`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    /// The target environment is one the policy declares.
    Environment,
    /// The release manifest is signed by a trusted release key allowed there.
    ReleaseSignature,
    /// Release and artifact names and the version follow the naming rules.
    Naming,
    /// Every artifact has provenance from a trusted builder allowed there, of a repository
    /// that builder may build.
    Provenance,
    /// Certified in the environment before (soaked, deployed successfully).
    PreviousEnvironment,
    /// The evidence every artifact needs, fresh enough.
    Evidence,
    /// Not in a freeze window.
    Freeze,
    /// Enough approvals from eligible people, and no rejection from one.
    Approvals,
    /// The requester broke glass, and may.
    BreakGlass,
    /// What test reports say (no failures, enough cases).
    Tests,
    /// What static analysis says (results per level within limits).
    StaticAnalysis,
    /// What vulnerability scans say (nothing above the allowed severity, unless waived).
    Vulnerabilities,
    /// What SBOMs say (every licence allowed, unless waived).
    Licences,
    /// Enough independent builders agree on each artifact's digest.
    Reproducible,
}

impl Gate {
    /// Its name in decisions, reasons and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Gate::Environment => "environment",
            Gate::ReleaseSignature => "release-signature",
            Gate::Naming => "naming",
            Gate::Provenance => "provenance",
            Gate::PreviousEnvironment => "previous-environment",
            Gate::Evidence => "evidence",
            Gate::Freeze => "freeze",
            Gate::Approvals => "approvals",
            Gate::BreakGlass => "break-glass",
            Gate::Tests => "tests",
            Gate::StaticAnalysis => "static-analysis",
            Gate::Vulnerabilities => "vulnerabilities",
            Gate::Licences => "licences",
            Gate::Reproducible => "reproducible",
        }
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// Gates break-glass may override: those that time, people, a freeze or the evidence hold
/// closed. The integrity gates (the release's signature, naming, provenance, agreeing
/// rebuilds) are never overridden: a broken glass still only lets through what was built
/// and signed as recorded.
pub const OVERRIDABLE: [Gate; 8] = [
    Gate::PreviousEnvironment,
    Gate::Evidence,
    Gate::Freeze,
    Gate::Approvals,
    Gate::Tests,
    Gate::StaticAnalysis,
    Gate::Vulnerabilities,
    Gate::Licences,
];

/// A gate's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The gate passes.
    Pass,
    /// The gate fails; the promotion cannot proceed until the facts change.
    Fail,
    /// Not yet: it may pass with time or more approvals.
    Waiting,
    /// It failed or waited, and the requester broke glass past it (see the `break-glass`
    /// gate, which says who and why).
    Overridden,
    /// In a certified release's standing only: an evidence rule fails now, and the
    /// environment's policy (`standing = "warn"`) only warns about it.
    Warn,
}

/// One gate's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateResult {
    /// The gate.
    pub gate: Gate,
    /// Its verdict.
    pub status: Status,
    /// Why, for a person.
    pub reason: String,
}

/// A decision about a promotion (or, from [`crate::evaluate_standing`], about a certified
/// release's standing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// True when every gate passes.
    pub allowed: bool,
    /// Each gate, in evaluation order.
    pub gates: Vec<GateResult>,
    /// The policy version evaluated.
    pub policy_digest: String,
    /// SHA-256 of the facts' RFC 8785 JSON (`sha256:…`).
    pub input_digest: String,
    /// [`ENGINE`].
    pub engine: String,
}

impl Decision {
    /// The gates that did not pass (and were not overridden, nor only warn).
    pub fn blocking(&self) -> impl Iterator<Item = &GateResult> {
        self.gates
            .iter()
            .filter(|g| !matches!(g.status, Status::Pass | Status::Overridden | Status::Warn))
    }

    /// The gates that only warn.
    pub fn warnings(&self) -> impl Iterator<Item = &GateResult> {
        self.gates.iter().filter(|g| g.status == Status::Warn)
    }

    /// Whether the requester broke glass past a gate.
    pub fn broke_glass(&self) -> bool {
        self.gates
            .iter()
            .any(|g| g.gate == Gate::BreakGlass && g.status == Status::Pass)
    }

    /// Whether this decision ends the promotion: an eligible reviewer rejected it (the
    /// approvals gate failed), or its break-glass was refused. Anything else that fails or
    /// waits may still change with new facts (an approval, a re-signed release, time).
    pub fn ends_promotion(&self) -> bool {
        self.gates.iter().any(|g| {
            matches!(g.gate, Gate::Approvals | Gate::BreakGlass) && g.status == Status::Fail
        })
    }
}

/// The digest of a set of facts: SHA-256 of their canonical JSON.
pub fn facts_digest(facts: &Facts) -> String {
    // Canonicalised straight from the struct (no intermediate JSON tree): the facts hold
    // strings, booleans and integers well inside ±2^53, so this is their RFC 8785 form.
    let bytes = serde_json_canonicalizer::to_vec(facts).unwrap_or_default();
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The gates of one evaluation, in order.
pub(crate) struct Gates(pub(crate) Vec<GateResult>);

impl Gates {
    /// Records `gate`: failing if there are problems, else waiting if anything is awaited,
    /// else passing with `ok`.
    pub(crate) fn push(
        &mut self,
        gate: Gate,
        problems: Vec<String>,
        waiting: Vec<String>,
        ok: String,
    ) {
        let (status, reason) = if !problems.is_empty() {
            (Status::Fail, problems.join("; "))
        } else if !waiting.is_empty() {
            (Status::Waiting, waiting.join("; "))
        } else {
            (Status::Pass, ok)
        };
        self.0.push(GateResult {
            gate,
            status,
            reason,
        });
    }

    /// The decision: allowed when there is a gate and every one passed, was overridden or
    /// only warns.
    pub(crate) fn decide(self, policy_digest: &str, facts: &Facts) -> Decision {
        let allowed = !self.0.is_empty()
            && self
                .0
                .iter()
                .all(|g| matches!(g.status, Status::Pass | Status::Overridden | Status::Warn));
        Decision {
            allowed,
            gates: self.0,
            policy_digest: policy_digest.to_owned(),
            input_digest: facts_digest(facts),
            engine: ENGINE.into(),
        }
    }
}

/// A Unix time as people read it (RFC 3339), or the number if it is out of range.
pub(crate) fn when(t: i64) -> String {
    custody_model::Timestamp::from_unix_seconds(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}
