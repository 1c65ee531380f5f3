//! `custody log watch`: hold a log's operator to an append-only history. Each run fetches
//! the server's checkpoint, checks its signature by the log key (and the cosignatures of
//! the witnesses named), and that it extends the checkpoint the last run verified (kept in
//! a state file): the same root at the same size, or a consistency proof from it. A fork,
//! a shrinking log or a bad signature fails loudly (exit 1) and leaves the state as it
//! was, so the evidence stays; the first run keeps what it saw (trust on first use).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use custody_crypto::cosignature::{self, CosignatureVerifier};
use custody_ledger::{Checkpoint, verify_consistency};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::input::{load_public_key, print_json, print_line, read_text};
use crate::ledger_source::{Ledger, open_note};
use crate::{Outcome, VerificationFailed};

#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// The custody server whose log to watch.
    #[arg(long, env = "CUSTODY_SERVER", value_name = "URL", value_parser = crate::client::server_url)]
    server: String,
    /// The log's public key (SPKI PEM), obtained from the operator out of band.
    #[arg(long, value_name = "PUB")]
    log_key: PathBuf,
    /// Where the last verified checkpoint is kept between runs (created by the first).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// A witness whose cosignatures to verify and show: NAME=PUB, its name and its Ed25519
    /// public key (SPKI PEM). Repeatable.
    #[arg(long = "witness-key", value_name = "NAME=PUB")]
    witness_keys: Vec<String>,
    /// Ask for the server's final checkpoint and fail unless at least this many of the
    /// witnesses named cosigned it.
    #[arg(long, default_value_t = 0, value_name = "K")]
    witness_quorum: usize,
    /// For an https:// server whose certificate an internal CA signed: that CA (PEM).
    #[arg(long, env = "CUSTODY_CA_CERT", value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// What the state file keeps: the last checkpoint verified, whole, so that each run
/// checks it again with the log key before trusting it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kept {
    origin: String,
    size: u64,
    root: String,
    note: String,
}

fn witnesses(specs: &[String]) -> anyhow::Result<Vec<CosignatureVerifier>> {
    specs
        .iter()
        .map(|spec| {
            let (name, path) = spec
                .split_once('=')
                .with_context(|| format!("--witness-key {spec:?} is not NAME=PUB"))?;
            let key = load_public_key(std::path::Path::new(path))?;
            CosignatureVerifier::new(name, &key).with_context(|| format!("--witness-key {name}"))
        })
        .collect()
}

fn failed(why: String) -> anyhow::Error {
    VerificationFailed(why).into()
}

pub(crate) async fn run(args: WatchArgs) -> anyhow::Result<Outcome> {
    let json = args.json;
    let result = watch(args).await;
    // A monitor reading JSON learns of a fork, a shrinking log or a bad signature on
    // stdout too, not only from the exit code and stderr.
    if let (true, Err(e)) = (json, &result) {
        if e.downcast_ref::<VerificationFailed>().is_some() {
            print_json(&json!({"ok": false, "failure": e.to_string()}));
        }
    }
    result
}

