//! `custody log recover`: the operator's explicit, recorded answer to lost history.
//!
//! custody refuses to write to a log whose head does not extend the newest checkpoint it
//! signed or verified (kept in memory while it runs and in the checkpoint file across
//! restarts): someone rolled the database back, truncated it or forked it. This command
//! opens the ledger despite that, shows what was found, and appends a `log.recovered`
//! event naming the operator, their reason and what was lost (the signed checkpoint seen
//! before, and the size and root accepted). Only then does the ledger append again. A head
//! row moved back over entries the database still holds loses nothing: the head is put back
//! on the newest checkpoint the log signed, once those entries give its root.

use clap::Args;
use custody_store::OnIntegrityFailure;
use serde_json::json;

use crate::Outcome;
use crate::context::{ActorArgs, InstanceArgs};
use crate::input::{print_json, print_line};

#[derive(Debug, Args)]
pub(crate) struct RecoverArgs {
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(flatten)]
    actor: ActorArgs,
    /// Why you accept the log as it stands (recorded in the ledger; at most 1 KiB).
    #[arg(long)]
    reason: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn recover(args: RecoverArgs) -> anyhow::Result<Outcome> {
    let app = args
        .instance
        .dir()
        .open_app_with(
            args.instance.database_url.as_deref(),
            OnIntegrityFailure::ReadOnly,
        )
        .await?;
    // Only the operator of the data directory recovers its log: no token is taken.
    let actor = args.actor.local_actor(&app, None).await?;
    if let Some(failure) = app.integrity_failure() {
        // Shown before anything is recorded, so the operator sees what they accept.
        eprintln!("custody found: {failure}");
    }
    let recovered = app.recover_log(&actor, &args.reason).await?;
    if args.json {
        print_json(&json!(recovered));
    } else {
        print_line(&if recovered.restored {
            format!(
                "recorded at ledger index {}: {} put the log's head back on the checkpoint of {} entries, which the database still held whole (the head had been moved back to {}); nothing was lost; custody appends again",
                recovered.ledger_index, actor.principal, recovered.lost_size, recovered.found_size
            )
        } else {
            format!(
                "recorded at ledger index {}: {} accepted the log at {} entries, losing the history after the checkpoint of {} entries; custody appends again",
                recovered.ledger_index, actor.principal, recovered.found_size, recovered.lost_size
            )
        });
    }
    app.close().await;
    Ok(Outcome::Ok)
}
