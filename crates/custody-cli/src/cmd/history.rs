//! `custody history`: the ledger's events, sliced.

use clap::Args;
use custody_app::HistoryFilter;
use custody_model::Timestamp;
use serde_json::json;

use crate::Outcome;
use crate::context::InstanceArgs;
use crate::custody::Custody;
use crate::input::{print_json, print_line};

#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// Events about this artifact: its digest, or on the data directory the start of it
    /// as this command prints it (at least 8 hex digits).
    #[arg(long)]
    artifact: Option<String>,
    /// Events about this build (its invocation id).
    #[arg(long)]
    build: Option<String>,
    /// Events by this principal (who built, signed, requested, approved, reported).
    #[arg(long)]
    principal: Option<String>,
    /// Events about this environment.
    #[arg(long = "env", value_name = "ENV")]
    environment: Option<String>,
    /// Events at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<Timestamp>,
    /// Events before this time (RFC 3339).
    #[arg(long)]
    until: Option<Timestamp>,
    /// Events of this kind: e.g. release.created, key.rotated, key.revoked (`custody
    /// history --json` shows each event's `type`).
    #[arg(long = "type", value_name = "KIND")]
    kind: Option<String>,
    /// At most this many, the newest (0: all).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Only entries with a ledger index below this: the next page back in time is
    /// --before the first index of this one.
    #[arg(long, value_name = "INDEX")]
    before: Option<u64>,
    #[command(flatten)]
    instance: InstanceArgs,
    #[command(flatten)]
    remote: crate::client::RemoteArgs,
    /// Print the events as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn history(a: HistoryArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        let custody = Custody::connect(&a.instance, &a.remote, None).await?;
        let artifact = match &a.artifact {
            Some(given) => Some(custody.artifact_by_prefix(given).await?),
            None => None,
        };
        let filter = HistoryFilter {
            artifact,
            build: a.build.clone(),
            principal: a.principal.clone(),
            environment: a.environment.clone(),
            since: a.since,
            until: a.until,
            before: a.before,
            limit: a.limit,
            kind: a.kind.clone(),
        };
        let entries = custody.history(&filter).await?;
        if a.json {
            print_json(&json!(entries));
        } else if entries.is_empty() {
            // Said, not a blank line: an empty answer is an answer (exit 0). A name the
            // policy does not know is the likeliest reason: say which it knows.
            let why = match custody.policy_in_force().await {
                Ok(in_force) => custody_app::why_nothing_matches(&filter, &in_force.policy)
                    .map(|hint| format!("\nhint: {hint}"))
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            eprintln!("no events match{why}");
        } else {
            let lines: Vec<String> = entries
                .iter()
                .map(|e| {
                    format!(
                        "{:>6}  {}  {:22} {}",
                        e.index,
                        crate::input::when(e.event.at),
                        e.event.kind(),
                        crate::input::one_line(&custody_app::describe(&e.event))
                    )
                })
                .collect();
            print_line(&lines.join("\n"));
            // A full page may not be all: say how to see more (on stderr, so the lines
            // above stay what a script reads).
            if a.limit > 0 && entries.len() == a.limit {
                eprintln!(
                    "the newest {} shown; older ones: --before {} (or --limit 0 for all)",
                    a.limit, entries[0].index
                );
            }
        }
        Ok(Outcome::Ok)
    })
}
