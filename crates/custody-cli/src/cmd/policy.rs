//! `custody policy`: check a bundle, see what it would change, propose it, and review the
//! proposals of others. A new version takes effect only when a quorum of the policy's
//! owners (never its proposer) approves it; the first policy of a fresh instance is the one
//! exception, recorded as a bootstrap.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use custody_app::approval_statement::Approved;
use custody_app::{ApplyPolicy, PolicyChange, ProposalView, ReviewProposal};
use custody_model::Verdict;
use custody_policy::{Change, Direction};
use serde_json::json;

use super::approval::Reviewing;
use crate::Outcome;
use crate::context::{Acting, ReadTarget, read_bundle};
use crate::custody::Custody;
use crate::input::{print_json, print_line};

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Compile a policy bundle (DIR/custody.toml and DIR/keys/*.pub) and report every
    /// mistake with its line. Exit 1 if there is any. It reads the files alone: what the
    /// keyring forbids (a revoked key, a key with another purpose, the instance's own
    /// keys) is checked when the policy is proposed or applied.
    Check(CheckArgs),
    /// Show the policy in force: its digest, pipeline, owners and quorum.
    Show(ShowArgs),
    /// What a bundle would change against the policy in force: each change marked
    /// LOOSER, STRICTER or as neither. Exit 0 either way.
    Diff(DiffArgs),
    /// Propose a bundle as the next policy version. It takes effect once a quorum of the
    /// owners of the policy in force approves it (`custody policy approve`); the proposer
    /// never counts. On a fresh instance the first policy is put in force at once, by the
    /// operator, and recorded as a bootstrap.
    ///
    /// Example: custody policy propose ./policy --server https://custody:8080
    #[command(alias = "apply")]
    Propose(ProposeArgs),
    /// List the proposals waiting for owners (--all: every proposal ever made).
    Proposals(ProposalsArgs),
    /// Show one proposal: what it changes, who approved, what it still needs.
    Proposal(ProposalArgs),
    /// Approve a proposal as one of the policy's owners. With --sign-key your approval is
    /// a statement signed with your enrolled key, verifiable offline by anyone.
    Approve(ReviewArgs),
    /// Reject a proposal: it closes, and nothing changes.
    Reject(ReviewArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The policy bundle directory.
    dir: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    target: ReadTarget,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The policy bundle directory.
    dir: PathBuf,
    #[command(flatten)]
    target: ReadTarget,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ProposeArgs {
    /// The policy bundle directory (default: DATA_DIR/policy; required with --server).
    dir: Option<PathBuf>,
    #[command(flatten)]
    acting: Acting,
}

#[derive(Debug, Args)]
pub(crate) struct ProposalsArgs {
    /// Every proposal, not only the open ones.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    target: ReadTarget,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ProposalArgs {
    /// The proposal id (printed by `custody policy propose`).
    id: String,
    #[command(flatten)]
    target: ReadTarget,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReviewArgs {
    /// The proposal id.
    id: String,
    #[command(flatten)]
    review: Reviewing,
    #[command(flatten)]
    acting: Acting,
}

pub(crate) fn run(command: PolicyCommand) -> anyhow::Result<Outcome> {
    match command {
        PolicyCommand::Check(a) => check(&a),
        PolicyCommand::Show(a) => crate::block_on(show(a)),
        PolicyCommand::Diff(a) => crate::block_on(diff(a)),
        PolicyCommand::Propose(a) => crate::block_on(propose(a)),
        PolicyCommand::Proposals(a) => crate::block_on(async move {
            let list = Custody::reading(&a.target).await?.proposals(a.all).await?;
            if a.json {
                print_json(&json!(list));
            } else if list.is_empty() {
                print_line(if a.all {
                    "no proposals"
                } else {
                    "no open proposals"
                });
            } else {
                let lines: Vec<String> = list.iter().map(summary).collect();
                print_line(&lines.join("\n"));
            }
            Ok(Outcome::Ok)
        }),
        PolicyCommand::Proposal(a) => crate::block_on(async move {
            let p = Custody::reading(&a.target).await?.proposal(&a.id).await?;
            if a.json {
                print_json(&json!(p));
            } else {
                print_line(&describe(&p));
            }
            Ok(Outcome::Ok)
        }),
        PolicyCommand::Approve(a) => crate::block_on(review(a, Verdict::Approve)),
        PolicyCommand::Reject(a) => crate::block_on(review(a, Verdict::Reject)),
    }
}

fn check(a: &CheckArgs) -> anyhow::Result<Outcome> {
    let bundle = read_bundle(&a.dir)?;
    match custody_policy::compile(&bundle) {
        Ok(p) => {
            let warnings: Vec<String> = ungoverned(&p).into_iter().collect();
            if a.json {
                print_json(&json!({
                    "ok": true,
                    "digest": p.digest(),
                    "environments": p.environments().iter().map(|e| &e.name).collect::<Vec<_>>(),
                    "warnings": warnings,
                }));
            } else {
                print_line(&format!("ok: {} (pipeline {})", p.digest(), pipeline(&p)));
                for w in &warnings {
                    eprintln!("warning: {w}");
                }
            }
            Ok(Outcome::Ok)
        }
        Err(errors) => {
            if a.json {
                print_json(&json!({
                    "ok": false,
                    "errors": errors.0.iter().map(|e| json!({
                        "file": e.file, "line": e.line, "column": e.column, "message": e.message,
                    })).collect::<Vec<_>>(),
                }));
            } else {
                for e in &errors.0 {
                    eprintln!("{}", a.dir.join(e.to_string()).display());
                }
            }
            Ok(Outcome::Denied)
        }
    }
}

/// What `policy propose` would refuse of a valid bundle on an instance whose policy in force
/// is governed: a version naming no more owners than its quorum (nobody could approve a
/// change of it). The other refusals (a key the keyring revoked, or holds for another
/// purpose) need the instance's keyring, which a check of files does not have.
fn ungoverned(p: &custody_policy::Policy) -> Option<String> {
    if p.names_a_quorum() {
        return None;
    }
    let governance = p.governance();
    let owners: Vec<&str> = governance.owners.iter().map(|r| r.name()).collect();
    Some(format!(
        "this version names no more owners (holders of {}, unscoped) than its quorum of {}: an instance whose policy in force is governed refuses it as a proposal, and only the operator on the data directory can put it in force (recorded as a bootstrap)\nhint: grant an owner role to more people than the quorum, in [roles] (without a [governance] section, the owners are the holders of security and the quorum is 1)",
        owners.join(" or "),
        governance.quorum
    ))
}

fn pipeline(p: &custody_policy::Policy) -> String {
    p.environments()
        .iter()
        .map(|e| e.name.as_str())
        .collect::<Vec<_>>()
        .join(" → ")
}

async fn show(a: ShowArgs) -> anyhow::Result<Outcome> {
    let in_force = Custody::reading(&a.target).await?.policy_in_force().await?;
    let p = &in_force.policy;
    let governance = p.governance();
    let owners: Vec<&str> = governance.owners.iter().map(|r| r.name()).collect();
    let keys: Vec<serde_json::Value> = p
        .person_keys()
        .iter()
        .map(|k| json!({"principal": k.principal, "key_id": k.key_id}))
        .collect();
    // Where only approvals signed with an enrolled key count (`signed = true`).
    let signed_only: Vec<&str> = p
        .environments()
        .iter()
        .filter(|e| e.counts_only_signed_approvals())
        .map(|e| e.name.as_str())
        .collect();
    if a.json {
        print_json(&json!({
            "digest": in_force.digest,
            "environments": p.environments().iter().map(|e| &e.name).collect::<Vec<_>>(),
            "signed_approvals_only": signed_only,
            "governance": {"owners": owners, "quorum": governance.quorum, "signed": governance.signed},
            "person_keys": keys,
        }));
    } else {
        print_line(&format!(
            "policy {}\n  pipeline  {}\n  changes   need {} {}approval(s) from {} (never the proposer)\n  signed approvals only  {}\n  personal keys  {}",
            in_force.digest,
            pipeline(p),
            governance.quorum,
            if governance.signed { "signed " } else { "" },
            owners.join(" or "),
            if signed_only.is_empty() {
                "nowhere".to_owned()
            } else {
                signed_only.join(", ")
            },
            if keys.is_empty() {
                "none enrolled".to_owned()
            } else {
                p.person_keys()
                    .iter()
                    .map(|k| k.principal.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
    }
    Ok(Outcome::Ok)
}

async fn diff(a: DiffArgs) -> anyhow::Result<Outcome> {
    let bundle = read_bundle(&a.dir)?;
    let after = custody_policy::compile(&bundle).map_err(|errors| {
        anyhow::anyhow!(
            "{} does not compile:\n{errors}\nhint: custody policy check {}",
            a.dir.display(),
            a.dir.display()
        )
    })?;
    let in_force = Custody::reading(&a.target).await?.policy_in_force().await?;
    let changes = custody_policy::diff(&in_force.policy, &after);
    if a.json {
        print_json(&json!({
            "from": in_force.digest,
            "to": after.digest(),
            "loosens": custody_policy::loosens(&changes),
            "changes": changes,
        }));
    } else {
        let mut lines = vec![format!("{} → {}", in_force.digest, after.digest())];
        lines.extend(change_lines(&changes));
        print_line(&lines.join("\n"));
    }
    Ok(Outcome::Ok)
}

fn change_lines(changes: &[Change]) -> Vec<String> {
    if changes.is_empty() {
        return vec!["  no change to what the policy allows".into()];
    }
    changes
        .iter()
        .map(|c| {
            let mark = match c.direction {
                Direction::Looser => "LOOSER",
                Direction::Stricter => "STRICTER",
                Direction::Neutral => "",
            };
            format!("  {mark:8}  {}", c.what)
        })
        .collect()
}

async fn propose(a: ProposeArgs) -> anyhow::Result<Outcome> {
    let dir = match (&a.dir, &a.acting.target.remote.server) {
        (Some(d), _) => d.clone(),
        (None, Some(_)) => bail!(
            "policy propose --server needs the bundle's directory\nhint: custody policy propose DIR --server URL"
        ),
        (None, None) => {
            let data = a.acting.target.instance.dir();
            data.policy_dir(&data.config()?)
        }
    };
    let request = ApplyPolicy {
        files: read_bundle(&dir)?.files,
    };
    let custody = Custody::open(&a.acting.target).await?;
    let change = custody.apply_policy(&request).await?;
    if a.acting.json {
        print_json(&json!(change));
    } else {
        print_line(&outcome(&change));
    }
    Ok(Outcome::Ok)
}

/// What proposing or reviewing did, in words.
fn outcome(change: &PolicyChange) -> String {
    let mut lines = match (&change.proposal, change.changed) {
        (_, true) if change.bootstrap => vec![format!(
            "policy {} is now in force (bootstrap: the first policy, put in force by the operator)",
            change.digest
        )],
        (Some(p), true) => vec![format!(
            "policy {} is now in force: proposal {} approved by {}",
            change.digest,
            p.record.id,
            approvers(p).join(", ")
        )],
        (_, true) => vec![format!("policy {} is now in force", change.digest)],
        (Some(p), false) => {
            let mut lines = vec![summary(p)];
            if p.standing == "open" {
                lines.push(format!(
                    "  it takes effect when {} more of {} approve: custody policy approve {} --rationale …",
                    p.approvals_needed,
                    owner_names(p),
                    p.record.id
                ));
            }
            lines
        }
        (None, false) => vec![format!(
            "policy {} is already in force; nothing recorded",
            change.digest
        )],
    };
    lines.extend(change_lines(&change.changes));
    lines.join("\n")
}

fn approvers(p: &ProposalView) -> Vec<&str> {
    p.record
        .reviews
        .iter()
        .filter(|v| v.verdict == Verdict::Approve)
        .map(|v| v.by.as_str())
        .collect()
}

fn owner_names(p: &ProposalView) -> String {
    p.record
        .owners
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// One line: `prop-… open: policy sha256:… by alice, 1 of 2 approvals (bob)`.
fn summary(p: &ProposalView) -> String {
    let r = &p.record;
    let approved = approvers(p);
    format!(
        "{} {}: policy {} proposed by {} at {}, {} of {} approval(s){}",
        r.id,
        p.standing,
        r.policy,
        r.proposed_by,
        crate::input::when(r.proposed_at),
        approved.len(),
        r.quorum,
        if approved.is_empty() {
            String::new()
        } else {
            format!(" ({})", approved.join(", "))
        }
    )
}

fn describe(p: &ProposalView) -> String {
    let r = &p.record;
    let mut lines = vec![
        summary(p),
        format!(
            "  replaces {}; expires {}",
            r.previous.as_deref().unwrap_or("nothing"),
            crate::input::when(r.expires_at)
        ),
        format!(
            "  needs {} approval(s) from {} (never the proposer)",
            r.quorum,
            owner_names(p)
        ),
    ];
    for v in &r.reviews {
        lines.push(format!(
            "  {:7} by {} at {}{}: {}",
            match v.verdict {
                Verdict::Approve => "approved",
                Verdict::Reject => "rejected",
            },
            v.by,
            crate::input::when(v.at),
            if v.statement.is_some() {
                " (signed)"
            } else {
                ""
            },
            v.rationale
        ));
    }
    lines.push("  changes:".into());
    lines.extend(change_lines(&r.changes));
    lines.join("\n")
}

async fn review(a: ReviewArgs, verdict: Verdict) -> anyhow::Result<Outcome> {
    super::approval::require_rationale(&a.review.rationale)?;
    let custody = Custody::open(&a.acting.target).await?;
    let statement = a
        .review
        .statement(&custody, verdict, async |_| {
            let proposal = custody.proposal(&a.id).await?.record;
            Ok(Approved::Proposal {
                proposal: proposal.id,
                policy: proposal.policy,
                previous: proposal.previous,
            })
        })
        .await?;
    let request = ReviewProposal {
        rationale: a.review.rationale,
        statement,
    };
    let change = custody.review_proposal(&a.id, verdict, &request).await?;
    if a.acting.json {
        print_json(&json!(change));
    } else {
        print_line(&outcome(&change));
    }
    Ok(Outcome::Ok)
}
