//! custody's pipeline policy: `custody.toml` compiled into gates, and the pure evaluation of
//! a promotion against them.
//!
//! ```text
//! Bundle (custody.toml + key files) ──compile──▶ Policy ──evaluate(policy, facts)──▶ Decision
//!                                                       ──evaluate_standing(…)────▶ Decision
//!                                                       ──may_review(…, who, now)─▶ Ok / why not
//! ```
//!
//! It does no I/O and never reads the clock: callers pass the bundle's files as text and
//! the time as a Unix second, in [`Facts`] or as an argument. It makes no signature checks
//! either: the application verifies envelopes against the policy's keys while gathering the
//! facts, and records the outcome there.
//!
//! Invariants:
//! - Evaluation is pure. It reads only the compiled policy and the facts, so a decision
//!   replays to the same outcome from its recorded inputs; the decision records the policy
//!   digest, the facts' digest and [`ENGINE`], and serialises as recorded decisions did.
//! - What a policy says is closed and bounded when it compiles: roles are custody's
//!   ([`Role`]), scoped only where scoping means something and only to declared
//!   environments; every duration is at most [`Span::MAX`]; naming rules match whole
//!   names; repository patterns are parsed ([`RepoPattern`]). Mistakes are errors at
//!   their line, never a policy that means something else.
//! - Holding a role is a function of time: [`Policy::holds`] takes `now`, and a grant may
//!   end (`{ principal = "carol", until = "…" }`).
//! - Separation of duties is one rule, [`may_review`], for approvals, rejections and
//!   reviews after a break-glass.
//!
//! Builders' `source_repos` are patterns of normalised URLs: `scheme://host[:port]/a/b`,
//! where a path segment `*` stands for exactly one segment and a last segment `**` for one
//! or more; the host is written in full. URLs are compared with the scheme and host
//! lowercased and default ports dropped, and any URL with a `.` or `..` segment, an empty
//! segment, a backslash, an encoded `.`, `/` or `\`, userinfo, a query or a fragment
//! matches nothing (see [`RepoUrl`]).
//!
//! ```
//! use custody_policy::{Bundle, Role, compile};
//!
//! let mut bundle = Bundle::default();
//! bundle.files.insert("custody.toml".into(), r#"
//! version = 1
//! [roles]
//! approver = ["alice"]
//! "approver:production" = [{ principal = "carol", until = "2027-01-31T00:00:00Z" }]
//!
//! [[environment]]
//! name = "staging"
//! [[environment]]
//! name = "production"
//! after = "staging"
//! soak = "24h"
//! approvals = { quorum = 1, roles = ["approver"] }
//! "#.into());
//! let policy = compile(&bundle).unwrap();
//! let jan_2027 = 1_798_761_600; // 2027-01-01T00:00:00Z
//! assert!(policy.holds("carol", Role::Approver, Some("production"), jan_2027));
//! assert!(!policy.holds("carol", Role::Approver, Some("staging"), jan_2027));
//! assert!(!policy.holds("carol", Role::Approver, Some("production"), jan_2027 + 31 * 86_400));
//!
//! bundle.files.insert("custody.toml".into(), r#"
//! version = 1
//! [roles]
//! "admin:readonly" = ["eve"]
//! [[environment]]
//! name = "production"
//! "#.into());
//! let errors = compile(&bundle).unwrap_err().to_string();
//! assert!(errors.starts_with("custody.toml:4:1: \"admin:readonly\": role admin cannot be scoped"));
//! ```

mod compile;
mod compile_env;
mod content;
mod decision;
mod diff;
mod diff_rules;
mod duration;
mod evaluate;
mod facts;
mod governance;
mod keys;
mod policy;
mod repo;
mod report;
mod review;
mod roles;
mod rules;

pub use compile::{
    Bundle, MAX_POLICY_FILE, POLICY_FILE, PolicyError, PolicyErrors, compile, compile_recorded,
};
pub use content::WAIVED;
pub use decision::{Decision, ENGINE, Gate, GateResult, OVERRIDABLE, Status, facts_digest};
pub use diff::{Change, Direction, diff, loosens};
pub use duration::Span;
pub use evaluate::{evaluate, evaluate_standing};
pub use facts::{
    ApprovalFacts, ArtifactFacts, EvidenceFacts, ExceptionFacts, Facts, PreviousFacts,
    ProvenanceFacts, ReleaseFacts, WaivedFinding,
};
pub use governance::{Governance, PersonKey};
pub use keys::{KeyPurpose, NamedKey};
pub use policy::{Approvals, Builder, Environment, Freeze, Policy};
pub use repo::{RepoPattern, RepoUrl, RepoUrlError};
pub use report::{
    FindingFacts, LicenceFact, LicenceFacts, MAX_LISTED_FINDINGS, MAX_NAMED_EXAMPLES,
    MAX_PACKAGES_PER_LICENCE, ReportFacts, SeverityCount, TestFacts, VulnerabilityFact,
    VulnerabilityFacts,
};
pub use review::{DEFAULT_REVIEWERS, NotEligible, Standing, approval_standings, may_review};
pub use roles::{Grant, Role, UnknownRole};
pub use rules::{
    EvidenceRules, FindingRule, LicenceRule, StandingMode, TestRule, VulnerabilityRule,
    severity_name,
};

/// Whether `c` is an invisible formatting character that can make a name read as another
/// (bidirectional overrides and isolates, zero-width spaces and joiners, the word joiner
/// and invisible operators, the byte-order mark, the soft hyphen): refused in names, labels
/// and reasons people read.
pub fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}
