//! `custody deploy report`, `custody rollback`, `custody verify`: what runs where.

use clap::{Args, Subcommand, ValueEnum};
use custody_app::{DeployReport, Rollback};
use custody_model::Digest;
use serde_json::json;

use crate::Outcome;
use crate::context::{ReadTarget, Recording};
use crate::custody::Custody;
use crate::input::{print_json, print_line};

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
    /// A digest the report is about (repeat): each one now running after a success, each
    /// one that failed to roll out after a failure. At least one.
    #[arg(long = "digest", value_name = "sha256:HEX", required = true)]
    digests: Vec<Digest>,
    /// How the rollout went.
    #[arg(long, value_enum)]
    status: DeployStatus,
    #[command(flatten)]
    recording: Recording,
}

pub(crate) fn deploy(command: DeployCommand) -> anyhow::Result<Outcome> {
    let DeployCommand::Report(a) = command;
    crate::block_on(async move {
        let custody = Custody::open(&a.recording.target).await?;
        let report = DeployReport {
            environment: a.environment.clone(),
            digests: a.digests.clone(),
            status: match a.status {
                DeployStatus::Succeeded => custody_app::events::DeployStatus::Succeeded,
                DeployStatus::Failed => custody_app::events::DeployStatus::Failed,
            },
        };
        let r = custody.deploy_report(&report, a.recording.key()).await?;
        {
            if a.recording.json {
                print_json(&json!(r));
                return Ok(Outcome::Ok);
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
        }
        Ok(Outcome::Ok)
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
    #[command(flatten)]
    recording: Recording,
}

pub(crate) fn rollback(a: RollbackArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        let custody = Custody::open(&a.recording.target).await?;
        let request = Rollback {
            reason: a.reason.clone(),
        };
        let r = custody
            .rollback(&a.environment, &request, a.recording.key())
            .await?;
        if a.recording.json {
            print_json(&json!(r));
        } else {
            print_line(&format!(
                "rolled back {}: {} → {}\n{:#}",
                r.environment,
                r.from,
                r.to,
                json!(r.diff)
            ));
        }
        Ok(Outcome::Ok)
    })
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The environment the digest is to run in.
    #[arg(long = "env", value_name = "ENV")]
    environment: String,
    /// The digest to run.
    digest: Digest,
    /// Where to ask: the data directory, or with --server a custody server (`GET
    /// /api/v1/verify`, with a deployer's, auditor's or viewer's token).
    #[command(flatten)]
    target: ReadTarget,
    /// Print the verdict with its evidence (decision, VSA, ledger index) as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn verify(a: VerifyArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        let custody = Custody::reading(&a.target).await?;
        let verdict = custody.verify(&a.environment, &a.digest).await?;
        if a.json {
            print_json(&json!(verdict));
        } else {
            let head = if verdict.allowed { "allowed" } else { "DENIED" };
            print_line(&format!("{head}: {} in {}", a.digest, a.environment));
            for r in &verdict.reasons {
                print_line(&format!("  {}", crate::input::one_line(r)));
            }
        }
        Ok(if verdict.allowed {
            Outcome::Ok
        } else {
            Outcome::Denied
        })
    })
}
