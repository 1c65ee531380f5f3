//! `custody promote`, `custody approve`, `custody reject`, `custody decision`.

use clap::{Args, Subcommand, ValueEnum};
use custody_app::approval_statement::Approved;
use custody_app::{Promote, PromotionOutcome, Review};
use custody_model::{PromotionStatus, Risk, Verdict};
use custody_policy::Status;
use serde_json::json;

use super::approval::sign;
use crate::Outcome;
use crate::context::{ReadTarget, Recording};
use crate::custody::Custody;
use crate::input::{print_json, print_line};

#[derive(Debug, Args)]
pub(crate) struct PromoteArgs {
    /// The release, NAME@VERSION.
    release: custody_model::ReleaseRef,
    /// The target environment.
    #[arg(long = "to", value_name = "ENV")]
    environment: String,
    /// In an emergency: go past the gates that time, people or a freeze hold closed
    /// (previous environment, evidence, freeze, approvals; never signatures, naming or
    /// provenance), if the policy's `break_glass` roles include yours. Loud by design: the
    /// decision records it with REASON, an alert goes out, and someone else must review it
    /// after the fact (`custody approve PROMOTION` or `reject`).
    #[arg(long, value_name = "REASON")]
    break_glass: Option<String>,
    /// With --break-glass: sign it with this private key, enrolled for you in the policy
    /// in force (`[[person_key]]`). Breaking glass overrides the approvals gate, so it
    /// counts only from your own credential: this statement (bound to the release, the
    /// environment, the policy version and the reason), or an OIDC sign-in; never a token
    /// someone else made for you.
    #[arg(long, value_name = "KEY", requires = "break_glass")]
    sign_key: Option<std::path::PathBuf>,
    #[command(flatten)]
    recording: Recording,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RiskArg {
    /// Low risk.
    Low,
    /// Medium risk.
    Medium,
    /// High risk.
    High,
}

#[derive(Debug, Args)]
pub(crate) struct ReviewArgs {
    /// The promotion id (printed by `custody promote`).
    promotion: String,
    /// Why: recorded with the review, for auditors.
    #[arg(long)]
    rationale: String,
    /// The risk posture you see.
    #[arg(long, value_enum, default_value = "medium")]
    risk: RiskArg,
    /// Keep the rationale for auditors and the people involved: the public ledger then
    /// holds only a salted commitment to it (HMAC-SHA-256), which cannot be guessed from
    /// a word list.
    #[arg(long)]
    confidential: bool,
    /// Sign your review with this private key, enrolled for you in the policy in force
    /// (`[[person_key]]`): a statement bound to this promotion, release digest,
    /// environment and policy version that anyone can verify offline.
    #[arg(long, value_name = "KEY")]
    sign_key: Option<std::path::PathBuf>,
    #[command(flatten)]
    recording: Recording,
}

fn report(outcome: &PromotionOutcome, json_out: bool) -> Outcome {
    let p = &outcome.promotion;
    let d = &outcome.decision;
    if json_out {
        print_json(&json!(outcome));
    } else {
        let mut lines = vec![format!(
            "{} {} → {}: {}{}",
            p.id,
            p.release,
            p.environment,
            match p.status {
                PromotionStatus::Certified => "certified",
                PromotionStatus::Pending => "pending",
                PromotionStatus::Rejected => "rejected",
            },
            if outcome.replayed {
                " (replayed: the first result of this idempotency key)"
            } else {
                ""
            }
        )];
        for g in &d.decision.gates {
            let mark = match g.status {
                Status::Pass => "pass",
                Status::Fail => "FAIL",
                Status::Waiting => "wait",
                Status::Overridden => "OVER",
                Status::Warn => "warn",
            };
            lines.push(format!(
                "  {mark:4}  {:22} {}",
                g.gate,
                crate::input::one_line(&g.reason)
            ));
        }
        lines.push(format!(
            "  decision {} (policy {})",
            d.id, d.decision.policy_digest
        ));
        if let Some(earlier) = &outcome.supersedes {
            lines.push(format!("note: {}", earlier.note));
        }
        print_line(&lines.join("\n"));
    }
    if p.status == PromotionStatus::Certified {
        Outcome::Ok
    } else {
        Outcome::Denied
    }
}

pub(crate) fn promote(a: PromoteArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        let custody = Custody::open(&a.recording.target).await?;
        let statement = match (&a.sign_key, &a.break_glass) {
            (Some(key), Some(reason)) => {
                let in_force = custody.policy_in_force().await?;
                let approves = Approved::BreakGlass {
                    release: a.release.to_string(),
                    environment: a.environment.clone(),
                    policy: in_force.digest.clone(),
                };
                Some(sign(
                    key,
                    &in_force,
                    approves,
                    Verdict::Approve,
                    reason,
                    None,
                )?)
            }
            _ => None,
        };
        let request = Promote {
            release: a.release.clone(),
            environment: a.environment.clone(),
            break_glass: a.break_glass.clone(),
            statement,
        };
        let outcome = custody.promote(&request, a.recording.key()).await?;
        Ok(report(&outcome, a.recording.json))
    })
}

