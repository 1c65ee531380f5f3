//! Separation of duties, decided in one place: who may review a promotion (approve it,
//! reject it, or review a break-glass after the fact), and how each recorded review stands.
//!
//! Invariant: [`may_review`] is the only rule. A reviewer did not request the promotion
//! (nor make the token someone else requested it with), build an artifact of the release
//! or sign it, and holds — in that environment, at that
//! time — one of the roles the environment's approvals rule names. The approvals gate
//! applies it to approvals and rejections alike, so a rejection ends a promotion only when
//! it comes from someone who could have approved it.

use crate::decision::when;
use crate::facts::Facts;
use crate::policy::{Approvals, Policy};
use crate::roles::{Role, names};

/// Who reviews a promotion into an environment without an approvals rule (a break-glass
/// into it still needs someone else's review after the fact).
pub const DEFAULT_REVIEWERS: [Role; 2] = [Role::Approver, Role::Security];

/// Why someone may not review a promotion. Its text completes "`who` (…)" in reasons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotEligible {
    /// They requested the promotion (or broke the glass).
    #[error("requested the promotion")]
    RequestedPromotion,
    /// They made the token someone else requested the promotion with.
    #[error("made the token the promotion was requested with")]
    MadeRequestersToken,
    /// They registered an artifact of the release.
    #[error("built an artifact of the release")]
    BuiltArtifact,
    /// They created (signed) the release.
    #[error("signed the release")]
    SignedRelease,
    /// They hold none of the reviewing roles anywhere.
    #[error("holds none of the roles {:?}", names(.0))]
    NoRole(Vec<Role>),
    /// They hold a reviewing role, but scoped to other environments.
    #[error("holds the roles {roles:?} only for other environments than {env}", roles = names(.0), env = .1)]
    OtherEnvironment(Vec<Role>, String),
    /// Their grant of a reviewing role here has ended.
    #[error("their grant of {role} for {environment} ended at {}", when(*.until))]
    GrantEnded {
        /// The role.
        role: Role,
        /// The environment.
        environment: String,
        /// When the latest such grant ended, Unix seconds.
        until: i64,
    },
    /// The policy declares no such environment.
    #[error("there is no environment {0:?} in the policy")]
    UnknownEnvironment(String),
}

/// Whether `who` may review the promotion `facts` describe at `now` (Unix seconds): approve
/// it, reject it, or review it after a break-glass. Not the requester, a builder of one of
/// its artifacts or the release's signer; holding, in the target environment at `now`, a
/// role its approvals rule names (else [`DEFAULT_REVIEWERS`]). A grant scoped to that
/// environment counts; one scoped to another does not.
pub fn may_review(policy: &Policy, facts: &Facts, who: &str, now: i64) -> Result<(), NotEligible> {
    let Some(env) = policy.environment(&facts.environment) else {
        return Err(NotEligible::UnknownEnvironment(facts.environment.clone()));
    };
    let (roles, legacy) = env
        .approvals
        .as_ref()
        .map_or((&DEFAULT_REVIEWERS[..], &[][..]), |rule| {
            (&rule.roles[..], &rule.legacy_roles[..])
        });
    eligible(policy, facts, who, roles, legacy, now)
}

fn eligible(
    policy: &Policy,
    facts: &Facts,
    who: &str,
    roles: &[Role],
    legacy: &[String],
    now: i64,
) -> Result<(), NotEligible> {
    let release = &facts.release;
    let environment = facts.environment.as_str();
    if who == facts.requested_by {
        return Err(NotEligible::RequestedPromotion);
    }
    if facts.requested_through.as_deref() == Some(who) {
        return Err(NotEligible::MadeRequestersToken);
    }
    if release.artifacts.iter().any(|a| a.built_by == who) {
        return Err(NotEligible::BuiltArtifact);
    }
    if release.signed_by == who {
        return Err(NotEligible::SignedRelease);
    }
    if roles
        .iter()
        .any(|r| policy.holds(who, *r, Some(environment), now))
        || policy.holds_legacy(who, legacy)
    {
        return Ok(());
    }
    // Not held: say which way, so that the person can ask for the right grant.
    let mut theirs = policy
        .all_grants_of(who)
        .iter()
        .filter(|g| roles.contains(&g.role));
    let ended = theirs
        .clone()
        .filter(|g| g.covers(Some(environment)))
        .filter_map(|g| Some((g.until?, g.role)))
        .max();
    Err(match ended {
        Some((until, role)) => NotEligible::GrantEnded {
            role,
            environment: environment.to_owned(),
            until,
        },
        None if theirs.next().is_some() => {
            NotEligible::OtherEnvironment(roles.to_vec(), environment.to_owned())
        }
        None => NotEligible::NoRole(roles.to_vec()),
    })
}

