//! `custody deploy report`, `custody rollback`, `custody verify`: what runs where.

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use custody_model::Digest;
use serde_json::json;

use crate::Outcome;
use crate::client::{RemoteArgs, segment};
use crate::context::{ActorArgs, InstanceArgs, settle};
use crate::input::{print_json, print_line};
use reqwest::Method;

#[derive(Debug, Subcommand)]
pub(crate) enum DeployCommand {
    /// Report what is running in an environment and whether the rollout succeeded. A
    /// digest never certified there is recorded as drift; a failed rollout of the
    /// certified release rolls the environment back to the previous certified release
    /// that still passes the policy.
    Report(DeployReportArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum DeployStatus {
    /// The rollout succeeded.
    Succeeded,
    /// The rollout failed.
    Failed,
}

#[derive(Debug, Args)]
pub(crate) struct DeployReportArgs {
    /// The environment.
    #[arg(long = "env", value_name = "ENV")]
    environment: String,
    /// A digest running there (repeat).
    #[arg(long = "digest", value_name = "sha256:HEX")]
    digests: Vec<Digest>,
    /// How the rollout went.
    #[arg(long, value_enum)]
    status: DeployStatus,
    /// Makes a retry return the first outcome instead of a second report (and rollback).
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

pub(crate) fn deploy(command: DeployCommand) -> anyhow::Result<Outcome> {
    let DeployCommand::Report(a) = command;
    crate::block_on(async move {
        let succeeded = matches!(a.status, DeployStatus::Succeeded);
        let result = match a.remote.client()? {
            Some(server) => {
                let body = json!({
                    "environment": a.environment,
                    "digests": a.digests,
                    "status": if succeeded { "succeeded" } else { "failed" },
                });
                server
                    .call(
                        Method::POST,
                        "/api/v1/deploys",
                        &[],
                        Some(body),
                        a.idempotency_key.as_deref(),
                    )
                    .await?
            }
            None => {
                let app = a.instance.app().await?;
                app.deploy_report(
                    &a.actor.actor()?,
                    &a.environment,
                    &a.digests,
                    succeeded,
                    a.idempotency_key.as_deref(),
                )
                .await
            }
        };
        settle(result, |r| {
            if a.json {
                print_json(&json!(r));
                return;
            }
            let mut lines = vec![format!(
                "deploy report recorded (ledger index {})",
                r.ledger_index
            )];
            if !r.drift.is_empty() {
                lines.push(format!(
                    "drift: {} never certified in {}",
                    r.drift
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    a.environment
                ));
            }
            if let Some(rb) = &r.rollback {
                lines.push(format!(
                    "rolled back {}: {} → {}",
                    rb.environment, rb.from, rb.to
                ));
            }
            if let Some(why) = &r.rollback_refused {
                lines.push(format!("no rollback: {why}"));
            }
            print_line(&lines.join("\n"));
        })
    })
}

#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    /// The environment.
    #[arg(long = "env", value_name = "ENV")]
    environment: String,
    /// Why: recorded for auditors.
    #[arg(long)]
    reason: String,
    /// Makes a retry return the first outcome instead of rolling back further.
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

pub(crate) fn rollback(a: RollbackArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        let result = match a.remote.client()? {
            Some(server) => {
                let path = format!("/api/v1/environments/{}/rollback", segment(&a.environment));
                server
                    .call(
                        Method::POST,
                        &path,
                        &[],
                        Some(json!({"reason": a.reason})),
                        a.idempotency_key.as_deref(),
                    )
                    .await?
            }
            None => {
                let app = a.instance.app().await?;
                app.rollback(
                    &a.actor.actor()?,
                    &a.environment,
                    &a.reason,
                    a.idempotency_key.as_deref(),
                )
                .await
            }
        };
        settle(result, |r| {
            if a.json {
                print_json(&json!(r));
            } else {
                print_line(&format!(
                    "rolled back {}: {} → {}\n{:#}",
                    r.environment, r.from, r.to, r.diff
                ));
            }
        })
    })
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The environment the digest is to run in.
    #[arg(long = "env", value_name = "ENV")]
    environment: String,
    /// The digest to run.
    digest: Digest,
    #[command(flatten)]
    instance: InstanceArgs,
    /// Ask a custody server (`GET /api/v1/verify`) instead of the local data directory.
    #[arg(long, env = "CUSTODY_SERVER", value_name = "URL")]
    server: Option<String>,
    /// The API token for --server (a deployer's, auditor's or viewer's).
    #[arg(
        long,
        env = "CUSTODY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// For an https:// server whose certificate an internal CA signed: that CA (PEM).
    #[arg(long, env = "CUSTODY_CA_CERT", value_name = "PEM")]
    ca_cert: Option<std::path::PathBuf>,
    /// Print the verdict with its evidence (decision, VSA, ledger index) as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn verify(a: VerifyArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        let verdict = match &a.server {
            Some(server) => {
                let url = format!("{}/api/v1/verify", server.trim_end_matches('/'));
                let client = crate::client::http_client(a.ca_cert.as_deref())?;
                let mut request = client.get(&url).query(&[
                    ("env", a.environment.as_str()),
                    ("digest", &a.digest.to_string()),
                ]);
                if let Some(token) = &a.token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.with_context(|| {
                    format!("GET {url}\nhint: is `custody serve` running there?")
                })?;
                let status = response.status();
                let body: serde_json::Value = response
                    .json()
                    .await
                    .with_context(|| format!("{url} answered {status} without JSON"))?;
                // 403 with a verdict is a denial; any other failure (or a 403 without a
                // verdict: the token may not ask) is an error.
                if body.get("allowed").is_none()
                    || !(status.is_success() || status == reqwest::StatusCode::FORBIDDEN)
                {
                    anyhow::bail!(
                        "{url}: {status}: {}",
                        body["error"].as_str().unwrap_or_default()
                    );
                }
                body
            }
            None => json!(
                a.instance
                    .app()
                    .await?
                    .verify(&a.environment, &a.digest)
                    .await?
            ),
        };
        let allowed = verdict["allowed"].as_bool() == Some(true);
        if a.json {
            print_json(&verdict);
        } else {
            let head = if allowed { "allowed" } else { "DENIED" };
            print_line(&format!("{head}: {} in {}", a.digest, a.environment));
            for r in verdict["reasons"].as_array().into_iter().flatten() {
                print_line(&format!("  {}", r.as_str().unwrap_or_default()));
            }
        }
        Ok(if allowed {
            Outcome::Ok
        } else {
            Outcome::Denied
        })
    })
}
