//! The data directory: where a custody instance keeps its configuration, its log key and
//! (by default) its SQLite ledger.
//!
//! ```text
//! DIR/
//!   config.toml          log origin, database, listen address, policy dir
//!   custody.db           the ledger and state (SQLite, WAL), unless [database] url is set
//!   custody.db.checkpoint  the newest checkpoint, kept outside the database (SQLite)
//!   ledger.checkpoint    the same, for a PostgreSQL ledger (the database is elsewhere)
//!   keys/log.key         the log signing key (Ed25519 PKCS#8, mode 0600), unless [log] key
//!                        names a key in a PKCS#11 token (see `own_keys`)
//!   keys/log.pub         its public half, for auditors (a token key must match it)
//!   keys/attestor.key    the receipt key, signing each decision's VSA, unless [receipts] key
//!                        names a token key
//!   keys/attestor.pub    its public half
//!   policy/custody.toml  the pipeline policy (starter)
//! ```
//!
//! Invariant: a ledger is only ever created by `custody init` (or by `custody serve` on an
//! empty directory). Opening checks that the database, the log key and the tree agree and
//! refuses with a `hint:` when they do not; nothing is re-created implicitly.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use custody_crypto::Signer;
use custody_crypto::note::{NoteSigner, NoteVerifier};
use custody_store::{
    CheckpointFile, CheckpointFileStatus, Location, OnIntegrityFailure, OpenOptions, SqlStore,
};
use serde::{Deserialize, Serialize};

use crate::input::{MAX_KEY_FILE, load_public_key, read_text};
use crate::own_keys::{self, NewKey, Purpose};

/// The default data directory, relative to where custody runs.
pub(crate) const DEFAULT_DATA_DIR: &str = "custody-data";

/// `config.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) log: LogConfig,
    #[serde(default)]
    pub(crate) database: DatabaseConfig,
    /// How `custody serve` keeps connections, requests and dashboard sessions.
    #[serde(default)]
    pub(crate) server: custody_server::ServerConfig,
    /// The access log's retention and sampling of anonymous requests.
    #[serde(default)]
    pub(crate) access_log: custody_server::AccessLogConfig,
    #[serde(default)]
    pub(crate) policy: PolicyConfig,
    /// `[receipts]`: the key that signs each decision's VSA.
    #[serde(default, skip_serializing_if = "ReceiptsConfig::is_default")]
    pub(crate) receipts: ReceiptsConfig,
    /// Trusted CI identity issuers (OIDC).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) oidc: Vec<custody_server::oidc::IssuerConfig>,
    /// Alert rules' settings and the webhooks alerts go to.
    #[serde(default)]
    pub(crate) alerts: custody_server::alerting::AlertConfig,
    /// The dashboard's sign-in through the organisation's OIDC provider.
    #[serde(default, skip_serializing_if = "DashboardConfig::is_default")]
    pub(crate) dashboard: DashboardConfig,
}

/// `[dashboard]` in config.toml.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DashboardConfig {
    /// `[dashboard.sign_in]`: people sign in through this OIDC provider (besides tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sign_in: Option<custody_server::oidc::sign_in::SignInConfig>,
}

/// `[receipts]` in config.toml.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReceiptsConfig {
    /// The receipt (attestor) key in a PKCS#11 token, as a `pkcs11:` URI; absent: the file
    /// keys/attestor.key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
}

impl ReceiptsConfig {
    fn is_default(&self) -> bool {
        self.key.is_none()
    }
}

