//! Identities: API tokens for people and services, and the roles the policy gives them.
//!
//! A token is `cst_<id>_<secret>`. Only SHA-256 of the secret is stored (with its principal,
//! expiry and revocation); the token itself is shown once, when it is created. Creating and
//! revoking one are ledger events (without the secret).

/// The prefix of a data directory operator's principal (`local:USER`): only that
/// operator, acting on the data directory, holds such a name.
pub const LOCAL_PREFIX: &str = "local:";

use custody_model::{Authentication, Digest, Timestamp};
use custody_store::{Expect, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::{Actor, App, Once, event, new_id, own_scope, write};
use crate::attestations::sha256;
use crate::events::{EventBody, TokenCreated};
use crate::records::kind;
use crate::{AppError, AppResult};

mod permission;
mod revoke;
pub use permission::Permission;
pub(crate) use permission::{may_act_in, not_personal, why_not_personal};

/// The roles custody knows. `approver` may be scoped to one environment as
/// `approver:ENV`; the policy's `[roles]` table binds principals to them.
pub const ROLES: [&str; 8] = [
    "admin", "builder", "signer", "approver", "security", "deployer", "auditor", "viewer",
];

/// A stored API token (never the secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Its public id.
    pub id: String,
    /// Whom it authenticates.
    pub principal: String,
    /// SHA-256 of the secret.
    pub secret_digest: Digest,
    /// What it is for.
    pub description: String,
    /// Who created it, and when.
    pub created_by: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// Whether its principal created it for themselves, authenticated by a credential of
    /// their own: only then do approvals made with it count (absent in records made
    /// before this was kept: not personal).
    #[serde(default)]
    pub personal: bool,
    /// The token its principal made it with, when they made it for themselves with a
    /// token: revoking that one revokes this one, and it never outlives that one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// How many tokens deep a chain of tokens made with tokens may be (a chain is only ever
/// that long if someone keeps minting from the last): a longer one is refused when made.
const MAX_TOKEN_CHAIN: usize = 32;

/// A token as it is shown: everything but the secret's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Its public id.
    pub id: String,
    /// Whom it authenticates.
    pub principal: String,
    /// What it is for.
    pub description: String,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// Whether approvals made with it count (see [`TokenRecord::personal`]).
    #[serde(default)]
    pub personal: bool,
    /// The token it was made with (see [`TokenRecord::parent`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

impl From<&TokenRecord> for TokenInfo {
    fn from(t: &TokenRecord) -> TokenInfo {
        TokenInfo {
            id: t.id.clone(),
            principal: t.principal.clone(),
            description: t.description.clone(),
            created_by: t.created_by.clone(),
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            personal: t.personal,
            parent: t.parent.clone(),
        }
    }
}

/// A token to create (the body of `POST /api/v1/tokens`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Whom it authenticates.
    pub principal: String,
    /// How long it is valid: 90s, 30m, 24h, 90d (default 90d).
    #[serde(default = "ninety_days")]
    pub expires: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
}

fn ninety_days() -> String {
    "90d".into()
}

/// Who a request is, once its credential checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The principal.
    pub principal: String,
    /// How they authenticated (recorded with every event they cause).
    pub auth: Authentication,
    /// The roles the policy in force gives the principal.
    pub roles: Vec<String>,
}

impl Authenticated {
    /// This caller acting at `now`.
    pub fn actor(&self, now: Timestamp) -> AppResult<Actor> {
        Ok(Actor::new(self.principal.clone(), now)?.authenticated_by(self.auth.clone()))
    }

    /// Whether they may read what is confidential to everyone but auditors, admins and the
    /// people involved.
    pub fn privileged(&self) -> bool {
        self.roles.iter().any(|r| r == "auditor" || r == "admin")
    }
}

