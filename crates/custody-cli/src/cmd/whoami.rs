//! `custody whoami`: who custody takes you to be, how it knows, and the roles you hold.

use clap::Args;
use serde_json::json;

use crate::Outcome;
use crate::context::Target;
use crate::custody::Custody;
use crate::input::{print_json, print_line};

#[derive(Debug, Args)]
pub(crate) struct WhoamiArgs {
    #[command(flatten)]
    target: Target,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: WhoamiArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        let me = Custody::open(&a.target).await?.whoami().await?;
        if a.json {
            print_json(&json!(me));
        } else {
            print_line(&format!(
                "{}\n  authenticated by  {}\n  roles             {}",
                me.principal,
                me.auth.describe(),
                if me.roles.is_empty() {
                    "none".to_owned()
                } else {
                    me.roles.join(", ")
                }
            ));
        }
        Ok(Outcome::Ok)
    })
}
