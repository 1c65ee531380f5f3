//! The access review: who holds which role, when each last used it, and which roles have
//! gone unused (least privilege means taking those away).
//!
//! A use is any recorded one: a request the access log allowed (through the API or the
//! dashboard, a sign-in included), or a ledger event the principal's action wrote (a
//! promotion requested, an approval signed with their key, a deploy reported), whether it
//! came through the server or the data directory.

use custody_model::Timestamp;
use custody_store::Store;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::events::EventBody;
use crate::{AppResult, HistoryFilter, Permission};

/// Ledger events read per page while looking for a principal's latest uses.
const PAGE: usize = 500;

/// One principal's hold on one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleHolding {
    /// The principal.
    pub principal: String,
    /// The role (as the policy's `[roles]` names it: `role` or `role:environment`).
    pub role: String,
    /// When the grant ends, if the policy says.
    #[serde(default)]
    pub until: Option<Timestamp>,
    /// The grant has ended: the principal no longer holds the role (remove it from the
    /// policy).
    #[serde(default)]
    pub ended: bool,
    /// The last request (in the access log) or recorded action (in the ledger) the role
    /// was needed for, if any, to the second (RFC 3339, whichever source it came from).
    pub last_used: Option<String>,
    /// Since when the principal has held it without a break, as far as the recorded
    /// policy versions show (the time of the oldest of the newest versions that all grant
    /// it; `None` when no version is recorded).
    #[serde(default)]
    pub held_since: Option<Timestamp>,
    /// True when it was not used within the review window, and was held for all of it
    /// (a grant made within the window and not used yet is new, not unused).
    pub unused: bool,
}

impl RoleHolding {
    /// Where it stands, for people: ended, unused for `window_days` (a candidate for
    /// removal), not used yet since it was granted within them, or in use; with until when
    /// it holds.
    pub fn status(&self, window_days: i64) -> String {
        let until = self
            .until
            .map(|u| format!(" (held until {})", u.to_second()))
            .unwrap_or_default();
        if self.ended {
            return match self.until {
                Some(u) => format!(
                    "ENDED at {}: no longer held; remove it from the policy",
                    u.to_second()
                ),
                None => "ENDED: no longer held; remove it from the policy".into(),
            };
        }
        if self.unused {
            return format!("UNUSED for {window_days} days: consider removing it{until}");
        }
        match (&self.last_used, self.held_since) {
            (None, Some(since)) => format!(
                "not used yet: granted {}, less than {window_days} days ago{until}",
                since.to_second()
            ),
            _ => format!("in use{until}"),
        }
    }
}

impl<S: Store> App<S> {
    /// Every role binding of the policy in force, with its last use in the access log;
    /// `unused` when not used in the `window_days` before `now`.
    pub async fn access_review(
        &self,
        now: Timestamp,
        window_days: i64,
    ) -> AppResult<Vec<RoleHolding>> {
        let policy = self.policy().await?;
        let mut holdings: Vec<RoleHolding> = policy
            .grants()
            .iter()
            .map(|g| RoleHolding {
                principal: g.principal.clone(),
                role: g.key(),
                until: g.until.and_then(|u| Timestamp::from_unix_seconds(u).ok()),
                ended: !g.live_at(now.unix_seconds()),
                last_used: None,
                held_since: None,
                unused: true,
            })
            .collect();
        self.held_since(&policy, &mut holdings).await?;
        // The store keeps each principal's latest time per outcome; a role was last used
        // at the latest of the permissions it grants.
        for used in self.store.last_uses().await? {
            let Some(name) = used.outcome.strip_prefix("allowed: ") else {
                continue;
            };
            // Signing in to the dashboard is a use of reading it.
            let name = if name == "sign in" {
                Permission::Read.name()
            } else {
                name
            };
            let Some(permission) = Permission::ALL.into_iter().find(|p| p.name() == name) else {
                continue;
            };
            let Ok(at) = used.at.parse::<Timestamp>() else {
                continue;
            };
            mark_used(&mut holdings, &used.principal, permission, at);
        }
        let cutoff = now
            .unix_seconds()
            .saturating_sub(window_days.saturating_mul(86_400));
        self.ledger_uses(&mut holdings, cutoff).await?;
        for h in &mut holdings {
            let held_all_window = h.held_since.is_none_or(|t| t.unix_seconds() <= cutoff);
            h.unused = held_all_window
                && h.last_used
                    .as_ref()
                    .and_then(|t| t.parse::<Timestamp>().ok())
                    .is_none_or(|t| t.unix_seconds() < cutoff);
        }
        Ok(holdings)
    }