/// Constant-time equality of two digests (no early exit on the first difference).
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl<S: Store> App<S> {
    /// Creates a token for `principal`, valid for `valid_for_seconds`; returns its record
    /// and the token text, which is never stored and cannot be shown again. With an
    /// idempotency key a retry creates nothing and returns the first record without the
    /// text (`None`): the secret was shown once.
    pub async fn create_token(
        &self,
        actor: &Actor,
        request: &CreateToken,
        idempotency_key: Option<&str>,
    ) -> AppResult<(TokenRecord, Option<String>)> {
        let principal = request.principal.as_str();
        let description = request.description.as_str();
        let span = custody_policy::Span::parse(&request.expires)
            .map_err(|e| AppError::invalid(format!("expires: {e}")))?;
        let valid_for_seconds = i64::try_from(span.seconds()).unwrap_or(i64::MAX);
        let request = json!({"principal": principal, "valid_for_seconds": valid_for_seconds, "description": description, "actor": actor.principal});
        if let Some(key) = idempotency_key {
            if let Some((first, _)) = self
                .replayed::<TokenRecord>(&own_scope("token", actor), key, &request)
                .await?
            {
                return Ok((first, None));
            }
        }
        crate::limits::optional_text("description", description, crate::limits::MAX_DESCRIPTION)?;
        let principal: custody_model::Principal = principal
            .parse()
            .map_err(|e: custody_model::NameError| AppError::invalid(e.to_string()))?;
        // Anyone may create a token for themselves; only admins for someone else. A token
        // is personal when its holder made it while signed in with a credential of their
        // own: never one an admin made for them, nor one made with such a token.
        let own = principal.as_str() == actor.principal;
        if !own {
            self.permit(actor, Permission::Administer).await?;
            // `local:USER` is the operator of a data directory, who acts on it directly
            // (and may make a token of their own there): nobody else may hold that name.
            if principal.as_str().starts_with(LOCAL_PREFIX) {
                return Err(AppError::denied(format!(
                    "{principal} is the operator of a data directory, a name only that operator holds: they make their own token there (`custody token create --principal {principal}` on that machine)"
                )));
            }
            self.not_a_look_alike(&principal).await?;
        }
        let personal = own && actor.auth.as_ref().is_some_and(Authentication::personal);
        if valid_for_seconds <= 0 {
            return Err(AppError::invalid(
                "a token must be valid for a positive time",
            ));
        }
        let id = new_id("tok").replace('-', "");
        let secret = {
            use rand_core::RngCore;
            let mut bytes = [0u8; 32];
            rand_core::OsRng.fill_bytes(&mut bytes);
            hex::encode(bytes)
        };
        let expires_at = Timestamp::from_unix_seconds(
            actor.now.unix_seconds().saturating_add(valid_for_seconds),
        )
        .map_err(|e| AppError::invalid(e.to_string()))?;
        // A token made with a token for oneself never outlives the one it was made with
        // (it ends when that one does, if asked for longer), and is revoked with it, so a
        // short-lived or leaked token cannot be turned into a lasting one.
        let mut expires_at = expires_at;
        let mut parent = None;
        if let (true, Some(Authentication::Token { token, .. })) = (own, &actor.auth) {
            if let Some(made_with) = self.get::<TokenRecord>(kind::TOKEN, token).await? {
                expires_at = expires_at.min(made_with.value.expires_at);
                // The new token's chain: itself, the one it is made with, and that one's.
                let mut length = 2;
                let mut up = made_with.value.parent.clone();
                while let Some(id) = up {
                    length += 1;
                    if length > MAX_TOKEN_CHAIN {
                        return Err(AppError::invalid(format!(
                            "a token made with token {token} would end a chain of more than {MAX_TOKEN_CHAIN} tokens each made with the last\nhint: sign in with a credential of your own and make the token with that"
                        )));
                    }
                    up = self
                        .get::<TokenRecord>(kind::TOKEN, &id)
                        .await?
                        .and_then(|r| r.value.parent);
                }
                parent = Some(made_with.value.id);
            }
        }
        let record = TokenRecord {
            id: id.clone(),
            principal: principal.to_string(),
            secret_digest: sha256(secret.as_bytes()),
            description: description.into(),
            created_by: actor.principal.clone(),
            created_at: actor.now,
            expires_at,
            revoked_at: None,
            personal,
            parent: parent.clone(),
        };
        let once = idempotency_key.map(|key| Once {
            scope: own_scope("token", actor),
            key,
            request: &request,
        });
        let created = self
            .append_once(
                vec![event(
                    actor,
                    EventBody::TokenCreated(TokenCreated {
                        token: id.clone(),
                        principal: record.principal.clone(),
                        expires_at,
                        description: description.into(),
                        secret_digest: Some(record.secret_digest.clone()),
                        parent,
                        personal: Some(personal),
                    }),
                )?],
                vec![write(kind::TOKEN, &id, &record, Expect::Absent)?],
                once,
                &record,
            )
            .await?;
        match created {
            Ok(_) => Ok((record, Some(format!("cst_{id}_{secret}")))),
            // A concurrent twin with the same key won: its token stands, this one was never
            // written.
            Err((first, _)) => Ok((first, None)),
        }
    }

    /// Who else made the credential `actor` acts with, when someone did: an admin who minted
    /// their token and saw its secret, or, for a token its holder made with such a token,
    /// whoever made the first one up the chain that was not theirs. Kept with what they ask
    /// for, whose reviewer that person may never be (separation of duties).
    pub(crate) async fn credential_made_by(&self, actor: &Actor) -> AppResult<Option<String>> {
        let Some(
            auth @ Authentication::Token {
                token, personal, ..
            },
        ) = &actor.auth
        else {
            return Ok(None);
        };
        if *personal {
            return Ok(None);
        }
        if let Some(by) = auth.made_by_another(&actor.principal) {
            return Ok(Some(by.to_owned()));
        }
        let mut up = self
            .get::<TokenRecord>(kind::TOKEN, token)
            .await?
            .and_then(|t| t.value.parent);
        for _ in 0..MAX_TOKEN_CHAIN {
            let Some(id) = up else { break };
            let Some(made_with) = self.get::<TokenRecord>(kind::TOKEN, &id).await? else {
                break;
            };
            if made_with.value.created_by != actor.principal {
                return Ok(Some(made_with.value.created_by));
            }
            up = made_with.value.parent;
        }
        Ok(None)
    }

    /// Whether `record` still authenticates at `now`: not revoked, not expired, and neither
    /// is any token it was made with (so a token made with a token revoked in the very
    /// moment it was made ends too, whatever the revocation's cascade saw).
    async fn token_stands(&self, record: &TokenRecord, now: Timestamp) -> AppResult<()> {
        let mut token = std::borrow::Cow::Borrowed(record);
        for _ in 0..MAX_TOKEN_CHAIN {
            let id = &token.id;
            if token.revoked_at.is_some() {
                return Err(AppError::denied(if id == &record.id {
                    format!("token {id} was revoked")
                } else {
                    format!(
                        "token {} was made with token {id}, which was revoked",
                        record.id
                    )
                }));
            }
            if now >= token.expires_at {
                return Err(AppError::denied(format!(
                    "token {id} expired at {}",
                    token.expires_at
                )));
            }
            let Some(parent) = token.parent.clone() else {
                return Ok(());
            };
            token = std::borrow::Cow::Owned(
                self.get_hot_checked::<TokenRecord>(kind::TOKEN, &parent)
                    .await?
                    .ok_or_else(|| {
                        AppError::denied(format!(
                            "token {} was made with token {parent}, which no longer exists",
                            record.id
                        ))
                    })?
                    .value
                    .clone(),
            );
        }
        Err(AppError::denied(format!(
            "token {} was made with a chain of more than {MAX_TOKEN_CHAIN} tokens; create a new one",
            record.id
        )))
    }

    /// The tokens `viewer` may see (never their secrets): every token for someone who may
    /// audit access or manage others' tokens, else their own.
    pub async fn tokens_for(&self, viewer: &Authenticated) -> AppResult<Vec<TokenRecord>> {
        let mut tokens = self.tokens().await?;
        if !Permission::Audit.granted_to(&viewer.roles)
            && !Permission::Administer.granted_to(&viewer.roles)
        {
            tokens.retain(|t| t.principal == viewer.principal);
        }
        Ok(tokens)
    }

    /// Every token (never their secrets).
    pub async fn tokens(&self) -> AppResult<Vec<TokenRecord>> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.store.states(kind::TOKEN, &after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.key.clone();
            for r in page {
                out.push(serde_json::from_slice(r.value.as_bytes()).map_err(|e| {
                    AppError::Store(custody_store::StoreError::Corrupt(format!(
                        "token {}: {e}",
                        r.key
                    )))
                })?);
            }
        }
        Ok(out)
    }

    /// Checks a bearer token at `now`. Any failure is [`AppError::Denied`] with a reason
    /// fit for the caller (never whether the token id exists).
    pub async fn authenticate(&self, token: &str, now: Timestamp) -> AppResult<Authenticated> {
        let invalid = || {
            AppError::denied(
                "the token is not valid; ask an admin for a new one (`custody token create`)",
            )
        };
        let rest = token.strip_prefix("cst_").ok_or_else(invalid)?;
        let (id, secret) = rest.split_once('_').ok_or_else(invalid)?;
        if id.len() > 64 || secret.len() > 128 {
            return Err(invalid());
        }
        let stored = self
            .get_hot_checked::<TokenRecord>(kind::TOKEN, id)
            .await?
            .ok_or_else(invalid)?;
        let record = &stored.value;
        if !same(
            sha256(secret.as_bytes()).as_bytes(),
            record.secret_digest.as_bytes(),
        ) {
            return Err(invalid());
        }
        self.token_stands(record, now).await?;
        let auth = Authentication::Token {
            token: record.id.clone(),
            created_by: Some(record.created_by.clone()),
            personal: record.personal,
        };
        self.authenticated(&record.principal, auth, now).await
    }

    /// `principal` again, as a session started with `auth` says (a dashboard page): for an
    /// API token, only while that token still stands (the principal's, not revoked, not
    /// expired); [`AppError::Denied`] otherwise.
    pub async fn reauthenticate(
        &self,
        principal: &str,
        auth: &Authentication,
        now: Timestamp,
    ) -> AppResult<Authenticated> {
        if let Authentication::Token { token, .. } = auth {
            let stored = self
                .get_hot_checked::<TokenRecord>(kind::TOKEN, token)
                .await?
                .ok_or_else(|| AppError::denied(format!("token {token} no longer exists")))?;
            let record = &stored.value;
            if record.principal != principal {
                return Err(AppError::denied(format!(
                    "token {token} no longer authenticates {principal}"
                )));
            }
            self.token_stands(record, now).await?;
        }
        self.authenticated(principal, auth.clone(), now).await
    }

    /// `principal`, authenticated by `auth`, with the grants the policy in force gives it at
    /// `now` (as `role` or `role:environment`; ended grants are gone).
    pub async fn authenticated(
        &self,
        principal: &str,
        auth: Authentication,
        now: Timestamp,
    ) -> AppResult<Authenticated> {
        let policy = self.policy().await?;
        let roles = policy
            .grants_of(principal, now.unix_seconds())
            .map(custody_policy::Grant::key)
            .collect();
        Ok(Authenticated {
            principal: principal.into(),
            auth,
            roles,
        })
    }
}

