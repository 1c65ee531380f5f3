//! `custody init`: create a data directory with its ledger and log key.

use std::path::PathBuf;

use clap::Args;
use custody_ledger::Checkpoint;
use serde_json::json;

use crate::Outcome;
use crate::datadir::{DEFAULT_DATA_DIR, DataDir, InitKeys};
use crate::input::{print_json, print_line};

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The directory to create (or an empty one to fill).
    #[arg(long, env = "CUSTODY_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
    data_dir: PathBuf,
    /// Keep the ledger in this PostgreSQL database (which must not hold one yet) instead
    /// of the embedded SQLite file. Every server sharing it needs a copy of DIR's keys.
    #[arg(long, value_name = "postgres://…")]
    database_url: Option<String>,
    /// The log's name, printed on every checkpoint (default: custody/ and the start of
    /// the log key's id). A URL-like name you own is best: example.com/custody/log.
    #[arg(long, value_name = "NAME")]
    origin: Option<String>,
    /// Sign checkpoints with this Ed25519 key in a PKCS#11 token instead of a new key file:
    /// `pkcs11:token=LABEL;object=KEY?module-path=MODULE&pin-source=file:PIN-FILE` (or
    /// `pin-source=env:VAR`; never a PIN in the URI). Its public half is written to
    /// keys/log.pub and the URI to config.toml's [log] key; a relative PIN file is taken from
    /// DIR.
    #[arg(long, value_name = "pkcs11:…")]
    log_key: Option<String>,
    /// Sign each decision's VSA with this Ed25519 or ECDSA P-256 token key (a `pkcs11:` URI
    /// as for --log-key) instead of a new key file; written to config.toml's [receipts] key.
    #[arg(long, value_name = "pkcs11:…")]
    receipt_key: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// A new instance, ready to serve.
pub(crate) struct Instance {
    pub(crate) app: custody_app::App<custody_store::SqlStore>,
    pub(crate) created: crate::datadir::Created,
    pub(crate) policy: custody_app::PolicyChange,
}

/// Creates a data directory and its ledger, and puts the starter policy in force as the
/// first policy version (so the pipeline works at once, denying by default until keys are
/// added to it).
pub(crate) async fn create_instance(
    dir: &DataDir,
    url: Option<&str>,
    origin: Option<&str>,
    keys: InitKeys<'_>,
) -> anyhow::Result<Instance> {
    let now = crate::context::now()?;
    let mut created = dir.create(url, origin, keys, now).await?;
    let store = created
        .store
        .take()
        .ok_or_else(|| anyhow::anyhow!("the new ledger is not open"))?;
    let config = dir.config()?;
    let app = custody_app::App::new(store, dir.attestor(&config)?);
    let bundle = crate::context::read_bundle(&dir.policy_dir(&config))?;
    // The first policy is put in force by the operator creating the instance: the one
    // change that needs nobody's approval, recorded as a bootstrap.
    let (principal, user) = crate::context::operator()?;
    let actor = custody_app::Actor::new(principal, now)?
        .authenticated_by(custody_model::Authentication::Local { user });
    let request = custody_app::ApplyPolicy {
        files: bundle.files,
    };
    let policy = app.apply_policy(&actor, &request).await?;
    Ok(Instance {
        app,
        created,
        policy,
    })
}

pub(crate) fn run(args: InitArgs) -> anyhow::Result<Outcome> {
    crate::block_on(async {
        let dir = DataDir::new(&args.data_dir);
        let Instance {
            app,
            created,
            policy,
        } = create_instance(
            &dir,
            args.database_url.as_deref(),
            args.origin.as_deref(),
            InitKeys {
                log: args.log_key.as_deref(),
                receipts: args.receipt_key.as_deref(),
            },
        )
        .await?;
        let config = dir.config()?;
        let log_key =
            crate::own_keys::source(crate::own_keys::Purpose::Log, config.log.key.as_deref());
        let receipt_key = crate::own_keys::source(
            crate::own_keys::Purpose::Receipts,
            config.receipts.key.as_deref(),
        );
        let cp = app.log().checkpoint().await?;
        let origin = Checkpoint::open(&cp.note, &created.verifier)?.origin;
        if args.json {
            print_json(&json!({
                "data_dir": dir.root(),
                "database": created.location.describe(),
                "origin": origin,
                "log_key": match config.log.key {
                    None => json!(dir.log_key_path()),
                    Some(_) => json!(log_key),
                },
                "log_public_key": dir.log_pub_path(),
                "log_verifier_key": created.verifier.to_text(),
                "attestor_public_key": dir.attestor_pub_path(),
                "receipt_key": receipt_key,
                "policy": policy.digest,
            }));
        } else {
            print_line(&format!(
                "created custody data directory {}\n  \
                 ledger:      {}\n  \
                 log origin:  {origin}\n  \
                 log key:     {log_key} (back it up; auditors check with {})\n  \
                 verifier:    {}\n  \
                 attestor:    {receipt_key}; {} verifies every decision's VSA\n  \
                 policy:      {} in force ({}/custody.toml)\n\n\
                 Give auditors {} (or the verifier key above) to check checkpoints offline.\n\
                 Next: `custody log checkpoint --data-dir {}`",
                dir.root().display(),
                created.location.describe(),
                dir.log_pub_path().display(),
                created.verifier.to_text(),
                dir.attestor_pub_path().display(),
                policy.digest,
                dir.policy_dir(&config).display(),
                dir.log_pub_path().display(),
                dir.root().display(),
            ));
        }
        Ok(Outcome::Ok)
    })
}
