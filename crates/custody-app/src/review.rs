//! The access review: who holds which role, when each last used it, and which roles have
//! gone unused (least privilege means taking those away).

use custody_model::Timestamp;
use custody_store::Store;
use serde::{Deserialize, Serialize};

use crate::AppResult;
use crate::Permission;
use crate::app::App;

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
    /// The last request the role was needed for, if any is in the access log.
    pub last_used: Option<String>,
    /// True when it was not used within the review window.
    pub unused: bool,
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
                unused: true,
            })
            .collect();
        // The store keeps each principal's latest time per outcome; a role was last used
        // at the latest of the permissions it grants.
        for used in self.store.last_uses().await? {
            let Some(name) = used.outcome.strip_prefix("allowed: ") else {
                continue;
            };
            let Some(permission) = Permission::ALL.into_iter().find(|p| p.name() == name) else {
                continue;
            };
            let Ok(at) = used.at.parse::<Timestamp>() else {
                continue;
            };
            for h in holdings
                .iter_mut()
                .filter(|h| h.principal == used.principal && permission.granted_to_role(&h.role))
            {
                let later = h
                    .last_used
                    .as_ref()
                    .and_then(|t| t.parse::<Timestamp>().ok())
                    .is_none_or(|seen| at > seen);
                if later {
                    h.last_used = Some(used.at.clone());
                }
            }
        }
        let cutoff = now
            .unix_seconds()
            .saturating_sub(window_days.saturating_mul(86_400));
        for h in &mut holdings {
            h.unused = h
                .last_used
                .as_ref()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .is_none_or(|t| t.unix_seconds() < cutoff);
        }
        Ok(holdings)
    }
}
