//! custody's own signing keys: the log key (signs every checkpoint, a C2SP signed note) and
//! the receipt key (the attestor: signs every decision's VSA). Each is a PKCS#8 file in the
//! data directory, unless config.toml names a key held in a PKCS#11 token by an RFC 7512 URI:
//!
//! ```toml
//! [log]
//! key = "pkcs11:token=custody;object=log?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/hsm-pin"
//! [receipts]
//! key = "pkcs11:token=custody;object=receipts?module-path=…&pin-source=env:CUSTODY_HSM_PIN"
//! ```
//!
//! Invariants: a token key's public half must equal the public key file auditors hold
//! (`keys/log.pub`, `keys/attestor.pub`), or nothing opens: a different token key would
//! silently re-key the log, or sign receipts nobody can check. The log key is Ed25519 (signed
//! notes allow nothing else); the receipt key Ed25519 or ECDSA P-256. The PIN comes from a
//! file (a relative path is relative to the data directory) or an environment variable; a
//! `pin-value` in config.toml is refused, like everywhere else.
//!
//! A PKCS#11 login is per token and process: when both keys are on one token, the receipt key
//! (opened first) logs the token in, and the log key's PIN source is not asked again.
//!
//! What it does not do: generate token keys (the token's own tools do), or fall back to a file
//! when the token cannot be reached.

use std::path::Path;

use anyhow::bail;
use custody_crypto::pkcs11::{PinSource, TokenError};
use custody_crypto::{Algorithm, Pkcs11Config, Pkcs11Signer, Signer};

use crate::input::{load_private_key, load_public_key};

/// Which of custody's own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Signs checkpoints.
    Log,
    /// Signs decision receipts (VSAs).
    Receipts,
}

impl Purpose {
    /// The config.toml setting that names a token key for it.
    pub(crate) fn setting(self) -> &'static str {
        match self {
            Purpose::Log => "[log] key",
            Purpose::Receipts => "[receipts] key",
        }
    }

    /// What the key does, for messages.
    fn role(self) -> &'static str {
        match self {
            Purpose::Log => "log key",
            Purpose::Receipts => "receipt (attestor) key",
        }
    }

    /// Its private key file, relative to the data directory.
    pub(crate) fn key_file(self) -> &'static str {
        match self {
            Purpose::Log => "keys/log.key",
            Purpose::Receipts => "keys/attestor.key",
        }
    }

    /// Its public key file, relative to the data directory.
    pub(crate) fn pub_file(self) -> &'static str {
        match self {
            Purpose::Log => "keys/log.pub",
            Purpose::Receipts => "keys/attestor.pub",
        }
    }

    /// The algorithms it may sign with, and why not others.
    fn check_algorithm(self, algorithm: Algorithm) -> Result<(), &'static str> {
        match (self, algorithm) {
            (Purpose::Log, Algorithm::Ed25519) | (Purpose::Receipts, _) => Ok(()),
            (Purpose::Log, _) => Err(
                "checkpoints are C2SP signed notes, which custody signs with Ed25519 only: \
                 make an Ed25519 key on the token for the log",
            ),
        }
    }
}

/// Opens the `purpose` key of the data directory at `root`: the token key `uri` names (and
/// checked against the public key file), or else the key file.
pub(crate) fn open(
    root: &Path,
    purpose: Purpose,
    uri: Option<&str>,
) -> anyhow::Result<Box<dyn Signer>> {
    let Some(uri) = uri else {
        let path = root.join(purpose.key_file());
        if !path.exists() {
            bail!(
                "the {} {} is missing\nhint: restore it from your backup of this data directory; a ledger is never re-keyed or re-created implicitly",
                purpose.role(),
                path.display()
            );
        }
        return Ok(Box::new(load_private_key(&path)?));
    };
    let config = config_of(root, purpose, uri)?;
    let signer = open_configured(purpose, &config)?;
    let public = load_public_key(&root.join(purpose.pub_file()))?;
    if public != *signer.public_key() {
        bail!(
            "the token key {} (key id {}) is not this data directory's {}: {} holds key id {}\nhint: a different key would silently re-key what auditors check; point {} in config.toml at the token key whose public half is {} (or restore that file from your backup)",
            describe_token(&config),
            signer.key_id(),
            purpose.role(),
            purpose.pub_file(),
            public.key_id(),
            purpose.setting(),
            purpose.pub_file(),
        );
    }
    Ok(Box::new(signer))
}

/// Opens the token key `uri` names for `purpose`, without comparing it with a public key
/// file (`custody init` writes that file from it).
pub(crate) fn open_token(root: &Path, purpose: Purpose, uri: &str) -> anyhow::Result<Pkcs11Signer> {
    open_configured(purpose, &config_of(root, purpose, uri)?)
}

