//! `custody whoami`: who custody takes you to be, how it knows, and the roles you hold.

use clap::Args;
use serde_json::json;

use crate::Outcome;
use crate::context::Acting;
use crate::custody::Custody;
use crate::input::{print_json, print_line};

#[derive(Debug, Args)]
pub(crate) struct WhoamiArgs {
    #[command(flatten)]
    acting: Acting,
}

pub(crate) fn run(a: WhoamiArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async move {
        let me = Custody::open(&a.acting.target).await?.whoami().await?;
        if a.acting.json {
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
