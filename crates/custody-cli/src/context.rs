//! What the pipeline commands share: who acts and when, the data directory, and reading a
//! policy bundle from disk.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use custody_app::{Actor, App, Clock, FixedClock, SystemClock};
use custody_model::Timestamp;
use custody_policy::{Bundle, MAX_POLICY_FILE, POLICY_FILE};
use custody_store::SqlStore;

use crate::datadir::{DEFAULT_DATA_DIR, DataDir};

/// Where the instance is.
#[derive(Debug, Clone, Args)]
pub(crate) struct InstanceArgs {
    /// The data directory (config.toml, keys, SQLite ledger).
    #[arg(long, env = "CUSTODY_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
    pub(crate) data_dir: PathBuf,
    /// Use this PostgreSQL database instead of the configured one.
    #[arg(long, value_name = "postgres://…")]
    pub(crate) database_url: Option<String>,
}

impl InstanceArgs {
    pub(crate) fn dir(&self) -> DataDir {
        DataDir::new(&self.data_dir)
    }

    pub(crate) async fn app(&self) -> anyhow::Result<App<SqlStore>> {
        self.dir().open_app(self.database_url.as_deref()).await
    }
}

/// Where a command that records something acts, and as whom: the data directory (as its
/// operator, or as a token's holder) or a server (as its token's holder).
#[derive(Debug, Clone, Args)]
pub(crate) struct Target {
    #[command(flatten)]
    pub(crate) instance: InstanceArgs,
    #[command(flatten)]
    pub(crate) remote: crate::client::RemoteArgs,
    #[command(flatten)]
    pub(crate) actor: ActorArgs,
}

/// Where a command acts (the data directory or a server, and as whom), and how it answers.
#[derive(Debug, Clone, Args)]
pub(crate) struct Acting {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Print the result as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// What every command that records something takes: where it acts, a key that makes a
/// retry safe, and how it answers.
#[derive(Debug, Clone, Args)]
pub(crate) struct Recording {
    /// Makes a retry with the same key return the first call's outcome instead of acting
    /// a second time (a token's text is shown only the first time): up to 256 visible
    /// ASCII characters, e.g. the CI job's run id and step.
    #[arg(long)]
    pub(crate) idempotency_key: Option<String>,
    #[command(flatten)]
    pub(crate) target: Target,
    /// Print the result as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

impl Recording {
    /// The idempotency key, if one was given.
    pub(crate) fn key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

/// Where a command that only reads acts: the data directory or a server.
#[derive(Debug, Clone, Args)]
pub(crate) struct ReadTarget {
    #[command(flatten)]
    pub(crate) instance: InstanceArgs,
    #[command(flatten)]
    pub(crate) remote: crate::client::RemoteArgs,
}

/// Who acts: on the data directory, its operator (the operating-system user running the
/// command, recorded as `local:USER`), or the holder of `--token`; on a server, the token's
/// holder. Nobody can claim a name: `--as` is gone.
#[derive(Debug, Clone, Args)]
pub(crate) struct ActorArgs {
    /// Removed: names are proven, not claimed (see `custody whoami`).
    #[arg(long = "as", hide = true, value_name = "PRINCIPAL")]
    pub(crate) claimed: Option<String>,
}

impl ActorArgs {
    /// Who acts on the local data directory: the holder of `token`, if one is given (an
    /// API token checked against the directory's own records), or the operator.
    pub(crate) async fn local_actor(
        &self,
        app: &App<SqlStore>,
        token: Option<&str>,
    ) -> anyhow::Result<Actor> {
        if self.claimed.is_some() || std::env::var_os("CUSTODY_PRINCIPAL").is_some() {
            bail!(
                "--as (and CUSTODY_PRINCIPAL) no longer exist: nobody can claim a name
hint: on the data directory you act as its operator, {}; to act as someone else, pass their token (--token or CUSTODY_TOKEN); to approve, sign with your enrolled key (--sign-key)",
                operator()?.0
            );
        }
        let now = now()?;
        match token {
            Some(token) => {
                let who = app.authenticate(token, now).await?;
                Ok(who.actor(now)?)
            }
            None => {
                let (principal, user) = operator()?;
                Ok(Actor::new(principal, now)?
                    .authenticated_by(custody_model::Authentication::Local { user }))
            }
        }
    }
}

/// The operator of this machine: `local:USER` for the operating-system user running the
/// command (by its user id, not by an environment variable anyone can set), and the user.
pub(crate) fn operator() -> anyhow::Result<(String, String)> {
    let user = match whoami::fallible::username() {
        Ok(name) if !name.is_empty() && !name.chars().any(char::is_whitespace) => name,
        _ => {
            use std::os::unix::fs::MetadataExt as _;
            let uid = std::fs::metadata("/proc/self")
                .context("finding the operating-system user running custody")?
                .uid();
            format!("uid-{uid}")
        }
    };
    Ok((format!("{}{user}", custody_app::LOCAL_PREFIX), user))
}

/// The clock commands act by: stopped at `CUSTODY_NOW` (RFC 3339, for tests and
/// backfills) if it is set, otherwise the system's.
pub(crate) fn clock() -> anyhow::Result<Box<dyn Clock>> {
    match std::env::var("CUSTODY_NOW") {
        Ok(t) => Ok(Box::new(FixedClock::at(t.parse().context("CUSTODY_NOW")?))),
        Err(_) => Ok(Box::new(SystemClock)),
    }
}

/// The time of the action, by [`clock`].
pub(crate) fn now() -> anyhow::Result<Timestamp> {
    Ok(clock()?.now())
}

/// Most files read from a policy bundle.
const MAX_BUNDLE_FILES: usize = 256;

/// Reads a policy bundle: `custody.toml` and the key files under `keys/`.
pub(crate) fn read_bundle(dir: &Path) -> anyhow::Result<Bundle> {
    let mut bundle = Bundle::default();
    let main = dir.join(POLICY_FILE);
    if !main.exists() {
        bail!(
            "{} has no {POLICY_FILE}; a policy bundle is a directory with {POLICY_FILE} and its keys/",
            dir.display()
        );
    }
    let read = |path: &Path| -> anyhow::Result<String> {
        crate::input::read_text(path, MAX_POLICY_FILE as u64, "policy file")
    };
    bundle.files.insert(POLICY_FILE.into(), read(&main)?);
    let keys = dir.join("keys");
    if keys.is_dir() {
        for entry in
            std::fs::read_dir(&keys).with_context(|| format!("reading {}", keys.display()))?
        {
            let path = entry?.path();
            let is_key = path.extension().is_some_and(|e| e == "pub" || e == "pem");
            if path.is_file() && is_key {
                if bundle.files.len() >= MAX_BUNDLE_FILES {
                    bail!(
                        "{} holds more than {MAX_BUNDLE_FILES} key files",
                        keys.display()
                    );
                }
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                bundle.files.insert(format!("keys/{name}"), read(&path)?);
            }
        }
    }
    Ok(bundle)
}