impl DashboardConfig {
    fn is_default(&self) -> bool {
        self.sign_in.is_none()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogConfig {
    /// The log's name: every checkpoint's origin line and the log key's name.
    pub(crate) origin: String,
    /// The log key in a PKCS#11 token, as a `pkcs11:` URI (an Ed25519 key whose public half
    /// is keys/log.pub); absent: the file keys/log.key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    /// Witnesses whose cosignatures (C2SP tlog-cosignature) the server accepts at
    /// `POST /api/v1/log/cosignature`, as vkeys `name+hash+base64(0x04 ‖ key)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) witnesses: Vec<String>,
    /// How many of them must cosign a checkpoint before `GET /api/v1/log/checkpoint?final=true`
    /// serves it (0: none is ever final).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) witness_quorum: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl LogConfig {
    /// The witnesses, parsed, with the quorum (which may not exceed them).
    pub(crate) fn witnesses(&self) -> anyhow::Result<custody_server::Witnesses> {
        let keys = self
            .witnesses
            .iter()
            .map(|text| custody_crypto::cosignature::CosignatureVerifier::from_text(text))
            .collect::<Result<Vec<_>, _>>()
            .context("[log] witnesses")?;
        if self.witness_quorum > keys.len() {
            bail!(
                "[log] witness_quorum is {}, but only {} witnesses are configured",
                self.witness_quorum,
                keys.len()
            );
        }
        Ok(custody_server::Witnesses {
            keys,
            quorum: self.witness_quorum,
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DatabaseConfig {
    /// `postgres://…`; empty for the embedded SQLite file.
    #[serde(default)]
    pub(crate) url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyConfig {
    pub(crate) dir: String,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            dir: "policy".into(),
        }
    }
}

/// A data directory on disk.
#[derive(Debug, Clone)]
pub(crate) struct DataDir {
    root: PathBuf,
}

const CONFIG_FILE: &str = "config.toml";
const DB_FILE: &str = "custody.db";
/// Where a PostgreSQL ledger's newest checkpoint is kept on this machine (an SQLite one's
/// is `custody.db.checkpoint`, beside the database).
const PG_CHECKPOINT_FILE: &str = "ledger.checkpoint";
const LOG_KEY: &str = "keys/log.key";
const LOG_PUB: &str = "keys/log.pub";
const ATTESTOR_KEY: &str = "keys/attestor.key";
const ATTESTOR_PUB: &str = "keys/attestor.pub";
/// What `custody init` makes custody's own keys from: a `pkcs11:` URI each, or new files.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct InitKeys<'a> {
    /// The log key's token URI.
    pub(crate) log: Option<&'a str>,
    /// The receipt key's token URI.
    pub(crate) receipts: Option<&'a str>,
}
const POLICY_FILE: &str = "custody.toml";

/// The policy `custody init` writes: a pipeline to edit, with every gate that needs a
/// trusted key closed until the organisation adds its keys (deny by default).
const STARTER_POLICY: &str = include_str!("policies/starter.toml");

/// What `custody init` made.
pub(crate) struct Created {
    /// The open ledger (taken by whoever uses it next).
    pub(crate) store: Option<SqlStore>,
    pub(crate) verifier: NoteVerifier,
    pub(crate) location: Location,
}

impl DataDir {
    pub(crate) fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn log_key_path(&self) -> PathBuf {
        self.root.join(LOG_KEY)
    }

    pub(crate) fn log_pub_path(&self) -> PathBuf {
        self.root.join(LOG_PUB)
    }

    pub(crate) fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    /// True if nothing of a custody instance is here yet (the directory may exist, empty
    /// of custody's files).
    pub(crate) fn is_empty(&self) -> bool {
        ![CONFIG_FILE, DB_FILE, LOG_KEY, LOG_PUB, ATTESTOR_KEY]
            .iter()
            .any(|f| self.root.join(f).exists())
    }

    pub(crate) fn config(&self) -> anyhow::Result<Config> {
        let path = self.config_path();
        if !path.exists() {
            bail!(
                "{} is not a custody data directory (no {CONFIG_FILE})\nhint: create one with `custody init --data-dir {}`, or point --data-dir / CUSTODY_DATA_DIR at an existing one",
                self.root.display(),
                self.root.display()
            );
        }
        let text = read_text(&path, MAX_KEY_FILE, "the configuration")?;
        let config: Config =
            toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        config
            .alerts
            .compile()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(config)
    }

    /// Where the ledger lives: the configured PostgreSQL URL (overridden by `url`), or the
    /// SQLite file in this directory.
    pub(crate) fn location(&self, config: &Config, url: Option<&str>) -> Location {
        match url.filter(|u| !u.is_empty()) {
            Some(url) => Location::parse(url),
            None if !config.database.url.is_empty() => Location::parse(&config.database.url),
            None => Location::Sqlite(self.root.join(DB_FILE)),
        }
    }

    /// The log key (a file, or the token key `[log] key` names), named by the configured
    /// origin.
    pub(crate) fn log_signer(&self, config: &Config) -> anyhow::Result<NoteSigner> {
        let key = own_keys::open(&self.root, Purpose::Log, config.log.key.as_deref())?;
        Ok(NoteSigner::new(&config.log.origin, key)?)
    }

    /// custody's own keys as the dashboard shows them: the log key (its public key file)
    /// and the receipt key `attestor`, each with where its private half is.
    pub(crate) fn own_keys(
        &self,
        config: &Config,
        attestor: custody_crypto::PublicKey,
    ) -> anyhow::Result<custody_server::OwnKeys> {
        Ok(custody_server::OwnKeys {
            log: custody_server::OwnKey {
                public: load_public_key(&self.log_pub_path())?,
                source: own_keys::source(Purpose::Log, config.log.key.as_deref()),
            },
            receipts: custody_server::OwnKey {
                public: attestor,
                source: own_keys::source(Purpose::Receipts, config.receipts.key.as_deref()),
            },
        })
    }

    /// The log's verifier key (from the public key file; no private key needed).
    pub(crate) fn log_verifier(&self, config: &Config) -> anyhow::Result<NoteVerifier> {
        let key = load_public_key(&self.log_pub_path())?;
        Ok(NoteVerifier::new(&config.log.origin, &key)?)
    }

    /// Where the ledger at `location` keeps its newest checkpoint outside the database:
    /// beside an SQLite file, in this directory for PostgreSQL.
    /// Where the ledger at `url` (or the configured one) keeps its checkpoint file.
    pub(crate) fn checkpoint_file_path(
        &self,
        url: Option<&str>,
    ) -> anyhow::Result<Option<PathBuf>> {
        let location = self.location(&self.config()?, url);
        Ok(self.checkpoint_file(&location).path(&location))
    }

    fn checkpoint_file(&self, location: &Location) -> CheckpointFile {
        match location {
            Location::Sqlite(_) => CheckpointFile::Beside,
            Location::Postgres(_) => CheckpointFile::At(self.root.join(PG_CHECKPOINT_FILE)),
        }
    }

    /// Opens the ledger to read and append; one whose history does not extend its
    /// checkpoint file is refused.
    pub(crate) async fn open(&self, url: Option<&str>) -> anyhow::Result<SqlStore> {
        self.open_with(url, OnIntegrityFailure::Refuse).await
    }

    /// [`DataDir::open`], saying what to do with a ledger whose history does not extend
    /// its checkpoint file (`ReadOnly`: open it so, for a server to show and for
    /// `custody log recover`). Warns when the checkpoint file was missing.
    pub(crate) async fn open_with(
        &self,
        url: Option<&str>,
        on_integrity_failure: OnIntegrityFailure,
    ) -> anyhow::Result<SqlStore> {
        let config = self.config()?;
        self.open_with_config(&config, url, on_integrity_failure)
            .await
    }

    async fn open_with_config(
        &self,
        config: &Config,
        url: Option<&str>,
        on_integrity_failure: OnIntegrityFailure,
    ) -> anyhow::Result<SqlStore> {
        let location = self.location(config, url);
        let signer = self.log_signer(config)?;
        let options = OpenOptions {
            checkpoint_file: self.checkpoint_file(&location),
            on_integrity_failure,
            ..OpenOptions::default()
        };
        let store = SqlStore::open_with(&location, signer, options)
            .await
            .with_context(|| format!("opening the ledger of {}", self.root.display()))?;
        if let CheckpointFileStatus::Recreated { path } = store.checkpoint_file() {
            eprintln!(
                "warning: the checkpoint file {} was missing, so this ledger's history could not be checked against it; it was written again from the database's head
hint: expected once after upgrading custody; otherwise someone removed it, and a rollback of the database while custody was stopped would go unnoticed this once",
                path.display()
            );
        }
        Ok(store)
    }

    /// The attestor (receipt) key, which signs the VSA of every decision: a file, or the
    /// token key `[receipts] key` names.
    pub(crate) fn attestor(&self, config: &Config) -> anyhow::Result<Box<dyn Signer>> {
        own_keys::open(
            &self.root,
            Purpose::Receipts,
            config.receipts.key.as_deref(),
        )
    }

    /// The attestor's public key file (verifies every VSA custody signs).
    pub(crate) fn attestor_pub_path(&self) -> PathBuf {
        self.root.join(ATTESTOR_PUB)
    }

    /// The policy bundle directory.
    pub(crate) fn policy_dir(&self, config: &Config) -> PathBuf {
        self.root.join(&config.policy.dir)
    }

    /// Opens the use cases on the ledger (read and append).
    pub(crate) async fn open_app(
        &self,
        url: Option<&str>,
    ) -> anyhow::Result<custody_app::App<SqlStore>> {
        self.open_app_with(url, OnIntegrityFailure::Refuse).await
    }

    /// [`DataDir::open_app`], saying what to do with a ledger that lost history.
    pub(crate) async fn open_app_with(
        &self,
        url: Option<&str>,
        on_integrity_failure: OnIntegrityFailure,
    ) -> anyhow::Result<custody_app::App<SqlStore>> {
        let config = self.config()?;
        // Both keys open before the ledger does: a wrong PIN or key changes nothing.
        let attestor = self.attestor(&config)?;
        let store = self
            .open_with_config(&config, url, on_integrity_failure)
            .await?;
        let log_keys: Vec<String> = store
            .log_keys()
            .keys()
            .map(|k| k.public_key().key_id().to_string())
            .collect();
        let app = custody_app::App::new(store, attestor);
        // The log's keys, the retired ones too, serve the log alone: no rotation or policy
        // may give one a purpose.
        app.reserve_keys(log_keys);
        Ok(app)
    }

    /// Opens the ledger to read only (needs the public log key, not the private one).
    pub(crate) async fn open_read_only(&self, url: Option<&str>) -> anyhow::Result<SqlStore> {
        let config = self.config()?;
        let location = self.location(&config, url);
        let verifier = self.log_verifier(&config)?;
        SqlStore::open_read_only(&location, &verifier)
            .await
            .with_context(|| format!("opening the ledger of {}", self.root.display()))
    }

    /// Creates a data directory: config, log key, starter policy and the ledger. Refuses if
    /// anything of an instance is already here; on failure removes what it wrote.
    pub(crate) async fn create(
        &self,
        url: Option<&str>,
        origin: Option<&str>,
        keys: InitKeys<'_>,
        now: custody_model::Timestamp,
    ) -> anyhow::Result<Created> {
        if !self.is_empty() {
            bail!(
                "{} already holds a custody instance; refusing to overwrite it\nhint: use it as it is (`custody log checkpoint --data-dir {}`), or choose another --data-dir",
                self.root.display(),
                self.root.display()
            );
        }
        // Token keys are opened (and their PINs checked) before anything is written.
        let log_key = NewKey::prepare(&self.root, Purpose::Log, keys.log)?;
        let attestor = NewKey::prepare(&self.root, Purpose::Receipts, keys.receipts)?;
        if log_key.public_key() == attestor.public_key() {
            bail!(
                "--log-key and --receipt-key name the same key ({}); give each purpose its own key",
                log_key.public_key().key_id()
            );
        }
        let existed = self.root.exists();
        let result = self
            .create_files(url, origin, keys, (log_key, attestor), now)
            .await;
        if result.is_err() {
            self.remove_created(existed);
        }
        result
    }

    async fn create_files(
        &self,
        url: Option<&str>,
        origin: Option<&str>,
        uris: InitKeys<'_>,
        (log_key, attestor): (NewKey, NewKey),
        now: custody_model::Timestamp,
    ) -> anyhow::Result<Created> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.root.join("keys"))
            .with_context(|| format!("creating {}", self.root.display()))?;
        let origin = match origin {
            Some(o) => o.to_owned(),
            None => format!(
                "custody/{}",
                &log_key.public_key().key_id().to_string()[..16]
            ),
        };
        let key = log_key.write(&self.root, Purpose::Log)?;
        // The attestor signs every decision's VSA: custody's own key, distinct from the log
        // key and from every release, builder and personal key.
        attestor.write(&self.root, Purpose::Receipts)?;
        let config = Config {
            log: LogConfig {
                origin,
                key: uris.log.map(str::to_owned),
                witnesses: Vec::new(),
                witness_quorum: 0,
            },
            database: DatabaseConfig {
                url: url.unwrap_or_default().to_owned(),
            },
            server: custody_server::ServerConfig::default(),
            access_log: custody_server::AccessLogConfig::default(),
            policy: PolicyConfig::default(),
            receipts: ReceiptsConfig {
                key: uris.receipts.map(str::to_owned),
            },
            oidc: Vec::new(),
            alerts: Default::default(),
            dashboard: DashboardConfig::default(),
        };
        let signer = NoteSigner::new(&config.log.origin, key).context("naming the log key")?;
        let verifier = signer.verifier().clone();
        let location = self.location(&config, None);
        let options = OpenOptions {
            checkpoint_file: self.checkpoint_file(&location),
            ..OpenOptions::default()
        };
        let store = SqlStore::create_with(&location, signer, now, options)
            .await
            .with_context(|| format!("creating the ledger in {}", location.describe()))?;
        let header = "# custody configuration, written by `custody init`.\n\
                      # [database] url: empty for the embedded SQLite file custody.db here,\n\
                      # or postgres://… to share one ledger between several servers.\n\
                      # [log] key / [receipts] key: a pkcs11: URI naming a token key in place\n\
                      # of keys/log.key / keys/attestor.key (its public half must be the .pub).\n\n";
        write_new(
            &self.config_path(),
            &format!("{header}{}", toml::to_string(&config)?),
        )?;
        fs::create_dir_all(self.root.join(&config.policy.dir))?;
        // The operator who created the instance administers it until the policy names
        // others (tokens, roles); see the starter policy's [governance].
        let (operator, _) = crate::context::operator()?;
        write_new(
            &self.root.join(&config.policy.dir).join(POLICY_FILE),
            &STARTER_POLICY.replace("OPERATOR", &operator),
        )?;
        Ok(Created {
            store: Some(store),
            verifier,
            location,
        })
    }

    /// Undoes a failed `create`: only custody's own files, never anything else.
    fn remove_created(&self, root_existed: bool) {
        for f in [
            CONFIG_FILE,
            DB_FILE,
            "custody.db-wal",
            "custody.db-shm",
            "custody.db.checkpoint",
            PG_CHECKPOINT_FILE,
            LOG_KEY,
            LOG_PUB,
            ATTESTOR_KEY,
            ATTESTOR_PUB,
        ] {
            let _ = fs::remove_file(self.root.join(f));
        }
        let _ = fs::remove_file(self.root.join("policy").join(POLICY_FILE));
        let _ = fs::remove_dir(self.root.join("policy"));
        let _ = fs::remove_dir(self.root.join("keys"));
        if !root_existed {
            let _ = fs::remove_dir(&self.root);
        }
    }
}

/// Writes a new file (refusing one that exists) and syncs it.
pub(crate) fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}
