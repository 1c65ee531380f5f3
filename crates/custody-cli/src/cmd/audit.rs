//! `custody audit`: hand the ledger to an auditor and let them check it alone.
//!
//! - `export` writes a bundle of a scope from the local data directory (as the exporter's
//!   roles allow: confidential rationales only for auditors and admins);
//! - `verify` checks a bundle offline with only the log's public key (exit 1 naming each
//!   failed entry and check, 2 if the bundle cannot be read), and writes the printable HTML
//!   report a regulator reads;
//! - `receipt` and `verify-receipt`: one certification, proved to whoever receives the
//!   release.

use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use custody_app::audit::{self, Report, Scope};
use custody_app::events::{Event, EventBody};
use custody_model::{Authentication, Digest, Timestamp};

use crate::context::InstanceArgs;
use crate::input::{load_public_key, print_json, print_line, read_limited};
use crate::{Outcome, VerificationFailed};

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Write an evidence bundle (a tar of JSON files, docs/audit-bundle.md) of a scope: the
    /// whole ledger, one release, one environment or a time range, with the lineage of
    /// every release certified in it, every policy version (the key history), the signed
    /// checkpoints they are proved against and the proofs.
    ///
    /// Example: custody audit export --env production --out prod.bundle --token $AUDITOR_TOKEN
    Export(ExportArgs),
    /// Check a bundle offline with the log's public key alone: every checkpoint signature,
    /// inclusion and consistency proof, every envelope against the keys in force when it
    /// was recorded, every decision replayed, every certification's lineage. Exit 1 naming
    /// each failed entry and check; 2 if the bundle cannot be read. A bundle alone cannot
    /// show it was not cut short: --checkpoint (a checkpoint you kept) or --min-size ties
    /// it to the log you know, and without them the report says truncation was not
    /// checked. Who exported it, when, and its scope are reported apart, as the exporter's
    /// unverified claims.
    ///
    /// Example: custody audit verify prod.bundle --log-key log.pub --checkpoint kept.checkpoint --html report.html
    Verify(VerifyArgs),
    /// Write a receipt proving that DIGEST was certified in an environment: the decision
    /// (with its signed VSA) and the certification, each with its inclusion proof in a
    /// signed checkpoint. It proves the certification of the release the environment runs
    /// now; one that a rollback or a later release replaced is refused (--historical
    /// writes it anyway, as a record of the past). No receipt proves that a
    /// certification still stands tomorrow.
    ///
    /// Example: custody audit receipt sha256:… --env production --out receipt.json
    Receipt(ReceiptArgs),
    /// Check a receipt offline with the log's public key (and the attestor's, if you hold
    /// it): what it proves (certified at a log index, by break-glass or not) and what it
    /// cannot (that the certification still stands). Exit 1 if a check fails.
    VerifyReceipt(VerifyReceiptArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// Who exports (their roles decide what the bundle may hold): this token's holder, or
    /// without one the data directory's operator.
    #[arg(
        long,
        env = "CUSTODY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    #[command(flatten)]
    actor: crate::context::ActorArgs,
    /// Where to write the bundle (written whole or not at all).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Only this release (NAME@VERSION) and its lineage.
    #[arg(long, value_name = "NAME@VERSION", conflicts_with_all = ["env", "since", "until"])]
    release: Option<String>,
    /// Only this environment, with the lineage of every release certified there.
    #[arg(long, value_name = "ENV", conflicts_with_all = ["since", "until"])]
    env: Option<String>,
    /// Only entries stamped at or after this time (RFC 3339), with their lineage.
    #[arg(long, value_name = "TIME")]
    since: Option<Timestamp>,
    /// Only entries stamped before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: Option<Timestamp>,
    /// Also carry a consistency proof from the log's tree of SIZE entries to the
    /// bundle's anchor, for an auditor who kept a checkpoint of that size
    /// (`custody audit verify --checkpoint`); a whole-ledger bundle needs none.
    #[arg(long, value_name = "SIZE")]
    prove_from: Option<u64>,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The bundle.
    bundle: PathBuf,
    /// The log's public key (SPKI PEM), obtained from the log's operator out of band.
    #[arg(long, value_name = "PUB")]
    log_key: PathBuf,
    /// A signed checkpoint you kept earlier (`custody log checkpoint > FILE`, the state
    /// file of `custody log watch`, or one the operator published): the bundle's anchor
    /// must be at least as large and consistent with it, so that a bundle cut back to an
    /// earlier checkpoint, or from a fork of the log you know, fails.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// The fewest entries the bundle's anchor may have (a whole-ledger bundle cut back
    /// to an earlier checkpoint fails). At least 1: 0 would check nothing.
    #[arg(long, value_name = "N", value_parser = at_least_one_entry)]
    min_size: Option<u64>,
    /// Also write the printable HTML report here.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Print the whole report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReceiptArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    /// The artifact's digest.
    digest: Digest,
    /// The environment it was certified in.
    #[arg(long = "env", value_name = "ENV")]
    environment: String,
    /// Where to write the receipt (default: standard output).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write the receipt even if the certification no longer stands (a rollback or a
    /// later release replaced it): a record of the past, not of what runs there.
    #[arg(long)]
    historical: bool,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyReceiptArgs {
    /// The receipt.
    receipt: PathBuf,
    /// The log's public key (SPKI PEM).
    #[arg(long, value_name = "PUB")]
    log_key: PathBuf,
    /// The attestor's public key (SPKI PEM), to pin instead of the one the receipt carries
    /// (which counts only if the proven decision entry names its key id).
    #[arg(long, value_name = "PUB")]
    attestor_key: Option<PathBuf>,
    /// Fail (exit 1) if the certification was by break-glass (an exception to the policy)
    /// rather than a clean pass of every gate.
    #[arg(long)]
    refuse_break_glass: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: AuditCommand) -> anyhow::Result<Outcome> {
    match command {
        AuditCommand::Export(a) => export(a),
        AuditCommand::Verify(a) => verify(a),
        AuditCommand::Receipt(a) => receipt(a),
        AuditCommand::VerifyReceipt(a) => verify_receipt(a),
    }
}

fn export(args: ExportArgs) -> anyhow::Result<Outcome> {
    let scope = match (&args.release, &args.env) {
        (Some(release), _) => Scope::Release {
            release: release.parse::<custody_model::ReleaseRef>()?.to_string(),
        },
        (None, Some(environment)) => Scope::Environment {
            environment: environment.clone(),
        },
        (None, None) if args.since.is_some() || args.until.is_some() => Scope::Time {
            since: args.since,
            until: args.until,
        },
        (None, None) => Scope::All,
    };
    crate::block_on(async move {
        let app = args.instance.app().await?;
        let now = crate::context::now()?;
        let actor = args.actor.local_actor(&app, args.token.as_deref()).await?;
        let auth = actor.auth.clone().unwrap_or(Authentication::System);
        let exporter = app.authenticated(&actor.principal, auth, now).await?;
        let dir = match args.out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temp = tempfile::NamedTempFile::new_in(&dir)
            .with_context(|| format!("creating a file in {}", dir.display()))?;
        let bar = crate::progress::bar(0, 0, "exporting entries");
        let mut progress = |done: u64, total: u64| {
            bar.set_length(total);
            bar.set_position(done);
        };
        let request = audit::ExportRequest {
            scope: scope.clone(),
            prove_from: args.prove_from,
        };
        let (exported, out) = app
            .audit_export(
                &exporter,
                &request,
                now,
                BufWriter::new(temp),
                &mut progress,
            )
            .await?;
        bar.finish_and_clear();
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.as_file().sync_all()?;
        file.persist(&args.out)
            .with_context(|| format!("writing {}", args.out.display()))?;
        if args.json {
            print_json(&serde_json::to_value(&exported)?);
        } else {
            print_line(&format!(
                "wrote {}: {} ({} entries, proved against the checkpoint of {} entries; {} checkpoints; {} raw reports; confidential rationales {})",
                args.out.display(),
                scope,
                exported.entries,
                exported.anchor,
                exported.checkpoints,
                exported.reports,
                match exported.confidential {
                    audit::Confidential::Included => "included",
                    audit::Confidential::Withheld => "withheld",
                }
            ));
        }
        app.close().await;
        Ok(Outcome::Ok)
    })
}

fn verify(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let key = load_public_key(&args.log_key)?;
    let file = std::fs::File::open(&args.bundle)
        .with_context(|| format!("opening the bundle {}", args.bundle.display()))?;
    let expected = audit::Expected {
        checkpoint: args
            .checkpoint
            .as_deref()
            .map(kept_checkpoint)
            .transpose()?,
        min_size: args.min_size,
    };
    let bar = crate::progress::bar(0, 0, "verifying entries");
    let report = audit::verify_bundle_expecting(BufReader::new(file), &key, &expected, &mut |p| {
        if let Some(total) = p.expected {
            bar.set_length(total);
        }
        bar.set_position(p.entries);
    })
    .with_context(|| format!("{}", args.bundle.display()))?;
    bar.finish_and_clear();
    if let Some(path) = &args.html {
        let html = custody_server::audit_report::render(&report);
        std::fs::write(path, html).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        print_json(&serde_json::to_value(&report)?);
    } else {
        print_line(&summary(&report));
    }
    if report.ok() {
        return Ok(Outcome::Ok);
    }
    let failed = report.failures.len();
    // The text report above lists every failure; only beside JSON does stderr name one.
    Err(VerificationFailed(if args.json {
        format!(
            "{failed} check(s) failed; the first: {}",
            report.failures[0]
        )
    } else {
        format!("{failed} check(s) failed (each is listed above)")
    })
    .into())
}

/// The signed note of a checkpoint the auditor kept: the file is the note itself, or the
/// JSON state `custody log watch` keeps (whose `note` it is).
fn kept_checkpoint(path: &std::path::Path) -> anyhow::Result<String> {
    let text = crate::input::read_text(path, 1 << 20, "checkpoint")?;
    if !text.trim_start().starts_with('{') {
        return Ok(text);
    }
    let state: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is neither a signed note nor JSON", path.display()))?;
    match state.get("note") {
        Some(serde_json::Value::String(note)) => Ok(note.clone()),
        _ => anyhow::bail!(
            "{}: a JSON checkpoint file must hold the signed note in \"note\" (as custody log watch keeps it)",
            path.display()
        ),
    }
}

/// What a verification checked and found, for a person.
fn summary(r: &Report) -> String {
    let c = &r.checked;
    let mut s = format!("{} of log {}, checked offline\n", r.format, r.origin);
    s.push_str(&format!(
        "  checkpoints: {} signatures by the log key verified, {} consistency proofs\n",
        c.checkpoints, c.consistency_proofs
    ));
    s.push_str(&format!(
        "  entries: {} against the checkpoint of {} entries ({})\n",
        c.entries,
        r.anchor,
        if r.complete {
            format!(
                "the tree recomputed; {} checkpoint roots matched",
                c.roots_recomputed
            )
        } else {
            format!("{} inclusion proofs", c.inclusion_proofs)
        }
    ));
    s.push_str(&format!(
        "  signatures: {} policy versions read; {} provenance, {} release manifests, {} VSAs, {} evidence statements, {} signed approvals verified against the keys in force\n",
        c.policies, c.provenance, c.manifests, c.vsas, c.evidence_statements, c.approvals_signed
    ));
    s.push_str(&format!(
        "  reports: {} raw reports whole (each hashing to the digest its evidence entries name, of the size they recorded)\n",
        c.reports
    ));
    s.push_str(&format!(
        "  decisions: {} replayed to their recorded gates, {} readings of raw reports in their facts read again from the reports ({} not confirmed: see the notes); confidential rationales: {} checked, {} withheld\n",
        c.decisions_replayed,
        c.facts_rederived,
        c.facts_unconfirmed,
        c.rationales_checked,
        c.rationales_withheld
    ));
    s.push_str(&format!(
        "  lineage: {} certifications traced to their decision, promotion, release, artifacts, evidence and approvals\n",
        c.certifications
    ));
    s.push_str(&format!("  truncation: {}\n", r.truncation.summary));
    // Only a complete bundle knows what runs: a scoped one knows the latest certification
    // among its entries, and a later one may lie outside its scope.
    if !r.complete && !r.story.environments.is_empty() {
        s.push_str(
            "  the latest certification in this bundle (a part of the ledger; a later one may be outside it):\n",
        );
    }
    if r.complete && !r.story.environments.is_empty() {
        s.push_str(&format!(
            "  what runs where, as of the checkpoint of {} entries{}:\n",
            r.anchor,
            if r.truncation.checked {
                ""
            } else {
                " (the newest? truncation was not checked)"
            }
        ));
    }
    for e in &r.story.environments {
        let withdrawn = if e.trust_withdrawn {
            ", its trust since withdrawn: see below"
        } else {
            ""
        };
        if r.complete {
            s.push_str(&format!(
                "    {} runs {} (since entry {}{withdrawn})\n",
                e.name, e.release, e.since_entry
            ));
        } else {
            s.push_str(&format!(
                "    {}: {} (entry {}{withdrawn})\n",
                e.name, e.release, e.since_entry
            ));
        }
    }
    // Exceptions, as the JSON and HTML reports show them: break-glass and rollbacks.
    for c in r
        .story
        .certifications
        .iter()
        .filter(|c| c.break_glass.is_some())
    {
        s.push_str(&format!(
            "  exception: entry {} certified {} in {} by break-glass ({}), overriding {}\n",
            c.entry,
            c.release,
            c.environment,
            crate::input::printable(c.break_glass.as_deref().unwrap_or_default(), false),
            c.overridden.join(", ")
        ));
    }
    for b in &r.story.rollbacks {
        s.push_str(&format!(
            "  rollback: entry {} rolled {} back from {} to {} ({})\n",
            b.index,
            b.environment,
            b.from,
            b.to,
            crate::input::printable(&b.reason, false)
        ));
    }
    // Signatures a later revocation took back: right when decided, untrusted now.
    for w in &r.story.withdrawn {
        let rests = if w.environments.is_empty() {
            String::new()
        } else {
            format!("; {} rest(s) on it", w.environments.join(", "))
        };
        s.push_str(&format!(
            "  withdrawn: entry {} ({} {}) was signed by key {}, which entry {} revoked ({}) with effect from {}{rests}\n",
            w.entry,
            w.what,
            w.name,
            w.key,
            w.revoked_at_entry,
            crate::input::printable(&w.reason, false),
            w.cutoff
        ));
    }
    for note in &r.notes {
        s.push_str(&format!("  note: {note}\n"));
    }
    s.push_str(&unverified(r));
    if r.ok() {
        s.push_str("ok: every check passed");
    } else {
        for f in &r.failures {
            s.push_str(&format!("FAILED {f}\n"));
        }
        s.push_str(&format!("{} check(s) failed", r.failures.len()));
    }
    s
}

/// The manifest's claims, apart from what was verified and said to be unverified: the
/// exporter could have written anything there.
fn unverified(r: &Report) -> String {
    let u = &r.unverified;
    // Anyone could have written these: no control character reaches the terminal.
    let shown = |t: &str| crate::input::printable(t, false).into_owned();
    format!(
        "  {}:\n    scope: {}\n    exported by: {}, at {}\n    confidential rationales: {}\n",
        u.status,
        shown(&u.scope.to_string()),
        shown(&u.exported_by),
        shown(&crate::input::when_text(&u.exported_at)),
        match u.confidential {
            audit::Confidential::Included => "included",
            audit::Confidential::Withheld => "withheld",
        }
    )
}

fn receipt(args: ReceiptArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        let app = args.instance.app().await?;
        let (receipt, standing) = app
            .audit_receipt(&args.digest, &args.environment, args.historical)
            .await?;
        let text = serde_json::to_string_pretty(&receipt)? + "\n";
        // What it proves and cannot, on standard error (the receipt may be on standard
        // output); the same is what verify-receipt says from the proven entries alone.
        let mut said = format!(
            "this receipt proves that {} was certified in {} with {} at ledger index {}",
            args.digest, args.environment, receipt.release, receipt.certification.index
        );
        if let Some(reason) = Event::from_leaf(receipt.decision.leaf.as_bytes())
            .ok()
            .and_then(|e| match e.body {
                EventBody::DecisionRecorded(d) => d.break_glass,
                _ => None,
            })
        {
            said.push_str(&format!(
                " BY BREAK-GLASS ({}), not a clean pass",
                crate::input::printable(&reason, false)
            ));
        }
        match &standing {
            audit::Standing::Stands { restored_at } => {
                if let Some(at) = restored_at {
                    said.push_str(&format!(" (a rollback at entry {at} brought it back)"));
                }
                said.push_str("; it cannot prove that the certification still stands later");
            }
            audit::Standing::Replaced { how, now, .. } => said.push_str(&format!(
                "; warning: it NO LONGER STANDS ({}; {now} does not hold it): a record of the past",
                crate::input::printable(how, false)
            )),
        }
        eprintln!("{said}");
        match &args.out {
            Some(path) => {
                let mut f = std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?;
                f.write_all(text.as_bytes())?;
                f.sync_all()?;
            }
            None => crate::input::print_raw(&text),
        }
        app.close().await;
        Ok(Outcome::Ok)
    })
}

