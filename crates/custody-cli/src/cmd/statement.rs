//! `custody statement`: build in-toto Statement v1 documents.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use custody_crypto::statement::{Statement, Subject};
use custody_model::Digest;

use crate::Outcome;
use crate::input::{MAX_DOCUMENT, print_line, read_limited};

#[derive(Debug, Subcommand)]
pub(crate) enum StatementCommand {
    /// Build an in-toto Statement v1 and print it as JSON (sign it with `custody dsse sign
    /// --payload-type application/vnd.in-toto+json`).
    ///
    /// Example: custody statement create --subject app.tar=sha256:ab…ef
    ///   --predicate-type https://slsa.dev/provenance/v1 --predicate provenance.json
    Create(CreateArgs),
    /// Check that a file is a valid in-toto Statement v1 (exit 0) or say what is wrong
    /// (exit 1).
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// A subject as NAME=sha256:HEX (repeat for several).
    #[arg(long = "subject", required = true, value_name = "NAME=DIGEST")]
    subjects: Vec<String>,
    /// The predicate type URI.
    #[arg(long, value_name = "URI")]
    predicate_type: String,
    /// A file holding the predicate, a non-empty JSON object; `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    predicate: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The statement JSON file; `-` reads standard input.
    file: PathBuf,
}

pub(crate) fn run(command: StatementCommand) -> anyhow::Result<Outcome> {
    match command {
        StatementCommand::Create(a) => create(a),
        StatementCommand::Check(a) => check(a),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<Outcome> {
    let mut subjects = Vec::new();
    for s in &args.subjects {
        // Digests never contain '=', so the last '=' separates name from digest.
        let Some((name, digest)) = s.rsplit_once('=') else {
            bail!("--subject {s:?} is not NAME=sha256:HEX");
        };
        let digest: Digest = digest.parse().with_context(|| format!("--subject {s:?}"))?;
        subjects.push(Subject::new(name, &digest).with_context(|| format!("--subject {s:?}"))?);
    }
    let bytes = read_limited(&args.predicate, MAX_DOCUMENT, "predicate")?;
    let predicate: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("predicate {} is not JSON", args.predicate.display()))?;
    let statement = Statement::new(subjects, args.predicate_type, predicate)?;
    print_line(&String::from_utf8_lossy(&statement.to_json()));
    Ok(Outcome::Ok)
}

fn check(args: CheckArgs) -> anyhow::Result<Outcome> {
    let bytes = read_limited(&args.file, MAX_DOCUMENT, "statement")?;
    match Statement::from_json(&bytes) {
        Ok(st) => {
            print_line(&format!(
                "valid in-toto Statement v1: {} subject(s), predicateType {}",
                st.subjects().len(),
                st.predicate_type()
            ));
            Ok(Outcome::Ok)
        }
        Err(e) => {
            eprintln!("{}: {e}", args.file.display());
            Ok(Outcome::Denied)
        }
    }
}
