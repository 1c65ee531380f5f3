//! `custody token`: API tokens for people and services, on the local data directory or
//! through a server (`--server`, with an admin's token).

use clap::{Args, Subcommand};
use custody_app::{TokenInfo, TokenRecord};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::Outcome;
use crate::client::{RemoteArgs, segment};
use crate::context::{ActorArgs, InstanceArgs, settle};
use crate::input::{print_json, print_line};

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create an API token for a principal and print it (once: only its hash is stored).
    /// What it may do follows from the roles the policy's [roles] gives the principal.
    ///
    /// Example: custody token create --principal argo --expires 90d --as alice
    /// Through a server (an admin's token): custody token create --principal argo --server URL
    Create(CreateArgs),
    /// List tokens: id, principal, expiry, revocation (never the secret).
    List(ListArgs),
    /// Revoke a token: it stops working at once (on a server that did not revoke it
    /// itself, within 50 ms).
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
    /// Makes a retry create nothing more (the token's text is shown only the first time).
    #[arg(long)]
    idempotency_key: Option<String>,
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(flatten)]
    remote: RemoteArgs,
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
    #[command(flatten)]
    remote: RemoteArgs,
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
    remote: RemoteArgs,
    #[command(flatten)]
    actor: ActorArgs,
}

/// What `POST /api/v1/tokens` answers.
#[derive(Deserialize)]
struct Created {
    token: Option<String>,
    record: TokenInfo,
}

pub(crate) fn run(command: TokenCommand) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        match command {
            TokenCommand::Create(a) => {
                let span = custody_policy::Span::parse(&a.expires).map_err(anyhow::Error::msg)?;
                let result = match a.remote.client()? {
                    Some(server) => server
                        .call::<Created>(
                            Method::POST,
                            "/api/v1/tokens",
                            &[],
                            Some(json!({"principal": a.subject, "expires": a.expires, "description": a.description})),
                            a.idempotency_key.as_deref(),
                        )
                        .await?
                        .map(|c| (c.record, c.token)),
                    None => {
                        let app = a.instance.app().await?;
                        let seconds = i64::try_from(span.seconds()).unwrap_or(i64::MAX);
                        app.create_token(
                            &a.actor.actor()?,
                            &a.subject,
                            seconds,
                            &a.description,
                            a.idempotency_key.as_deref(),
                        )
                        .await
                        .map(|(record, token)| (TokenInfo::from(&record), token))
                    }
                };
                settle(result, |(record, token)| {
                    if a.json {
                        print_json(
                            &json!({"token": token, "id": record.id, "principal": record.principal, "expires_at": record.expires_at.to_string()}),
                        );
                    } else if let Some(token) = token {
                        print_line(&token);
                        eprintln!(
                            "token {} for {} until {}: shown once, store it as a secret",
                            record.id, record.principal, record.expires_at
                        );
                    } else {
                        eprintln!(
                            "token {} for {} was already created with this idempotency key; its text was shown then (revoke it and create another if it is lost)",
                            record.id, record.principal
                        );
                    }
                })
            }
            TokenCommand::List(a) => {
                let tokens: Vec<TokenInfo> = match a.remote.client()? {
                    Some(server) => {
                        server
                            .call(Method::GET, "/api/v1/tokens", &[], None, None)
                            .await??
                    }
                    None => {
                        let app = a.instance.app().await?;
                        app.tokens().await?.iter().map(TokenInfo::from).collect()
                    }
                };
                if a.json {
                    print_json(&json!(tokens));
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
                let result = match a.remote.client()? {
                    Some(server) => {
                        server
                            .call::<TokenInfo>(
                                Method::POST,
                                &format!("/api/v1/tokens/{}/revoke", segment(&a.id)),
                                &[],
                                None,
                                None,
                            )
                            .await?
                    }
                    None => {
                        let app = a.instance.app().await?;
                        app.revoke_token(&a.actor.actor()?, &a.id)
                            .await
                            .map(|t: TokenRecord| TokenInfo::from(&t))
                    }
                };
                settle(result, |t| {
                    print_line(&format!("token {} of {} is revoked", t.id, t.principal))
                })
            }
        }
    })
}