pub(crate) fn review(a: ReviewArgs, verdict: Verdict) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        super::approval::require_rationale(&a.rationale)?;
        let custody = Custody::open(&a.recording.target).await?;
        let risk = match a.risk {
            RiskArg::Low => Risk::Low,
            RiskArg::Medium => Risk::Medium,
            RiskArg::High => Risk::High,
        };
        let statement = match &a.sign_key {
            Some(key) => {
                let in_force = custody.policy_in_force().await?;
                let p = custody.promotion(&a.promotion).await?;
                let approves = Approved::promotion(&p, &in_force.digest);
                Some(sign(
                    key,
                    &in_force,
                    approves,
                    verdict,
                    &a.rationale,
                    Some(risk),
                )?)
            }
            None => None,
        };
        let request = Review {
            rationale: a.rationale.clone(),
            risk,
            confidential: a.confidential,
            statement,
        };
        let outcome = custody
            .review(&a.promotion, verdict, &request, a.recording.key())
            .await?;
        report(&outcome, a.recording.json);
        match (outcome.approval.and_then(|(_, why)| why), verdict) {
            (Some(why), Verdict::Approve) => {
                eprintln!("your approval does not count: {why}");
                Ok(Outcome::Denied)
            }
            _ => Ok(Outcome::Ok),
        }
    })
}

#[derive(Debug, Subcommand)]
pub(crate) enum DecisionCommand {
    /// Show a recorded decision: every gate with its reason, the facts it was made from,
    /// the policy version and the signed VSA.
    Show(DecisionArgs),
    /// Evaluate a recorded decision again from its recorded facts and policy version; exit
    /// 0 if the outcome and every gate are the same, 1 if not.
    Replay(DecisionArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DecisionArgs {
    /// The decision id.
    id: String,
    #[command(flatten)]
    target: ReadTarget,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn decision(command: DecisionCommand) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        match command {
            DecisionCommand::Show(a) => {
                let d = Custody::reading(&a.target).await?.decision(&a.id).await?;
                if a.json {
                    print_json(&json!(d));
                } else {
                    let mut lines = vec![format!(
                        "{} about promotion {} at {}: {}",
                        d.id,
                        d.promotion,
                        crate::input::when(d.at),
                        if d.decision.allowed {
                            "allowed"
                        } else {
                            "not allowed"
                        }
                    )];
                    for g in &d.decision.gates {
                        lines.push(format!(
                            "  {:?} {}: {}",
                            g.status,
                            g.gate,
                            crate::input::one_line(&g.reason)
                        ));
                    }
                    lines.push(format!(
                        "  policy {}  input {}  engine {}",
                        d.decision.policy_digest, d.decision.input_digest, d.decision.engine
                    ));
                    print_line(&lines.join("\n"));
                }
                Ok(Outcome::Ok)
            }
            DecisionCommand::Replay(a) => {
                let r = Custody::reading(&a.target).await?.replay(&a.id).await?;
                if a.json {
                    print_json(
                        &json!({"same": r.same, "recorded": r.recorded.decision, "replayed": r.replayed}),
                    );
                } else if r.same {
                    print_line(&format!(
                        "{}: replayed to the same outcome ({}, {} gates, input {})",
                        a.id,
                        if r.replayed.allowed {
                            "allowed"
                        } else {
                            "not allowed"
                        },
                        r.replayed.gates.len(),
                        r.replayed.input_digest
                    ));
                } else {
                    print_line(&format!("{}: replay DIFFERS from the record", a.id));
                }
                Ok(if r.same { Outcome::Ok } else { Outcome::Denied })
            }
        }
    })
}
