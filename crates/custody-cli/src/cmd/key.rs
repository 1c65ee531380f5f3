//! `custody key`: generate and inspect keys (and, in keyring.rs, the keyring's lifecycle).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use custody_crypto::note::NoteVerifier;
use custody_crypto::{Algorithm, PrivateKey, PublicKey, Signer};
use serde_json::json;

use crate::Outcome;
use crate::input::{MAX_KEY_FILE, print_json, print_line, read_text};

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Generate a key pair: writes PATH.key (PKCS#8 PEM, mode 0600) and PATH.pub (SPKI PEM)
    /// and prints the key id (hex SHA-256 of the public key's SPKI DER).
    ///
    /// Example: custody key generate --algorithm ecdsa-p256 --out keys/release-signer
    Generate(GenerateArgs),
    /// Show a key's id, algorithm and the ids other tools give it. Accepts a public key
    /// (.pub) or a private key (.key; only its public half is shown).
    Show(ShowArgs),
    /// List every key custody has trusted: status (active, retired, revoked), purpose,
    /// algorithm, key id, name, holder, since when, and its successor or revocation.
    List(super::keyring::ListArgs),
    /// What a key's trust touches: every release, provenance, approval and decision
    /// receipt the ledger recorded as signed by it (and whether each still counts); per
    /// environment what is certified and running and how it depends on the key (manifest,
    /// provenance, or only an approval: re-approval fixes that); and what the deploy gate
    /// now denies because of the key.
    ///
    /// Example: custody key impact 3f2a9c01b7e4 (a key id, or 8+ of its first hex digits)
    Impact(super::keyring::ImpactArgs),
    /// Replace a key by its successor without downtime, the hand-over signed by both: what
    /// the old key signed while trusted keeps verifying, and from now on only the successor
    /// signs in its place.
    #[command(subcommand)]
    Rotate(RotateCommand),
    /// Revoke a key: nothing it signed from the revocation on (or from
    /// --compromised-since) counts; the deploy gate denies what depends on it until it is
    /// re-signed, re-built or re-approved, and an alert names what it touches.
    ///
    /// Example: custody key revoke 3f2a9c01b7e4 --reason "laptop stolen" --compromised-since 2026-11-24T00:00:00Z
    Revoke(super::keyring::RevokeArgs),
}

