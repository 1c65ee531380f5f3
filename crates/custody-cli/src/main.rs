//! `custody`: the command-line tool.
//!
//! Exit codes, for scripts and CI (DESIGN §8): 0 ok / allowed, 1 denied or verification
//! failed, 2 usage or operational error. `anyhow` lives only here: library crates return
//! typed errors, and this is where they become a message and an exit code.

mod client;
mod cmd;
mod context;
mod custody;
mod datadir;
mod input;
mod ledger_source;
mod own_keys;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: the verifier and the server allocate many small short-lived values (parsed
/// events, JSON), which glibc's allocator frees slowly across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run the service: the ledger's public routes, the deploy gate and health checks, on
    /// the data directory (created with its keys and a starter policy on first run).
    ///
    /// Example: custody serve --listen 0.0.0.0:8080
    Serve(cmd::serve::ServeArgs),
    /// Seed a realistic organisation (three services through build → test → staging →
    /// production, approvals, a rejection, a rollback, and a release waiting in staging for
    /// an approver) into a fresh instance.
    Demo(cmd::demo::DemoArgs),
    /// Create a data directory: the ledger (SQLite by default), the log signing key and a
    /// starter configuration and policy. Refuses to touch an existing one.
    ///
    /// Example: custody init --data-dir /var/lib/custody
    Init(cmd::init::InitArgs),
    /// Read the ledger: signed checkpoint, entries, inclusion and consistency proofs, and a
    /// full integrity check.
    #[command(subcommand)]
    Log(cmd::log::LogCommand),
    /// The rules: check a bundle, see what it changes, propose it, review proposals.
    #[command(subcommand)]
    Policy(cmd::policy::PolicyCommand),
    /// Register artifacts with their builds and provenance.
    #[command(subcommand)]
    Artifact(cmd::catalog::ArtifactCommand),
    /// Attach evidence (tests, scans, SBOMs) to an artifact. custody reads the report (here,
    /// or on the server it is sent to), keeps it, and signs a statement of what it says; a
    /// malformed report, or one that says nothing its type's rules read, is refused (exit
    /// 2) naming the line or JSON path, and nothing is recorded.
    ///
    /// Example: custody attest --artifact sha256:4f2c… --type trivy scan.json --token $CI
    Attest(cmd::catalog::AttestArgs),
    /// Fetch a stored evidence report by its digest (the `evidence` an `evidence.attached`
    /// event names), byte for byte as attached; checked to hash to that digest.
    ///
    /// Example: custody report sha256:9f1c… --out junit.xml --server URL --token $T
    Report(cmd::catalog::ReportArgs),
    /// Create signed releases naming exact artifact digests.
    #[command(subcommand)]
    Release(cmd::release::ReleaseCommand),
    /// Ask to promote a release to an environment; its gates are evaluated at once.
    /// Exit 0 if the release is now certified there, 1 if a gate holds it.
    ///
    /// Example: custody promote shop@1.4.2 --to staging --server URL --token $CUSTODY_TOKEN
    Promote(cmd::promotion::PromoteArgs),
    /// Approve a pending promotion (bound to its release, environment and policy
    /// version; expires per the policy). Exit 1 if your approval does not count.
    ///
    /// An approval counts only from its approver: signed with their enrolled key
    /// (--sign-key), or sent with a credential they hold themselves (a sign-in, or a
    /// token they made); never with a token someone else made for them.
    ///
    /// Example: custody approve prm-… --rationale "canary clean" --sign-key ~/.custody/me.key
    Approve(cmd::promotion::ReviewArgs),
    /// Reject a pending promotion.
    Reject(cmd::promotion::ReviewArgs),
    /// Exceptions (waivers): a known finding allowed in one artifact or release until a
    /// date, with a remediation plan; approved by security, never by its requester.
    #[command(subcommand)]
    Exception(cmd::exception::ExceptionCommand),
    /// Report what runs in an environment; a failure rolls it back automatically.
    #[command(subcommand)]
    Deploy(cmd::environment::DeployCommand),
    /// Roll an environment back to its previous certified release that still passes.
    Rollback(cmd::environment::RollbackArgs),
    /// The deploy gate: exit 0 only if the digest may run in the environment.
    ///
    /// Example: custody verify --env production sha256:…
    Verify(cmd::environment::VerifyArgs),
    /// List the ledger's events, sliced by artifact, build, principal, environment, time.
    History(cmd::history::HistoryArgs),
    /// Evidence bundles and receipts for auditors, regulators and whoever receives a
    /// release, checked offline with only the log's public key.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    /// Show a promotion with its decisions and reviews.
    #[command(subcommand)]
    Promotion(cmd::promotion::PromotionCommand),
    /// Show or replay a recorded decision.
    #[command(subcommand)]
    Decision(cmd::promotion::DecisionCommand),
    /// Review who holds which role and when each was last used.
    #[command(subcommand)]
    Access(cmd::access::AccessCommand),
    /// Who custody takes you to be (the operator on the data directory, or a token's
    /// holder), how it knows, and the roles you hold.
    Whoami(cmd::whoami::WhoamiArgs),
    /// API tokens for people and services (create, list, revoke).
    #[command(subcommand)]
    Token(cmd::token::TokenCommand),
    /// Measure this machine: durable appends, proofs, promotions and the deploy gate, with
    /// baselines measured in the same run.
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

/// A check that ran and failed (a signature, a proof): exit 1, like a denial.
#[derive(Debug)]
pub(crate) struct VerificationFailed(pub(crate) String);

impl std::fmt::Display for VerificationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VerificationFailed {}

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
        Command::Serve(a) => cmd::serve::run(a),
        Command::Init(a) => cmd::init::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Log(c) => cmd::log::run(c),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Token(c) => cmd::token::run(c),
        Command::Whoami(a) => cmd::whoami::run(a),
        Command::Access(c) => cmd::access::run(c),
        Command::Policy(c) => cmd::policy::run(c),
        Command::Artifact(c) => cmd::catalog::artifact(c),
        Command::Attest(a) => cmd::catalog::attest(a),
        Command::Report(a) => cmd::catalog::report(a),
        Command::Release(c) => cmd::release::run(c),
        Command::Promote(a) => cmd::promotion::promote(a),
        Command::Approve(a) => cmd::promotion::review(a, custody_model::Verdict::Approve),
        Command::Reject(a) => cmd::promotion::review(a, custody_model::Verdict::Reject),
        Command::Exception(c) => cmd::exception::run(c),
        Command::Deploy(c) => cmd::environment::deploy(c),
        Command::Rollback(a) => cmd::environment::rollback(a),
        Command::Verify(a) => cmd::environment::verify(a),
        Command::History(a) => cmd::history::history(a),
        Command::Promotion(c) => cmd::promotion::promotion(c),
        Command::Decision(c) => cmd::promotion::decision(c),
        Command::Audit(c) => cmd::audit::run(c),
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
            let (code, label) = exit_of(&e);
            // `{:#}` prints the whole chain on one line: "reading key.pem: invalid key: …".
            // An error can carry text from elsewhere (a server's message): escaped too.
            eprintln!(
                "{label}: {}",
                crate::input::terminal_safe(&format!("{e:#}"))
            );
            ExitCode::from(code)
        }
    }
}

/// The exit code and label of a failed command: a use case's denial and a failed check
/// are answers (1); everything else, from a malformed request to an unreachable server,
/// is an error (2). The classes are the use cases' own faults.
fn exit_of(e: &anyhow::Error) -> (u8, &'static str) {
    use custody_app::Fault;
    if e.downcast_ref::<VerificationFailed>().is_some() {
        return (1, "FAILED");
    }
    match e
        .downcast_ref::<custody_app::AppError>()
        .map(custody_app::AppError::fault)
    {
        Some(Fault::Denied) => (1, "denied"),
        Some(Fault::NotFound) => (2, "not found"),
        Some(Fault::Conflict) => (2, "conflict"),
        Some(Fault::Integrity) => (2, "integrity failure"),
        Some(Fault::Unavailable) => (2, "unavailable"),
        Some(Fault::Invalid) | None => (2, "error"),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
