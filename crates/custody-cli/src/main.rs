//! `custody`: the command-line tool.
//!
//! Exit codes, for scripts and CI (DESIGN §8): 0 ok / allowed, 1 denied or verification
//! failed, 2 usage or operational error. `anyhow` lives only here: library crates return
//! typed errors, and this is where they become a message and an exit code.

mod cmd;
mod datadir;
mod input;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// custody: a chain of custody from source commit to running release.
///
/// Sign and verify artifacts, releases and provenance (DSSE, in-toto, SLSA), and keep a
/// tamper-evident Merkle ledger that auditors verify offline.
///
/// Exit status: 0 ok, 1 denied or verification failed, 2 usage or operational error.
#[derive(Debug, Parser)]
#[command(
    name = "custody",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data directory: the ledger (SQLite by default), the log signing key and a
    /// starter configuration and policy. Refuses to touch an existing one.
    ///
    /// Example: custody init --data-dir /var/lib/custody
    Init(cmd::init::InitArgs),
    /// Read the ledger: signed checkpoint, entries, inclusion and consistency proofs, and a
    /// full integrity check.
    #[command(subcommand)]
    Log(cmd::log::LogCommand),
    /// Measure this machine: durable appends and proof latency, with baselines.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Generate and inspect signing keys (Ed25519, ECDSA P-256).
    #[command(subcommand)]
    Key(cmd::key::KeyCommand),
    /// Print the content digest of files: `sha256:HEX  FILE` (streaming, any size).
    Digest(cmd::digest::DigestArgs),
    /// Sign and verify DSSE envelopes.
    #[command(subcommand)]
    Dsse(cmd::dsse::DsseCommand),
    /// Sign and verify C2SP signed notes (the format of ledger checkpoints).
    #[command(subcommand)]
    Note(cmd::note::NoteCommand),
    /// Build and check in-toto Statement v1 documents.
    #[command(subcommand)]
    Statement(cmd::statement::StatementCommand),
}

/// Runs async work (the store) on a runtime made for this one command.
pub(crate) fn block_on<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))?
        .block_on(work)
}

/// What a command concluded, beyond "it ran".
pub(crate) enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit 1: a check ran and said no.
    Denied,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init(a) => cmd::init::run(a),
        Command::Log(c) => cmd::log::run(c),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Key(c) => cmd::key::run(c),
        Command::Digest(a) => cmd::digest::run(a),
        Command::Dsse(c) => cmd::dsse::run(c),
        Command::Note(c) => cmd::note::run(c),
        Command::Statement(c) => cmd::statement::run(c),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Denied) => ExitCode::from(1),
        Err(e) => {
            // `{:#}` prints the whole chain on one line: "reading key.pem: invalid key: …".
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