    /// Fills in since when each holding has been held: walking the recorded policy
    /// versions from the one in force back, the time of the oldest in the unbroken run
    /// that grants it.
    async fn held_since(
        &self,
        policy: &std::sync::Arc<custody_policy::Policy>,
        holdings: &mut [RoleHolding],
    ) -> AppResult<()> {
        let versions = self.policy_history(policy).await?;
        for h in holdings.iter_mut() {
            for (_, at, version) in versions.iter().rev() {
                let grants = version
                    .grants()
                    .iter()
                    .any(|g| g.principal == h.principal && g.key() == h.role);
                if !grants {
                    break;
                }
                h.held_since = Some(*at);
            }
        }
        Ok(())
    }

    /// Marks each holding used at its principal's latest ledger event that needed the role,
    /// reading each principal's events newest first back to `cutoff` (or until every role
    /// they hold has a use there).
    async fn ledger_uses(&self, holdings: &mut [RoleHolding], cutoff: i64) -> AppResult<()> {
        let since = Timestamp::from_unix_seconds(cutoff).ok();
        let mut principals: Vec<String> = holdings.iter().map(|h| h.principal.clone()).collect();
        principals.sort();
        principals.dedup();
        for principal in principals {
            let mut before = None;
            loop {
                let page = self
                    .history(&HistoryFilter {
                        principal: Some(principal.clone()),
                        since,
                        before,
                        limit: PAGE,
                        ..HistoryFilter::default()
                    })
                    .await?;
                for entry in page.iter().rev() {
                    if entry.event.actor != principal {
                        continue;
                    }
                    if let Some(permission) = exercised(&entry.event.body, &principal) {
                        mark_used(holdings, &principal, permission, entry.event.at);
                    }
                }
                let settled = holdings
                    .iter()
                    .filter(|h| h.principal == principal)
                    .all(|h| {
                        h.last_used
                            .as_ref()
                            .and_then(|t| t.parse::<Timestamp>().ok())
                            .is_some_and(|t| t.unix_seconds() >= cutoff)
                    });
                match page.first() {
                    Some(first) if page.len() == PAGE && !settled => before = Some(first.index),
                    _ => break,
                }
            }
        }
        Ok(())
    }
}

/// Records a use of `permission` by `principal` at `at` on each of their holdings that
/// grants it, if it is later than the one seen.
fn mark_used(holdings: &mut [RoleHolding], principal: &str, permission: Permission, at: Timestamp) {
    for h in holdings
        .iter_mut()
        .filter(|h| h.principal == principal && permission.granted_to_role(&h.role))
    {
        let later = h
            .last_used
            .as_ref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_none_or(|seen| at > seen);
        if later {
            h.last_used = Some(at.to_second().to_string());
        }
    }
}

/// The permission the actor of a ledger event used to write it, if the event says which
/// role they acted in.
fn exercised(body: &EventBody, actor: &str) -> Option<Permission> {
    Some(match body {
        EventBody::PromotionRequested(_) | EventBody::ExceptionRequested(_) => Permission::Promote,
        EventBody::ApprovalRecorded(_)
        | EventBody::ExceptionReviewed(_)
        | EventBody::ExceptionRevoked(_) => Permission::Review,
        EventBody::DeployReported(_) | EventBody::RolledBack(_) => Permission::Deploy,
        EventBody::PolicyProposed(_)
        | EventBody::ProposalReviewed(_)
        | EventBody::PolicyApplied(_) => Permission::Policy,
        EventBody::ArtifactRegistered(_) | EventBody::ArtifactRebuilt(_) => Permission::Register,
        EventBody::EvidenceAttached(_) => Permission::Attest,
        EventBody::ReleaseCreated(_) => Permission::Release,
        EventBody::TokenCreated(t) if t.principal != actor => Permission::Administer,
        EventBody::TokenRevoked(t) if t.principal != actor => Permission::Administer,
        // Making or revoking one's own token, like decisions, certifications and alerts,
        // exercises no role of its own: every role may.
        _ => return None,
    })
}