fn verify_receipt(args: VerifyReceiptArgs) -> anyhow::Result<Outcome> {
    let log_key = load_public_key(&args.log_key)?;
    let attestor = args
        .attestor_key
        .as_deref()
        .map(load_public_key)
        .transpose()?;
    let bytes = read_limited(&args.receipt, audit::MAX_RECEIPT, "receipt")?;
    let report = audit::verify_receipt(&bytes, &log_key, attestor.as_ref())
        .with_context(|| format!("{}", args.receipt.display()))?;
    // Decided before anything is printed, so that the JSON says it too.
    let refused = match (&report.break_glass, args.refuse_break_glass) {
        (Some(reason), true) if report.failures.is_empty() => Some(format!(
            "the certification was by break-glass ({}), and --refuse-break-glass asks for a clean pass",
            crate::input::printable(reason, false)
        )),
        _ => None,
    };
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["refused"] = serde_json::json!(refused);
        print_json(&value);
    } else {
        let mut s = String::new();
        for c in &report.checked {
            s.push_str(&format!("  ok: {}\n", crate::input::printable(c, false)));
        }
        for f in &report.failures {
            s.push_str(&format!(
                "  FAILED: {}\n",
                crate::input::printable(f, false)
            ));
        }
        if let Some(proves) = &report.proves {
            s.push_str(&format!(
                "proved: {}\nnot proved: {}",
                crate::input::printable(proves, false),
                report.does_not_prove
            ));
        }
        print_line(s.trim_end());
    }
    if let Some(refused) = refused {
        return Err(VerificationFailed(refused).into());
    }
    if report.failures.is_empty() {
        return Ok(Outcome::Ok);
    }
    Err(VerificationFailed(format!(
        "the receipt does not verify: {}",
        report.failures[0]
    ))
    .into())
}

/// `--min-size`: a count of entries, at least 1.
fn at_least_one_entry(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("0 would check nothing: give the size of the log you expect the bundle to reach (at least 1)".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}: a number of ledger entries, at least 1")),
    }
}
