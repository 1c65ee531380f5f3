//! `custody access review`: who holds which role, when each last used it, and what has gone
//! unused.

use clap::{Args, Subcommand};
use serde_json::json;

use crate::Outcome;
use crate::context::ReadTarget;
use crate::custody::Custody;
use crate::input::{print_json, print_line};

#[derive(Debug, Subcommand)]
pub(crate) enum AccessCommand {
    /// Every role binding of the policy in force with its last use in the access log, and
    /// the roles unused for --unused-days (candidates for removal).
    Review(ReviewArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ReviewArgs {
    /// A role not used for this many days is reported unused.
    #[arg(long, default_value_t = 90)]
    unused_days: i64,
    #[command(flatten)]
    target: ReadTarget,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: AccessCommand) -> anyhow::Result<Outcome> {
    let AccessCommand::Review(a) = command;
    crate::block_on(async move {
        let holdings = Custody::reading(&a.target)
            .await?
            .access_review(a.unused_days)
            .await?;
        if a.json {
            print_json(&json!(holdings));
        } else {
            let mut lines = vec![format!(
                "{:24} {:20} {:32} status",
                "principal", "role", "last used"
            )];
            for h in &holdings {
                lines.push(format!(
                    "{:24} {:20} {:32} {}",
                    h.principal,
                    h.role,
                    h.last_used
                        .as_deref()
                        .map_or_else(|| "never".to_owned(), crate::input::when_text),
                    h.status(a.unused_days)
                ));
            }
            print_line(&lines.join("\n"));
        }
        Ok(Outcome::Ok)
    })
}
