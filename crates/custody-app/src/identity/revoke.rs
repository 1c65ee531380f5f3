//! Revoking a token, and with it every token made with it.

use custody_store::{Expect, Store};

use super::{Permission, TokenRecord};
use crate::app::{Actor, App, event, write};
use crate::events::{EventBody, TokenRevoked};
use crate::records::kind;
use crate::{AppError, AppResult};

/// How many more times a revocation looks for descendants made while it was written.
const CASCADE_ROUNDS: usize = 4;

/// A token revoked, and whether descendants were revoked with it.
struct Revoked {
    token: TokenRecord,
    cascaded: bool,
}

impl<S: Store> App<S> {
    /// Revokes a token (it stops working at once; the record stays), and with it every token
    /// made with it, and every token made with those: a leaked token's offspring end with
    /// it. Its holder may revoke their own; an admin anyone's. Returns the token's record.
    pub async fn revoke_token(&self, actor: &Actor, id: &str) -> AppResult<TokenRecord> {
        let record = self.revoke_with_offspring(actor, id).await?;
        // A token made with it while the revocation was written (its request authenticated
        // just before) is missed by that scan: scan again until none stands, so the record
        // is complete. (One made after the last scan still never works: a token stands only
        // while its whole chain does.)
        for _ in 0..CASCADE_ROUNDS {
            if !self.revoke_with_offspring(actor, id).await?.cascaded {
                break;
            }
        }
        Ok(record.token)
    }

    /// [`App::revoke_token`]'s one append: the token, if it stands, and every descendant
    /// that does, and whether there was any such descendant.
    async fn revoke_with_offspring(&self, actor: &Actor, id: &str) -> AppResult<Revoked> {
        self.retrying(|| async {
            // Someone who may not manage others' tokens learns nothing of them: another's
            // token and one that does not exist get the same answer (no probing for ids).
            let found = self.get::<TokenRecord>(kind::TOKEN, id).await?;
            let theirs = found
                .as_ref()
                .is_some_and(|r| r.value.principal == actor.principal);
            if !theirs && self.permit(actor, Permission::Administer).await.is_err() {
                return Err(AppError::not_found(format!(
                    "{} has no token {id}; `custody token list` shows yours (revoking another's token takes the admin role)",
                    actor.principal
                )));
            }
            let mut record = found.ok_or_else(|| AppError::not_found(format!("no token {id}")))?;
            let mut events = Vec::new();
            let mut writes = Vec::new();
            if record.value.revoked_at.is_none() {
                record.value.revoked_at = Some(actor.now);
                events.push(revoked(actor, &record.value, None)?);
                writes.push(write(
                    kind::TOKEN,
                    id,
                    &record.value,
                    Expect::Version(record.version),
                )?);
            }
            // Offspring still standing, even when this one was revoked before (a token made
            // with it in the meantime, or one revoked before the cascade existed).
            let mut cascaded = false;
            for mut child in self.offspring(id).await? {
                if child.value.revoked_at.is_none() {
                    child.value.revoked_at = Some(actor.now);
                    events.push(revoked(actor, &child.value, Some(id))?);
                    let key = child.value.id.clone();
                    let expect = Expect::Version(child.version);
                    writes.push(write(kind::TOKEN, &key, &child.value, expect)?);
                    cascaded = true;
                }
            }
            if !events.is_empty() {
                self.append(events, writes, None).await?;
            }
            Ok(Revoked {
                token: record.value,
                cascaded,
            })
        })
        .await
    }

    /// Every token made with `id`, directly or through others it begot.
    async fn offspring(&self, id: &str) -> AppResult<Vec<crate::app::Versioned<TokenRecord>>> {
        let mut children: std::collections::HashMap<String, Vec<String>> = Default::default();
        for token in self.tokens().await? {
            if let Some(parent) = token.parent {
                children.entry(parent).or_default().push(token.id);
            }
        }
        let mut found = Vec::new();
        let mut next = vec![id.to_owned()];
        while let Some(parent) = next.pop() {
            for child in children.remove(&parent).unwrap_or_default() {
                if let Some(record) = self.get::<TokenRecord>(kind::TOKEN, &child).await? {
                    found.push(record);
                }
                next.push(child);
            }
        }
        Ok(found)
    }
}

/// The `token.revoked` event for `token`, revoked by `actor` (because `cascade_from` was).
fn revoked(
    actor: &Actor,
    token: &TokenRecord,
    cascade_from: Option<&str>,
) -> AppResult<custody_model::CanonicalJson> {
    event(
        actor,
        EventBody::TokenRevoked(TokenRevoked {
            token: token.id.clone(),
            principal: token.principal.clone(),
            cascade_from: cascade_from.map(str::to_owned),
        }),
    )
}