async fn watch(args: WatchArgs) -> anyhow::Result<Outcome> {
    let key = load_public_key(&args.log_key)?;
    let witnesses = witnesses(&args.witness_keys)?;
    if args.witness_quorum > witnesses.len() {
        bail!(
            "--witness-quorum {} needs at least as many --witness-key",
            args.witness_quorum
        );
    }
    let ledger = Ledger::remote(
        &args.server,
        None,
        Some(key.clone()),
        args.ca_cert.as_deref(),
    )?;
    let note = ledger.checkpoint_note(args.witness_quorum > 0).await?;
    // open_note fails as a verdict (exit 1) when the log key did not sign it.
    let new = open_note(&note, &key)?;
    let cosigned = cosignature::verify(&note, &witnesses)
        .map_err(|e| failed(format!("the checkpoint of {} entries: {e}", new.size)))?;
    if cosigned.len() < args.witness_quorum {
        return Err(failed(format!(
            "the checkpoint of {} entries carries {} of the {} witness cosignatures required",
            new.size,
            cosigned.len(),
            args.witness_quorum
        )));
    }
    let old = match std::fs::metadata(&args.state) {
        Ok(_) => Some(read_kept(&args.state, &key)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", args.state.display())),
    };
    let grew_from = match &old {
        None => None,
        Some(old) => {
            check_extends(&ledger, old, &new).await?;
            Some(old.size)
        }
    };
    write_kept(&args.state, &new, &note)?;
    let root = hex::encode(new.root);
    if args.json {
        print_json(&json!({
            "ok": true, "origin": new.origin, "size": new.size, "root": root,
            "previous_size": grew_from,
            "cosignatures": cosigned.iter().map(|c| json!({"witness": c.witness, "timestamp": c.timestamp})).collect::<Vec<_>>(),
        }));
    } else {
        let history = match grew_from {
            None => "first checkpoint seen: kept as the start of the history (trust on first use)"
                .to_owned(),
            Some(s) if s == new.size => format!("unchanged since the last run ({s} entries)"),
            Some(s) => format!("consistent with the last run's {s} entries"),
        };
        let witnessed = if cosigned.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = cosigned
                .iter()
                .map(|c| format!("{} (at {})", c.witness, c.timestamp))
                .collect();
            format!("; cosigned by {}", names.join(", "))
        };
        print_line(&format!(
            "ok: {} has {} entries, root {root}; {history}{witnessed}",
            new.origin, new.size
        ));
    }
    Ok(Outcome::Ok)
}

/// Checks that `new` extends `old`: same origin, not smaller, the same root at the same
/// size, and otherwise a consistency proof from the server that verifies.
async fn check_extends(ledger: &Ledger, old: &Checkpoint, new: &Checkpoint) -> anyhow::Result<()> {
    if old.origin != new.origin {
        return Err(failed(format!(
            "the log's origin changed from {:?} to {:?}",
            old.origin, new.origin
        )));
    }
    if new.size < old.size {
        return Err(failed(format!(
            "the log shrank: the last run verified {} entries, the server now signs {}: history was removed",
            old.size, new.size
        )));
    }
    if new.size == old.size {
        if new.root != old.root {
            return Err(failed(format!(
                "the log forked: the server signs a second root for {} entries ({} before, {} now)",
                new.size,
                hex::encode(old.root),
                hex::encode(new.root)
            )));
        }
        return Ok(());
    }
    if old.size == 0 {
        return Ok(());
    }
    let (proof, _, _) = ledger.consistency(old.size, new.size).await?;
    verify_consistency(old.size, new.size, &proof, &old.root, &new.root).map_err(|e| {
        failed(format!(
            "the log forked: its checkpoint of {} entries is not consistent with the {} the last run verified ({e})",
            new.size, old.size
        ))
    })
}

fn read_kept(
    path: &std::path::Path,
    key: &custody_crypto::PublicKey,
) -> anyhow::Result<Checkpoint> {
    let text = read_text(path, 1 << 20, "watch state")?;
    let kept: Kept = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a watch state file", path.display()))?;
    let cp = open_note(&kept.note, key)
        .with_context(|| format!("the checkpoint kept in {}", path.display()))?;
    if cp.size != kept.size || hex::encode(cp.root) != kept.root || cp.origin != kept.origin {
        bail!(
            "{} does not agree with the checkpoint it keeps",
            path.display()
        );
    }
    Ok(cp)
}

/// Replaces the state file whole (a temporary file renamed over it).
fn write_kept(path: &std::path::Path, cp: &Checkpoint, note: &str) -> anyhow::Result<()> {
    let kept = Kept {
        origin: cp.origin.clone(),
        size: cp.size,
        root: hex::encode(cp.root),
        note: note.to_owned(),
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("writing in {}", dir.display()))?;
    serde_json::to_writer_pretty(&mut temp, &kept)?;
    temp.as_file().sync_all()?;
    temp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
