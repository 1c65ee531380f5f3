//! `custody promote`, `custody approve`, `custody reject`, `custody decision`.

use clap::{Args, Subcommand, ValueEnum};
use custody_app::approval_statement::Approved;
use custody_app::{Promote, PromotionOutcome, Review};
use custody_model::{PromotionStatus, Risk, Verdict};
use custody_policy::Status;
use serde_json::json;

use super::approval::statement;
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
            p.status,
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
        // --sign-key requires --break-glass (clap refuses it alone).
        let reason = a.break_glass.as_deref().unwrap_or_default();
        let key = a.sign_key.as_deref();
        let statement = statement(&custody, key, Verdict::Approve, reason, None, async |f| {
            Ok(Approved::BreakGlass {
                release: a.release.to_string(),
                environment: a.environment.clone(),
                policy: f.digest.clone(),
            })
        })
        .await?;
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
        let key = a.sign_key.as_deref();
        let statement = statement(
            &custody,
            key,
            verdict,
            &a.rationale,
            Some(risk),
            async |f| {
                let (p, _) = custody.promotion(&a.promotion).await?;
                Ok(Approved::promotion(&p, &f.digest))
            },
        )
        .await?;
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

#[derive(Debug, Subcommand)]
pub(crate) enum PromotionCommand {
    /// Show a promotion: its release and environment, who asked and when, where it stands,
    /// its decisions, and every review (superseded ones too). From a server, confidential
    /// rationales show only to auditors, admins and the people involved.
    ///
    /// Example: custody promotion show prm-… --server URL --token $TOKEN
    Show(PromotionShowArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PromotionShowArgs {
    /// The promotion id (printed by `custody promote`).
    id: String,
    #[command(flatten)]
    target: ReadTarget,
    /// Print the promotion and its reviews as JSON ({"promotion": …, "reviews": […]}).
    #[arg(long)]
    json: bool,
}

pub(crate) fn promotion(command: PromotionCommand) -> anyhow::Result<Outcome> {
    let PromotionCommand::Show(a) = command;
    crate::block_on(async move {
        let (p, reviews) = Custody::reading(&a.target).await?.promotion(&a.id).await?;
        if a.json {
            print_json(&json!({"promotion": p, "reviews": reviews}));
            return Ok(Outcome::Ok);
        }
        let mut lines = vec![
            format!("{} {} → {}: {}", p.id, p.release, p.environment, p.status),
            format!(
                "  asked by {} at {}{}",
                p.requested_by,
                crate::input::when(p.requested_at),
                p.requested_through
                    .as_ref()
                    .map(|t| format!(" (with a token {t} made)"))
                    .unwrap_or_default()
            ),
            format!("  release digest {}", p.release_digest),
        ];
        if let Some(g) = &p.break_glass {
            lines.push(format!(
                "  broke glass: {} ({})",
                g.reason,
                match &g.reviewed_by {
                    Some(r) => format!("reviewed in {r}"),
                    None => "not yet reviewed after the fact".into(),
                }
            ));
        }
        lines.push(format!("  decisions: {}", p.decisions.join(", ")));
        for r in &reviews {
            let superseded = match &r.superseded_by {
                Some(by) => format!(" (superseded by {by})"),
                None => String::new(),
            };
            lines.push(format!(
                "  {} by {} at {}, risk {}{superseded}: {}",
                r.verdict,
                r.by,
                crate::input::when(r.at),
                r.risk,
                crate::input::one_line(&r.rationale)
            ));
        }
        if reviews.is_empty() {
            lines.push("  no reviews".into());
        }
        print_line(&lines.join("\n"));
        Ok(Outcome::Ok)
    })
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
