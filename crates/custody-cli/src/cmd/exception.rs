//! `custody exception`: ask for a time-bound exception (waiver) for one known finding in
//! an artifact or a release, review one as a security reviewer, and list or show them.
//! An exception counts only once someone else holding the security role approves it, and
//! only until it expires; the gate's reason names the exception it used.

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use custody_app::{
    ExceptionRecord, ExceptionStatus, Remediation, RemediationAction, RequestException,
    ReviewException,
};
use custody_model::{Digest, ReleaseRef, Timestamp, Verdict};
use custody_policy::WaivedFinding;
use serde_json::json;

use super::approval::Reviewing;
use crate::Outcome;
use crate::context::{Acting, ReadTarget, Recording};
use crate::custody::Custody;
use crate::input::{print_json, print_line, when};

#[derive(Debug, Subcommand)]
pub(crate) enum ExceptionCommand {
    /// Ask for an exception: a finding (--vulnerability, or --licence with --package)
    /// waived in one artifact or release until it expires, with a remediation plan. It
    /// counts only once a security reviewer other than you approves it.
    ///
    /// Example: custody exception request --vulnerability CVE-2024-3094 --release shop@1.4.3
    /// --env production --plan upgrade --owner team-shop --due 14d --expires 30d
    /// --reason "not reachable: the image never runs sshd"
    Request(Box<RequestArgs>),
    /// Approve an exception (the security role where it holds; not your own request).
    Approve(ReviewArgs),
    /// Reject an exception: it never counts.
    Reject(ReviewArgs),
    /// Revoke an exception, pending or approved: from now on it does not count (the
    /// security role where it holds, or its requester withdrawing it).
    ///
    /// Example: custody exception revoke x-… --rationale "the service now exposes sshd"
    Revoke(RevokeArgs),
    /// List exceptions, newest first.
    List(ListArgs),
    /// Show one exception.
    Show(ShowArgs),
}

/// What will be done about the finding.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Plan {
    /// Patch the affected code.
    Patch,
    /// Upgrade the affected package.
    Upgrade,
    /// Accept the risk until the exception expires.
    AcceptRisk,
}

#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// The vulnerability waived: the finding's own id, or the one CVE an advisory names
    /// (CVE-…, GHSA-…).
    #[arg(long, value_name = "ID", conflicts_with = "licence")]
    vulnerability: Option<String>,
    /// The licence waived, as the SBOM writes it (with --package).
    #[arg(long, value_name = "EXPRESSION", requires = "package")]
    licence: Option<String>,
    /// The package whose licence is waived (its name, or name@version).
    #[arg(long, value_name = "NAME", requires = "licence")]
    package: Option<String>,
    /// The artifact it covers.
    #[arg(long, value_name = "DIGEST", conflicts_with = "release")]
    artifact: Option<Digest>,
    /// The release it covers (every artifact of it).
    #[arg(long, value_name = "NAME@VERSION")]
    release: Option<ReleaseRef>,
    /// An environment it holds in (repeat; none: every environment).
    #[arg(long = "env", value_name = "ENV")]
    environments: Vec<String>,
    /// What will be done about it.
    #[arg(long, value_enum)]
    plan: Plan,
    /// Who owns the remediation.
    #[arg(long)]
    owner: String,
    /// When the remediation is due: a span from now (14d, 36h) or an RFC 3339 time.
    #[arg(long)]
    due: String,
    /// When the exception stops counting: a span from now (30d) or an RFC 3339 time (at
    /// most 365 days ahead).
    #[arg(long)]
    expires: String,
    /// Why the finding may be waived until then.
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    recording: Recording,
}

#[derive(Debug, Args)]
pub(crate) struct ReviewArgs {
    /// The exception id (x-…).
    id: String,
    #[command(flatten)]
    review: Reviewing,
    #[command(flatten)]
    acting: Acting,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The exception id (x-…).
    id: String,
    /// Why it no longer holds: recorded for auditors.
    #[arg(long)]
    rationale: String,
    #[command(flatten)]
    acting: Acting,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// At most this many.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    limit: u64,
    #[command(flatten)]
    target: ReadTarget,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The exception id (x-…).
    id: String,
    #[command(flatten)]
    target: ReadTarget,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: ExceptionCommand) -> anyhow::Result<Outcome> {
    match command {
        ExceptionCommand::Request(a) => crate::block_on(request(*a)),
        ExceptionCommand::Approve(a) => crate::block_on(review(a, Verdict::Approve)),
        ExceptionCommand::Reject(a) => crate::block_on(review(a, Verdict::Reject)),
        ExceptionCommand::Revoke(a) => crate::block_on(async move {
            let custody = Custody::open(&a.acting.target).await?;
            let revoke = custody_app::RevokeException {
                rationale: a.rationale,
            };
            let x = custody.revoke_exception(&a.id, &revoke).await?;
            if a.acting.json {
                print_json(&json!(x));
            } else {
                print_line(&summary(&x, crate::context::now()?));
            }
            Ok(Outcome::Ok)
        }),
        ExceptionCommand::List(a) => crate::block_on(async move {
            let limit = usize::try_from(a.limit).unwrap_or(1000);
            let list = Custody::reading(&a.target).await?.exceptions(limit).await?;
            if a.json {
                print_json(&json!(list));
            } else if list.is_empty() {
                print_line("no exceptions");
            } else {
                let now = crate::context::now()?;
                let lines: Vec<String> = list.iter().map(|x| summary(x, now)).collect();
                print_line(&lines.join("\n"));
            }
            Ok(Outcome::Ok)
        }),
        ExceptionCommand::Show(a) => crate::block_on(async move {
            let x = Custody::reading(&a.target).await?.exception(&a.id).await?;
            if a.json {
                print_json(&json!(x));
            } else {
                print_line(&describe(&x, crate::context::now()?));
            }
            Ok(Outcome::Ok)
        }),
    }
}