/// How each recorded approval stands against an approval rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// It counts towards the quorum.
    Counted,
    /// It is a live rejection by an eligible reviewer.
    Rejects,
    /// It does not count, and why.
    Ignored(String),
}

/// The standing of every approval in `facts`, in order, under the target environment's
/// approval rule (`None` if the environment needs no approvals or does not exist).
pub fn approval_standings(policy: &Policy, facts: &Facts) -> Option<Vec<(String, Standing)>> {
    let rule = policy.environment(&facts.environment)?.approvals.as_ref()?;
    Some(
        facts
            .approvals
            .iter()
            .zip(standings(policy, facts, rule))
            .map(|(a, s)| (a.id.clone(), s))
            .collect(),
    )
}

/// The standing of each of `facts.approvals`, in order.
fn standings(policy: &Policy, facts: &Facts, rule: &Approvals) -> Vec<Standing> {
    let mut counted: Vec<&str> = Vec::new();
    let mut out = Vec::with_capacity(facts.approvals.len());
    for a in &facts.approvals {
        let expires = a.expires_at.min(rule.expires.after(a.at));
        let ignored = |why: String| Standing::Ignored(format!("{} ({why})", a.by));
        // Eligibility is checked before the verdict: a rejection from someone who could
        // not have approved is no rejection.
        let standing = if a.superseded {
            ignored("superseded by a later decision".into())
        } else if let Some(why) = &a.key_refused {
            ignored(why.clone())
        } else if rule.signed && a.approve && !a.signed {
            // (A rejection stops a promotion and loosens nothing: it counts unsigned.)
            ignored(
                "not signed with an enrolled personal key, and this environment counts only signed approvals; approve again with --sign-key"
                    .into(),
            )
        } else if a.release_digest != facts.release.digest
            || a.environment != facts.environment
            || a.policy_digest != policy.digest
        {
            ignored("given for another release, environment or policy version".into())
        } else if facts.now >= expires {
            ignored(format!("expired at {}", when(expires)))
        } else if let Err(why) = eligible(
            policy,
            facts,
            &a.by,
            &rule.roles,
            &rule.legacy_roles,
            facts.now,
        ) {
            ignored(why.to_string())
        } else if !a.approve {
            Standing::Rejects
        } else if counted.contains(&a.by.as_str()) {
            ignored("already counted".into())
        } else {
            counted.push(&a.by);
            Standing::Counted
        };
        out.push(standing);
    }
    out
}

/// The approvals gate: (problems, waiting, the reason it passes).
pub(crate) fn approvals_gate(
    policy: &Policy,
    facts: &Facts,
    rule: &Approvals,
) -> (Vec<String>, Vec<String>, String) {
    let mut counted = Vec::new();
    let mut ignored = Vec::new();
    let mut problems = Vec::new();
    for (a, standing) in facts.approvals.iter().zip(standings(policy, facts, rule)) {
        match standing {
            Standing::Counted => counted.push(a.by.as_str()),
            Standing::Rejects => problems.push(format!("rejected by {}", a.by)),
            Standing::Ignored(why) => ignored.push(why),
        }
    }
    let quorum = usize::try_from(rule.quorum).unwrap_or(usize::MAX);
    let mut waiting = Vec::new();
    if problems.is_empty() && counted.len() < quorum {
        let mut w = format!("{} of {} approvals", counted.len(), rule.quorum);
        if !ignored.is_empty() {
            w.push_str(&format!("; not counted: {}", ignored.join(", ")));
        }
        waiting.push(w);
    }
    let ok = format!("approved by {}", counted.join(", "));
    (problems, waiting, ok)
}