fn open_configured(purpose: Purpose, config: &Pkcs11Config) -> anyhow::Result<Pkcs11Signer> {
    let signer = Pkcs11Signer::open(config).map_err(|e| explain(purpose, config, e))?;
    let algorithm = signer.public_key().algorithm();
    if let Err(why) = purpose.check_algorithm(algorithm) {
        bail!(
            "{}: the token key {} is {algorithm}; {why}",
            purpose.setting(),
            describe_token(config)
        );
    }
    Ok(signer)
}

/// Where the `purpose` key is, for people, without opening it: `file keys/log.key`, or
/// `token "T", key "K"` (a URI that does not parse is shown as such; opening it fails).
pub(crate) fn source(purpose: Purpose, uri: Option<&str>) -> String {
    match uri {
        None => format!("file {}", purpose.key_file()),
        Some(uri) => Pkcs11Config::from_uri(uri)
            .map_or_else(|e| format!("token key ({e})"), |c| describe_token(&c)),
    }
}

/// `token "T", key "K"`.
pub(crate) fn describe_token(config: &Pkcs11Config) -> String {
    format!("token {:?}, key {:?}", config.token_label, config.key_label)
}

/// Parses `uri` as `purpose`'s setting; a relative PIN file is taken from the data directory.
fn config_of(root: &Path, purpose: Purpose, uri: &str) -> anyhow::Result<Pkcs11Config> {
    let mut config = Pkcs11Config::from_uri(uri).map_err(|e| {
        anyhow::anyhow!(
            "{} in config.toml: {e}\nhint: write it as pkcs11:token=LABEL;object=KEY-LABEL?module-path=/path/to/module.so&pin-source=file:PIN-FILE (or pin-source=env:VARIABLE)",
            purpose.setting()
        )
    })?;
    if let PinSource::File(path) = &mut config.pin
        && path.is_relative()
    {
        *path = root.join(&*path);
    }
    Ok(config)
}

/// A token error with what to do about it, naming the setting it came from.
fn explain(purpose: Purpose, config: &Pkcs11Config, error: custody_crypto::Error) -> anyhow::Error {
    let setting = purpose.setting();
    let hint = match &error {
        custody_crypto::Error::Token(token) => match token {
            TokenError::WrongPin { .. } | TokenError::Pin(_) => format!(
                "put the token's user PIN in the {} that pin-source in {setting} names (a few wrong PINs lock the token)",
                match &config.pin {
                    PinSource::File(path) => format!("file {}", path.display()),
                    PinSource::Env(var) => format!("environment variable {var}"),
                }
            ),
            TokenError::TokenNotFound { .. } => {
                format!("set token= in {setting} to the label of the token that holds the key")
            }
            TokenError::KeyNotFound { .. } | TokenError::KeyAmbiguous { .. } => format!(
                "list the token's keys (pkcs11-tool --module MODULE --list-objects --login) and set object= (and id=) in {setting} to the {}",
                purpose.role()
            ),
            TokenError::ModuleMissing { .. } | TokenError::Module { .. } => {
                format!("install the token's PKCS#11 module and set module-path= in {setting}")
            }
            TokenError::PinLocked { .. } => {
                "the token's security officer must unlock the user PIN".into()
            }
            _ => format!("check the token and {setting}"),
        },
        _ => format!("check the token and {setting}"),
    };
    anyhow::anyhow!(
        "opening the {} ({setting} in config.toml): {error}\nhint: {hint}",
        purpose.role()
    )
}

/// A key `custody init` is about to give a new instance: generated here, or on a token.
pub(crate) enum NewKey {
    /// A fresh Ed25519 key, to be written to the data directory.
    Generated(custody_crypto::PrivateKey),
    /// A token key (opened, so every mistake is told before anything is written).
    Token(Pkcs11Signer),
}

impl NewKey {
    /// The `purpose` key of a new instance at `root`: the token key `uri` names (opened and
    /// checked now), or a new file key.
    pub(crate) fn prepare(
        root: &Path,
        purpose: Purpose,
        uri: Option<&str>,
    ) -> anyhow::Result<Self> {
        Ok(match uri {
            Some(uri) => NewKey::Token(open_token(root, purpose, uri)?),
            None => NewKey::Generated(custody_crypto::PrivateKey::generate(Algorithm::Ed25519)),
        })
    }

    /// The key's public half.
    pub(crate) fn public_key(&self) -> &custody_crypto::PublicKey {
        match self {
            NewKey::Generated(key) => key.public_key(),
            NewKey::Token(signer) => signer.public_key(),
        }
    }

    /// Writes the key files into `root` (the key pair, or only the public half of a token
    /// key) and returns the signer.
    pub(crate) fn write(self, root: &Path, purpose: Purpose) -> anyhow::Result<Box<dyn Signer>> {
        let pub_path = root.join(purpose.pub_file());
        match self {
            NewKey::Generated(key) => {
                crate::cmd::key::write_key_pair(&key, &root.join(purpose.key_file()), &pub_path)?;
                Ok(Box::new(key))
            }
            NewKey::Token(signer) => {
                crate::datadir::write_new(&pub_path, &signer.public_key().to_pem())?;
                Ok(Box::new(signer))
            }
        }
    }
}
