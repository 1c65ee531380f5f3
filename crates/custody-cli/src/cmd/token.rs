//! `custody token`: API tokens for people and services.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::Outcome;
use crate::context::{ActorArgs, InstanceArgs, settle};
use crate::input::{print_json, print_line};

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create an API token for a principal and print it (once: only its hash is stored).
    /// What it may do follows from the roles the policy's [roles] gives the principal.
    ///
    /// Example: custody token create --principal argo --expires 90d --as alice
    Create(CreateArgs),
    /// List tokens: id, principal, expiry, revocation (never the secret).
    List(ListArgs),
    /// Revoke a token; it stops working at once.
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
    instance: InstanceArgs,
    #[command(flatten)]
    actor: ActorArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The token id (`tok…`, from `token list`).
    id: String,
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(flatten)]
    actor: ActorArgs,
}

pub(crate) fn run(command: TokenCommand) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        match command {
            TokenCommand::Create(a) => {
                let span = custody_policy::Span::parse(&a.expires).map_err(anyhow::Error::msg)?;
                let app = a.instance.app().await?;
                let seconds = i64::try_from(span.seconds()).unwrap_or(i64::MAX);
                let result = app
                    .create_token(&a.actor.actor()?, &a.subject, seconds, &a.description)
                    .await;
                settle(result, |(record, token)| {
                    if a.json {
                        print_json(
                            &json!({"token": token, "id": record.id, "principal": record.principal, "expires_at": record.expires_at.to_string()}),
                        );
                    } else {
                        print_line(&token);
                        eprintln!(
                            "token {} for {} until {}: shown once, store it as a secret",
                            record.id, record.principal, record.expires_at
                        );
                    }
                })
            }
            TokenCommand::List(a) => {
                let app = a.instance.app().await?;
                let tokens = app.tokens().await?;
                if a.json {
                    print_json(&json!(
                        tokens
                            .iter()
                            .map(|t| json!({
                                "id": t.id, "principal": t.principal, "description": t.description,
                                "created_by": t.created_by, "created_at": t.created_at.to_string(),
                                "expires_at": t.expires_at.to_string(),
                                "revoked_at": t.revoked_at.map(|r| r.to_string()),
                            }))
                            .collect::<Vec<_>>()
                    ));
                } else {
                    for t in &tokens {
                        print_line(&format!(
                            "{}  {:20} expires {}{}  {}",
                            t.id,
                            t.principal,
                            t.expires_at,
                            t.revoked_at
                                .map(|r| format!(", revoked {r}"))
                                .unwrap_or_default(),
                            t.description
                        ));
                    }
                }
                Ok(Outcome::Ok)
            }
            TokenCommand::Revoke(a) => {
                let app = a.instance.app().await?;
                let result = app.revoke_token(&a.actor.actor()?, &a.id).await;
                settle(result, |t| {
                    print_line(&format!("token {} of {} is revoked", t.id, t.principal))
                })
            }
        }
    })
}