/// A time given as a span from `now` (`14d`) or as RFC 3339.
fn time(flag: &str, text: &str, now: Timestamp) -> anyhow::Result<Timestamp> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    let span = custody_policy::Span::parse(text).map_err(|e| {
        anyhow::anyhow!(
            "--{flag} {text:?}: {e}; give a span from now (14d, 36h) or an RFC 3339 time"
        )
    })?;
    Ok(now.plus_seconds(span.seconds()))
}

async fn request(a: RequestArgs) -> anyhow::Result<Outcome> {
    let finding = match (a.vulnerability, a.licence, a.package) {
        (Some(id), None, None) => WaivedFinding::Vulnerability { id },
        (None, Some(licence), Some(package)) => WaivedFinding::Licence { licence, package },
        _ => bail!(
            "name the finding: --vulnerability ID, or --licence EXPRESSION with --package NAME"
        ),
    };
    let now = crate::context::clock()?.now();
    let request = RequestException {
        finding,
        artifact: a.artifact,
        release: a.release.map(|r| r.to_string()),
        environments: a.environments,
        plan: Remediation {
            action: match a.plan {
                Plan::Patch => RemediationAction::Patch,
                Plan::Upgrade => RemediationAction::Upgrade,
                Plan::AcceptRisk => RemediationAction::AcceptRisk,
            },
            owner: a.owner,
            due: time("due", &a.due, now)?,
        },
        reason: a.reason,
        expires_at: time("expires", &a.expires, now)?,
    };
    let custody = Custody::open(&a.recording.target).await?;
    let x = custody
        .request_exception(&request, a.recording.key())
        .await?;
    if a.recording.json {
        print_json(&json!(x));
    } else {
        print_line(&x.id);
        eprintln!(
            "requested: it counts once a security reviewer other than {} approves it (custody exception approve {})",
            x.requested_by, x.id
        );
    }
    Ok(Outcome::Ok)
}

async fn review(a: ReviewArgs, verdict: Verdict) -> anyhow::Result<Outcome> {
    super::approval::require_rationale(&a.review.rationale)?;
    let custody = Custody::open(&a.acting.target).await?;
    let statement = a
        .review
        .statement(&custody, verdict, async |in_force| {
            Ok(custody.exception(&a.id).await?.approved(&in_force.digest)?)
        })
        .await?;
    let request = ReviewException {
        rationale: a.review.rationale,
        statement,
    };
    let x = custody.review_exception(&a.id, verdict, &request).await?;
    if a.acting.json {
        print_json(&json!(x));
    } else {
        print_line(&summary(&x, crate::context::now()?));
    }
    Ok(Outcome::Ok)
}

/// Its status as the gates see it now: an approved exception past its expiry no longer
/// counts, and says so.
fn status(x: &ExceptionRecord, now: Timestamp) -> &'static str {
    // Judged at the second, as the gates judge it.
    let expired = x.expires_at.unix_seconds() <= now.unix_seconds();
    match x.status {
        ExceptionStatus::Pending | ExceptionStatus::Approved if expired => "EXPIRED",
        ExceptionStatus::Pending => "PENDING",
        ExceptionStatus::Approved => "APPROVED",
        ExceptionStatus::Rejected => "REJECTED",
        ExceptionStatus::Revoked => "REVOKED",
    }
}

fn summary(x: &ExceptionRecord, now: Timestamp) -> String {
    format!(
        "{}  {:8}  {} in {}{}, until {}",
        x.id,
        status(x, now),
        x.finding,
        x.subject(),
        if x.environments.is_empty() {
            String::new()
        } else {
            format!(" ({})", x.environments.join(", "))
        },
        when(x.expires_at)
    )
}

fn describe(x: &ExceptionRecord, now: Timestamp) -> String {
    let mut lines = vec![
        summary(x, now),
        format!(
            "  asked by {} at {}: {}",
            x.requested_by,
            when(x.requested_at),
            x.reason
        ),
        format!(
            "  plan: {} by {}, due {}",
            x.plan.action,
            x.plan.owner,
            when(x.plan.due)
        ),
    ];
    if let (Some(by), Some(at)) = (&x.reviewed_by, x.reviewed_at) {
        lines.push(format!(
            "  {} by {by} at {}: {}",
            match x.status {
                ExceptionStatus::Rejected => "rejected",
                _ => "approved",
            },
            when(at),
            x.review_rationale.as_deref().unwrap_or("")
        ));
    }
    if let Some(r) = &x.revoked {
        lines.push(format!(
            "  revoked by {} at {}: {}",
            r.by,
            when(r.at),
            r.rationale
        ));
    }
    lines.join("\n")
}
