//! Separation of duties outside a decision: who may review a promotion (interim: see the
//! approval rule in evaluate.rs, which this must agree with).

use crate::{Decision, Facts, Policy, Status};

impl Decision {
    /// Whether this decision ends its promotion: a rejection, or a break-glass the policy
    /// does not allow (a failed `approvals` or `break-glass` gate).
    pub fn ends_promotion(&self) -> bool {
        self.gates
            .iter()
            .any(|g| (g.gate == "approvals" || g.gate == "break-glass") && g.status == Status::Fail)
    }
}

/// Whether `who` may review the promotion `facts` describe: not its requester, not a
/// builder of an artifact of the release, not the release's signer, and holding a role
/// the environment's approval rule names. `Err` says why not.
pub fn may_review(
    policy: &Policy,
    facts: &Facts,
    who: &str,
    _now: custody_model::Timestamp,
) -> Result<(), String> {
    if who == facts.requested_by {
        return Err("they requested the promotion".into());
    }
    if facts.release.artifacts.iter().any(|a| a.built_by == who) {
        return Err("they built an artifact of the release".into());
    }
    if facts.release.signed_by == who {
        return Err("they signed the release".into());
    }
    let roles = policy
        .environment(&facts.environment)
        .and_then(|e| e.approvals.as_ref())
        .map(|r| r.roles.clone())
        .unwrap_or_default();
    if roles.is_empty() {
        return Err(format!(
            "environment {} names no approver roles",
            facts.environment
        ));
    }
    if !policy
        .roles_of(who)
        .iter()
        .any(|r| roles.iter().any(|x| x == r))
    {
        return Err(format!("they hold none of the roles {roles:?}"));
    }
    Ok(())
}