/// What `custody key rotate` replaces. (A personal approval key changes by enrolling its
/// successor in the policy, which its owners approve.)
#[derive(Debug, Subcommand)]
pub(crate) enum RotateCommand {
    /// A release signer key, on the data directory or through a server.
    ///
    /// Example: custody key generate --algorithm ecdsa-p256 --out release-signer-2 &&
    ///   custody key rotate release-signer --from release-signer.key --to release-signer-2.key
    ReleaseSigner(super::keyring::RotateArgs),
    /// A builder's key (its provenance signer), on the data directory or through a server.
    Builder(super::keyring::RotateArgs),
    /// The log's own key: appends a `log.key_rotated` event and a checkpoint signed by the
    /// old and the new key (monitors holding the old key follow it), then signs with the
    /// new key only. The old key pair moves to keys/retired/. Stop the server first.
    ///
    /// Example: custody key rotate log
    Log(crate::cmd::key_rotate_log::RotateLogArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum AlgorithmArg {
    /// Ed25519: small, fast, deterministic. The default for software keys.
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256: supported by every hardware token.
    EcdsaP256,
}

impl From<AlgorithmArg> for Algorithm {
    fn from(a: AlgorithmArg) -> Self {
        match a {
            AlgorithmArg::Ed25519 => Algorithm::Ed25519,
            AlgorithmArg::EcdsaP256 => Algorithm::EcdsaP256,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// The key algorithm.
    #[arg(long, value_enum, default_value = "ed25519")]
    algorithm: AlgorithmArg,
    /// Path prefix: the key pair is written to PATH.key and PATH.pub. Existing files are
    /// never overwritten.
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// A PEM key file.
    file: PathBuf,
    /// Print only the C2SP signed-note verifier key under this name (Ed25519 only), on
    /// one line, as `note verify --verifier` takes it (with --json: a field beside the rest).
    #[arg(long, value_name = "NAME")]
    note_name: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: KeyCommand) -> anyhow::Result<Outcome> {
    match command {
        KeyCommand::Generate(a) => generate(a),
        KeyCommand::Show(a) => show(a),
        KeyCommand::List(a) => crate::block_on(super::keyring::list(a)),
        KeyCommand::Impact(a) => crate::block_on(super::keyring::impact(a)),
        KeyCommand::Rotate(RotateCommand::ReleaseSigner(a)) => crate::block_on(
            super::keyring::rotate(custody_policy::KeyPurpose::ReleaseSigner, a),
        ),
        KeyCommand::Rotate(RotateCommand::Builder(a)) => crate::block_on(super::keyring::rotate(
            custody_policy::KeyPurpose::Builder,
            a,
        )),
        KeyCommand::Revoke(a) => crate::block_on(super::keyring::revoke(a)),
        KeyCommand::Rotate(RotateCommand::Log(a)) => {
            crate::block_on(crate::cmd::key_rotate_log::rotate_log(a))
        }
    }
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Writes `key` to `key_path` (PKCS#8 PEM) and its public half to `pub_path` (SPKI PEM).
/// Neither may exist; on failure neither is left behind.
pub(crate) fn write_key_pair(
    key: &PrivateKey,
    key_path: &Path,
    pub_path: &Path,
) -> anyhow::Result<()> {
    let private_pem = key.to_pkcs8_pem()?;
    // The private key is created with mode 0600 from the start (never world-readable, not
    // even briefly), and `create_new` refuses to follow a file planted in the meantime.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(key_path)
        .with_context(|| format!("creating {}", key_path.display()))?;
    let written = file
        .write_all(private_pem.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            let mut pub_file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(pub_path)?;
            pub_file.write_all(key.public_key().to_pem().as_bytes())?;
            pub_file.sync_all()
        });
    if let Err(e) = written {
        // No half-made key pair: remove what this run created.
        let _ = fs::remove_file(key_path);
        return Err(e.into());
    }
    Ok(())
}

fn generate(args: GenerateArgs) -> anyhow::Result<Outcome> {
    let key_path = with_suffix(&args.out, ".key");
    let pub_path = with_suffix(&args.out, ".pub");
    for p in [&key_path, &pub_path] {
        if p.exists() {
            bail!(
                "{} already exists; choose another --out or move the old key away (keys are never overwritten)",
                p.display()
            );
        }
    }
    let key = PrivateKey::generate(args.algorithm.into());
    write_key_pair(&key, &key_path, &pub_path)
        .with_context(|| format!("writing the key pair {}", args.out.display()))?;
    let id = key.key_id().to_string();
    if args.json {
        print_json(&json!({
            "key_id": id,
            "algorithm": key.algorithm().name(),
            "private_key": key_path,
            "public_key": pub_path,
        }));
    } else {
        print_line(&id);
        eprintln!(
            "wrote {} (private, mode 0600) and {} ({} key)",
            key_path.display(),
            pub_path.display(),
            key.algorithm()
        );
    }
    Ok(Outcome::Ok)
}

fn show(args: ShowArgs) -> anyhow::Result<Outcome> {
    let text = read_text(&args.file, MAX_KEY_FILE, "key file")?;
    let public: PublicKey = if text.contains("PRIVATE KEY-----") {
        PrivateKey::from_pkcs8_pem(&text)
            .with_context(|| format!("reading {}", args.file.display()))?
            .public_key()
            .clone()
    } else {
        PublicKey::from_pem(&text).with_context(|| format!("reading {}", args.file.display()))?
    };
    let note_key = match &args.note_name {
        Some(name) => Some(NoteVerifier::new(name, &public)?.to_text()),
        None => None,
    };
    if args.json {
        print_json(&json!({
            "key_id": public.key_id().to_string(),
            "algorithm": public.algorithm().name(),
            "securesystemslib_keyid": public.securesystemslib_keyid(),
            "note_verifier_key": note_key,
        }));
    } else if let Some(k) = note_key {
        // Alone, so that `--verifier "$(custody key show --note-name …)"` works.
        print_line(&k);
    } else {
        print_line(&format!("key id:                  {}", public.key_id()));
        print_line(&format!("algorithm:               {}", public.algorithm()));
        print_line(&format!(
            "securesystemslib keyid:  {}",
            public.securesystemslib_keyid()
        ));
    }
    Ok(Outcome::Ok)
}
