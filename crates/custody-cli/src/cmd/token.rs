//! `custody token`: API tokens for people and services, on the local data directory or
//! through a server (`--server`, with an admin's token).

use clap::{Args, Subcommand};
use custody_app::CreateToken;
use serde_json::json;

use crate::Outcome;
use crate::context::{ReadTarget, Recording, Target};
use crate::custody::Custody;
use crate::input::{print_json, print_line};

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create an API token for a principal and print it (once: only its hash is stored).
    /// What it may do follows from the roles the policy's [roles] gives the principal.
    ///
    /// Example: custody token create --principal argo --expires 90d
    /// Through a server (an admin's token): custody token create --principal argo --server URL
    Create(CreateArgs),
    /// List tokens: id, principal, expiry, revocation, the token each was made with (never
    /// the secret). Through a server each person sees their own; auditors and admins see
    /// every token.
    List(ListArgs),
    /// Revoke a token: it stops working at once (on a server that did not revoke it
    /// itself, within 50 ms), and so does every token its principal made with it, and
    /// every token made with those.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Whom the token authenticates.
    #[arg(long = "principal", value_name = "PRINCIPAL")]
    subject: String,
    /// How long it is valid: 90s, 30m, 24h, 90d.
    #[arg(long, default_value = "90d")]
    expires: String,
    /// What it is for (shown in `token list`).
    #[arg(long, default_value = "")]
    description: String,
    #[command(flatten)]
    recording: Recording,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    target: ReadTarget,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The token id (`tok…`, from `token list`), or the token's whole text as a leak finds
    /// it (`cst_tok…_…`): only its id is sent, never the secret.
    id: String,
    #[command(flatten)]
    target: Target,
}

pub(crate) fn run(command: TokenCommand) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        match command {
            TokenCommand::Create(a) => {
                let custody = Custody::open(&a.recording.target).await?;
                let request = CreateToken {
                    principal: a.subject.clone(),
                    expires: a.expires.clone(),
                    description: a.description.clone(),
                };
                let created = custody.create_token(&request, a.recording.key()).await?;
                let record = &created.record;
                if a.recording.json {
                    print_json(
                        &json!({"token": created.token, "id": record.id, "principal": record.principal, "expires_at": record.expires_at.to_string()}),
                    );
                } else if let Some(token) = &created.token {
                    print_line(token);
                    eprintln!(
                        "token {} for {} until {}: shown once, store it as a secret",
                        record.id,
                        record.principal,
                        crate::input::when(record.expires_at)
                    );
                    if let (Some(parent), true) = (&record.parent, shortened(&a.expires, record)) {
                        eprintln!(
                            "note: it ends sooner than --expires {} asked: a token made with a token never outlives it, and {parent}, the one it was made with, ends then (and revoking {parent} revokes it)",
                            a.expires
                        );
                    }
                } else {
                    eprintln!(
                        "token {} for {} was already created with this idempotency key; its text was shown then (revoke it and create another if it is lost)",
                        record.id, record.principal
                    );
                }
                Ok(Outcome::Ok)
            }
            TokenCommand::List(a) => {
                let tokens = Custody::reading(&a.target).await?.tokens().await?;
                if a.json {
                    print_json(&json!(tokens));
                } else {
                    for t in &tokens {
                        print_line(&format!(
                            "{}  {:20} expires {}{}{}  {}",
                            t.id,
                            t.principal,
                            crate::input::when(t.expires_at),
                            t.revoked_at
                                .map(|r| format!(", revoked {}", crate::input::when(r)))
                                .unwrap_or_default(),
                            t.parent
                                .as_ref()
                                .map(|p| format!(", made with {p}"))
                                .unwrap_or_default(),
                            // One line per token, whatever its description holds.
                            crate::input::printable(&t.description, false)
                        ));
                    }
                }
                Ok(Outcome::Ok)
            }
            TokenCommand::Revoke(a) => {
                let t = Custody::open(&a.target)
                    .await?
                    .revoke_token(&token_id(&a.id)?)
                    .await?;
                print_line(&format!("token {} of {} is revoked", t.id, t.principal));
                Ok(Outcome::Ok)
            }
        }
    })
}

/// The id of a token given by its id or by its text as it may be pasted (`cst_<id>_…`,
/// in any case, quoted, after `Bearer`, without `cst_`). Anything else is refused here,
/// before anything is sent: a secret must never travel where an id goes.
fn token_id(given: &str) -> anyhow::Result<String> {
    let text = given
        .trim()
        .trim_matches(['"', '\''])
        .trim()
        .to_ascii_lowercase();
    let text = text
        .strip_prefix("bearer")
        .map_or(&text[..], str::trim_start);
    let text = text.strip_prefix("cst_").unwrap_or(text);
    let id = text.split('_').next().unwrap_or_default();
    anyhow::ensure!(
        custody_app::is_token_id(id),
        "that is neither a token id (tok and 16 hex digits, as `custody token list` shows) nor a token's text (cst_tok…_…); nothing was sent"
    );
    Ok(id.to_owned())
}

/// Whether `record` ends well before the `expires` it was asked for (a minute of slack for
/// the clocks of client and server).
fn shortened(expires: &str, record: &custody_app::TokenInfo) -> bool {
    custody_policy::Span::parse(expires).is_ok_and(|span| {
        let asked = record
            .created_at
            .unix_seconds()
            .saturating_add(i64::try_from(span.seconds()).unwrap_or(i64::MAX));
        record.expires_at.unix_seconds() < asked.saturating_sub(60)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_named_by_its_id_however_it_was_pasted() {
        let id = "tok0123456789abcdef";
        let text = format!("cst_{id}_{}", "5".repeat(64));
        for given in [
            id.to_owned(),
            text.clone(),
            text.to_uppercase(),
            format!("  {text}\n"),
            format!("\"{text}\""),
            format!("Bearer {text}"),
            text.trim_start_matches("cst_").to_owned(),
        ] {
            assert_eq!(token_id(&given).unwrap(), id, "{given:?}");
        }
        for given in [
            "5".repeat(64),
            "tok0123".to_owned(),
            String::new(),
            "cst_x_y".into(),
        ] {
            assert!(token_id(&given).is_err(), "{given:?}");
        }
    }
}