/// Whether `id` is of the form custody gives a token's id (`tok` and 16 lowercase hex
/// digits, see [`App::create_token`]), so that text of any other form (a secret sent where
/// the id goes, say) is never taken for one.
pub fn is_token_id(id: &str) -> bool {
    id.len() == 19
        && id.starts_with("tok")
        && id[3..]
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl<S: Store> App<S> {
    /// A name an admin gives a token for someone else must not pass for another person's:
    /// plain ASCII (no full-width or zero-width look-alikes), and not another principal the
    /// policy's roles name but for its letters' case. (The holder's own token keeps the
    /// name they signed in with, which their identity provider vouches for.)
    async fn not_a_look_alike(&self, principal: &custody_model::Principal) -> AppResult<()> {
        let name = principal.as_str();
        if let Some(c) = name.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(AppError::invalid(format!(
                "principal {name:?} has the character {c:?} (U+{:04X}): a token an admin makes is for a plain ASCII name, so it cannot pass for someone else's\nhint: use the name the policy's [roles] give the person",
                u32::from(c)
            )));
        }
        let Ok(policy) = self.policy().await else {
            return Ok(()); // No policy yet: no names to be mistaken for.
        };
        if let Some(other) = policy
            .grants()
            .iter()
            .map(|g| g.principal.as_str())
            .find(|p| *p != name && p.eq_ignore_ascii_case(name))
        {
            return Err(AppError::invalid(format!(
                "principal {name:?} differs from {other:?}, whom the policy's [roles] name, only by case: one name could pass for the other\nhint: make the token for {other:?}, or pick a name that differs in more than case"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
