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
    /// The role (as the policy's `[roles]` names it).
    pub role: String,
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
            .role_bindings()
            .map(|(role, principal)| RoleHolding {
                principal: principal.to_owned(),
                role: role.to_owned(),
                last_used: None,
                unused: true,
            })
            .collect();
        let mut after = 0;
        loop {
            let page = self.store.access_log(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for record in page {
                let Some(used) = record.entry.outcome.strip_prefix("allowed: ") else {
                    continue;
                };
                let Some(permission) = Permission::ALL.into_iter().find(|p| p.name() == used)
                else {
                    continue;
                };
                for h in holdings
                    .iter_mut()
                    .filter(|h| h.principal == record.entry.principal)
                {
                    if permission.granted_to_role(&h.role) {
                        h.last_used = Some(record.entry.at.clone());
                    }
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
